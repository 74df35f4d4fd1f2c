import java.nio.file.Files;
import java.nio.file.Paths;

/**
 * Sleeps, then prints its own VmRSS from /proc/self/status so a test can compare it with the
 * agent's last sample, then sleeps a little more. Args: seconds-before, millis-after.
 */
public class Idle {
    public static void main(String[] args) throws Exception {
        double before = args.length > 0 ? Double.parseDouble(args[0]) : 2;
        long after = args.length > 1 ? Long.parseLong(args[1]) : 0;
        System.out.println("ready");
        System.out.flush();
        Thread.sleep((long) (before * 1000));
        for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                long kb = Long.parseLong(line.replaceAll("[^0-9]", ""));
                System.out.println("VmRSS=" + kb * 1024);
            }
        }
        System.out.flush();
        Thread.sleep(after);
    }
}
