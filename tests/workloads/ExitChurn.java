import java.util.ArrayList;
import java.util.List;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * Churns zlib on two threads (Deflaters and Inflaters, some left for the Cleaner) and calls
 * System.exit(code) after a delay, so a test can end the JVM while the agent samples, trims and
 * walks the Cleaner. Args: delayMs (negative: run until killed) and exit code. Prints "ready"
 * when the churn runs and "exiting <code>" just before it exits.
 */
public class ExitChurn {
    static volatile long sink;

    public static void main(String[] args) throws Exception {
        long delayMs = Long.parseLong(args[0]);
        int code = Integer.parseInt(args[1]);
        for (int i = 0; i < 2; i++) {
            Thread t = new Thread(ExitChurn::churn, "churn-" + i);
            t.setDaemon(true);
            t.start();
        }
        System.out.println("ready");
        System.out.flush();
        if (delayMs < 0) {
            Thread.sleep(Long.MAX_VALUE);
        }
        Thread.sleep(delayMs);
        System.out.println("exiting " + code);
        System.out.flush();
        System.exit(code);
    }

    static void churn() {
        byte[] src = new byte[32 * 1024];
        for (int k = 0; k < src.length; k++) {
            src[k] = (byte) (k * 7 % 31);
        }
        byte[] packed = new byte[64 * 1024];
        byte[] out = new byte[64 * 1024];
        List<Object> leaked = new ArrayList<>();
        for (long n = 0; ; n++) {
            Deflater d = new Deflater(1 + (int) (n % 9));
            d.setInput(src);
            d.finish();
            int len = d.deflate(packed);
            Inflater inf = new Inflater();
            inf.setInput(packed, 0, len);
            try {
                sink += inf.inflate(out);
            } catch (java.util.zip.DataFormatException e) {
                throw new IllegalStateException(e);
            }
            if (n % 4 == 0) {
                // Left unended: the Cleaner frees these once they are unreachable.
                leaked.add(inf);
                if (leaked.size() > 64) {
                    leaked.clear();
                }
            } else {
                inf.end();
            }
            d.end();
        }
    }
}
