import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.lang.management.MemoryUsage;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.Deflater;
import java.util.zip.Inflater;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/**
 * The soak's application: {@code Soak <seconds>} churns zlib on two threads (Deflaters and
 * Inflaters, about 300 a second, ended or 1 in 32 dropped unended for the Cleaner, so the census always has work) while a
 * third calls the agent's MBean in-process every 50 ms (attributes, trimNow; reportJson and
 * sampleNow now and then). trimNow pauses in every third 10 s window of the wall clock
 * ({@link #trimQuiet}; SoakJmxClient pauses with it), so trim=&lt;interval&gt; has windows to itself. Prints "ready", then once a second "beat <n> <heap used after the last
 * System.gc()>" (a GC every 5 s; the heap pools' usage as the collector measured it at the end of
 * that GC, since the heap's usage read after it already holds what the churn threads allocated), and at the end "done churn=<n> jmx=<n> errors=<n>" and the first
 * JMX error if any; then returns from main (exit code 0).
 *
 * <p>{@code Soak <seconds> <leak bytes>}: a fourth thread also leaks that many bytes of touched
 * malloc (direct buffers, kept) every 100 ms, the rate of a leak of that size per sample at the
 * soak's interval, so the soak's memory checks can be shown to catch one.
 */
public final class Soak {
    private static final AtomicLong CHURN = new AtomicLong();
    private static final AtomicLong JMX = new AtomicLong();
    private static final AtomicLong ERRORS = new AtomicLong();
    private static volatile String firstError;
    private static volatile boolean running = true;

    public static void main(String[] args) throws Exception {
        long seconds = Long.parseLong(args[0]);
        final int leakBytes = args.length > 1 ? Integer.parseInt(args[1]) : 0;
        List<Thread> threads = new ArrayList<Thread>();
        if (leakBytes > 0) {
            threads.add(new Thread(() -> leak(leakBytes), "soak-leak"));
        }
        for (int i = 0; i < 2; i++) {
            final int seed = i;
            threads.add(new Thread(() -> churn(seed), "soak-zlib-" + i));
        }
        threads.add(new Thread(Soak::jmx, "soak-jmx"));
        for (Thread t : threads) {
            t.start();
        }
        System.out.println("ready");
        System.out.flush();
        long heapAfterGc = -1;
        long end = System.nanoTime() + seconds * 1_000_000_000L;
        for (long beat = 1; System.nanoTime() < end; beat++) {
            Thread.sleep(1000);
            if (beat % 5 == 0) {
                System.gc();
                heapAfterGc = heapAfterLastGc();
            }
            System.out.println("beat " + beat + " " + heapAfterGc);
            System.out.flush();
        }
        running = false;
        for (Thread t : threads) {
            t.join(30_000);
        }
        System.out.println("done churn=" + CHURN.get() + " jmx=" + JMX.get() + " errors=" + ERRORS.get());
        if (firstError != null) {
            System.out.println("first error " + firstError);
        }
        System.out.flush();
    }

    private static long heapAfterLastGc() {
        long used = 0;
        for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
            MemoryUsage after = pool.getType() == MemoryType.HEAP ? pool.getCollectionUsage() : null;
            if (after != null) {
                used += after.getUsed();
            }
        }
        return used;
    }

    private static void churn(int seed) {
        byte[] src = new byte[64 * 1024];
        for (int i = 0; i < src.length; i++) {
            src[i] = (byte) ((i * 31 + seed) % 251);
        }
        byte[] out = new byte[src.length + 1024];
        byte[] back = new byte[src.length];
        try {
            for (long n = 0; running; n++) {
                Deflater d = new Deflater(1 + (int) (n % 9));
                d.setInput(src);
                d.finish();
                int len = d.deflate(out);
                Inflater inf = new Inflater();
                inf.setInput(out, 0, len);
                inf.inflate(back);
                if (n % 32 != 0) {
                    // 31 in 32 are ended; the rest wait for the Cleaner (pending in the census).
                    d.end();
                    inf.end();
                }
                CHURN.incrementAndGet();
                Thread.sleep(2);
            }
        } catch (Exception e) {
            error(e);
        }
    }

    private static void jmx() {
        try {
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            ObjectName name = new ObjectName("io.offheapdoctor:type=OffHeapDoctor");
            String[] attrs = {"Rss", "MallocRetained", "ArenaCount", "TrimCount", "ZipInflatersAlive",
                "ZipInflatersPending", "FindingsCount", "MostSevereFinding", "SampleCount", "LastSampleTime"};
            while (running && !server.isRegistered(name)) {
                Thread.sleep(20);
            }
            for (long n = 0; running; n++) {
                try {
                    server.getAttributes(name, attrs);
                    if (!trimQuiet(System.currentTimeMillis())) {
                        server.invoke(name, "trimNow", null, null);
                    }
                    if (n % 20 == 0) {
                        server.invoke(name, "reportJson", null, null);
                    }
                    if (n % 40 == 0) {
                        server.invoke(name, "sampleNow", null, null);
                    }
                    JMX.incrementAndGet();
                } catch (Exception e) {
                    error(e);
                }
                Thread.sleep(50);
            }
        } catch (Exception e) {
            error(e);
        }
    }

    /**
     * Whether trimNow callers keep still at this wall-clock time: every third 10 s window, the
     * same in every process, so the agent's own trim interval is then the only caller.
     */
    static boolean trimQuiet(long epochMs) {
        return (epochMs / 10_000) % 3 == 2;
    }

    private static final List<java.nio.ByteBuffer> LEAKED = new ArrayList<java.nio.ByteBuffer>();

    private static void leak(int bytes) {
        try {
            while (running) {
                // allocateDirect mallocs and zeroes: every page of it is resident and in use.
                LEAKED.add(java.nio.ByteBuffer.allocateDirect(bytes));
                Thread.sleep(100);
            }
        } catch (Exception e) {
            error(e);
        }
    }

    private static void error(Exception e) {
        ERRORS.incrementAndGet();
        if (firstError == null) {
            firstError = String.valueOf(e);
        }
    }
}
