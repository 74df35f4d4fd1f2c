import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;

/**
 * Renders one report line from stdin the way the MBean and the Prometheus endpoint do, without
 * an agent: prints the text report, a line "metrics", then the metrics text; or, given "sites"
 * and kinds, what the MBean's topSites answers for each kind.
 */
public class RenderCheck {
    public static void main(String[] args) throws Exception {
        String line = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
        Class<?> view = Class.forName("io.offheapdoctor.SampleView");
        Method of = view.getDeclaredMethod("of", String.class);
        of.setAccessible(true);
        Object v = of.invoke(null, line);
        Method text = Class.forName("io.offheapdoctor.ReportText").getDeclaredMethod("render", view);
        text.setAccessible(true);
        Method metrics = Class.forName("io.offheapdoctor.PrometheusEndpoint").getDeclaredMethod("render", view);
        metrics.setAccessible(true);
        if (args.length > 0 && args[0].equals("sites")) {
            // The MBean's topSites of each kind given, one line each: "<kind> <answer>".
            Method sites = Class.forName("io.offheapdoctor.OffHeapDoctorBean").getDeclaredMethod("topSites", view, String.class);
            sites.setAccessible(true);
            for (int i = 1; i < args.length; i++) {
                System.out.println(args[i] + " " + sites.invoke(null, v, args[i]));
            }
            return;
        }
        System.out.print(text.invoke(null, v));
        System.out.println("metrics");
        System.out.print(metrics.invoke(null, v));
    }
}
