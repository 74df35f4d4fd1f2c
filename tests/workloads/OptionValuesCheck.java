import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;

/**
 * Runs the agent's option parsers (Options.parseSize, parseDuration, parsePercent, the report
 * rotation's two and the native sites' rate) over the table in args[0] ("kind TAB text TAB expected" lines) and prints, per
 * row, "kind TAB text TAB got", got being the value in the native core's unit (bytes, milliseconds, a fraction) or
 * "error" where the parser refuses it.
 */
public class OptionValuesCheck {
    public static void main(String[] args) throws Exception {
        Class<?> options = Class.forName("io.offheapdoctor.Options");
        Method size = options.getDeclaredMethod("parseSize", String.class);
        Method duration = options.getDeclaredMethod("parseDuration", String.class);
        Method percent = options.getDeclaredMethod("parsePercent", String.class);
        Method reportSize = options.getDeclaredMethod("parseReportMaxSize", String.class);
        Method reportFiles = options.getDeclaredMethod("parseReportFiles", String.class);
        Method nativeRate = options.getDeclaredMethod("parseNativeSitesRate", String.class);
        nativeRate.setAccessible(true);
        reportSize.setAccessible(true);
        reportFiles.setAccessible(true);
        size.setAccessible(true);
        duration.setAccessible(true);
        percent.setAccessible(true);
        StringBuilder out = new StringBuilder();
        for (String line : Files.readAllLines(Paths.get(args[0]), StandardCharsets.UTF_8)) {
            if (line.startsWith("#") || line.trim().isEmpty()) {
                continue;
            }
            String[] cols = line.split("\t", -1);
            String got;
            switch (cols[0]) {
                case "size":
                    Long b = (Long) size.invoke(null, cols[1]);
                    got = b == null ? "error" : Long.toString(b);
                    break;
                case "duration":
                    long ms = (Long) duration.invoke(null, cols[1]);
                    got = ms < 0 ? "error" : Long.toString(ms);
                    break;
                case "percent":
                    // A share must be above 0, as units.rs's parse_percent wants.
                    double pct = (Double) percent.invoke(null, cols[1]);
                    got = pct <= 0 ? "error" : Double.toString(pct / 100);
                    break;
                case "reportMaxSize":
                    long rs = (Long) reportSize.invoke(null, cols[1]);
                    got = rs < 0 ? "error" : Long.toString(rs);
                    break;
                case "reportFiles":
                    int rf = (Integer) reportFiles.invoke(null, cols[1]);
                    got = rf < 0 ? "error" : Integer.toString(rf);
                    break;
                case "nativeSitesRate":
                    long nr = (Long) nativeRate.invoke(null, cols[1]);
                    got = nr < 0 ? "error" : Long.toString(nr);
                    break;
                default:
                    got = "unknown kind";
            }
            out.append(cols[0]).append('\t').append(cols[1]).append('\t').append(got).append('\n');
        }
        System.out.print(out);
    }
}
