import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * Creates known numbers of Inflaters and Deflaters in every state the zip census tells apart and
 * prints the census after each step, one line "<step> <json>" on stdout. Run with the agent:
 * {@code java -javaagent:offheap-doctor.jar -cp <dir> ZipWorkload [counts|histogram|perf [n]]}.
 *
 * <p>counts: baseline; then 300 live Inflaters (100 of them mid-stream), 200 live Deflaters and
 * 100 ended Inflaters + 50 ended Deflaters kept reachable; then 150 Inflaters and 50 Deflaters
 * dropped unended while the common Cleaner's thread is held busy by a blocking action, so after
 * System.gc() they stay pending ("blocked"); then the Cleaner is released and the pending ones
 * drain ("drained"); then every live one is ended ("ended"). Counts in the census are the JVM's
 * own (the JDK keeps a few Inflaters for open jar files) plus ours: compare with "baseline".
 *
 * <p>histogram: the same up to "live", for the histogram fallback (run with
 * -Doffheap.doctor.test.zipHistogram=true): instances grow by 400 Inflaters and 250 Deflaters.
 *
 * <p>perf: n live Inflaters (default 100000), then the census three times ("perf").
 */
public final class ZipWorkload {
    private static final List<Object> KEEP = new ArrayList<Object>();

    /**
     * The agent's first sample loads classes (and so may open jar Inflaters) on its own thread;
     * wait for it so the baseline is not disturbed by it.
     */
    private static void awaitFirstSample() throws Exception {
        Class<?> doctor = Class.forName("io.offheapdoctor.Doctor");
        Object d = doctor.getMethod("get").invoke(null);
        if (d == null) {
            return;
        }
        Method last = doctor.getMethod("lastSample");
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (last.invoke(d) == null && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
    }

    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "counts";
        Method scan = Class.forName("io.offheapdoctor.ZipCensus").getMethod("scanForTest");
        scan.setAccessible(true);
        // Made before the baseline and kept, so the histogram (which sees garbage too) is exact.
        byte[] compressed = compress(64 * 1024);
        awaitFirstSample();
        report("baseline", scan);
        if (mode.equals("perf")) {
            int n = args.length > 1 ? Integer.parseInt(args[1]) : 100000;
            List<Inflater> live = new ArrayList<Inflater>(n);
            for (int i = 0; i < n; i++) {
                live.add(new Inflater());
            }
            for (int i = 0; i < 3; i++) {
                report("perf", scan);
            }
            for (Inflater f : live) {
                f.end();
            }
            report("ended", scan);
            return;
        }

        List<Inflater> inflaters = new ArrayList<Inflater>();
        List<Deflater> deflaters = new ArrayList<Deflater>();
        for (int i = 0; i < 300; i++) {
            Inflater f = new Inflater();
            if (i < 100) {
                f.setInput(compressed);
                f.inflate(new byte[4096]); // mid-stream: state and window allocated
            }
            inflaters.add(f);
        }
        for (int i = 0; i < 200; i++) {
            deflaters.add(new Deflater());
        }
        for (int i = 0; i < 100; i++) {
            Inflater f = new Inflater();
            f.end();
            KEEP.add(f);
        }
        for (int i = 0; i < 50; i++) {
            Deflater f = new Deflater();
            f.end();
            KEEP.add(f);
        }
        report("live", scan);
        if (mode.equals("histogram")) {
            return; // counts what is in the heap only: no pending/drained steps
        }

        // Hold the common Cleaner's only thread in an action of ours, so what the next GC finds
        // unreachable stays pending until we let it go.
        Object cleaner = Class.forName("jdk.internal.ref.CleanerFactory").getMethod("cleaner").invoke(null);
        Method register = Class.forName("java.lang.ref.Cleaner").getMethod("register", Object.class, Runnable.class);
        final CountDownLatch busy = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);
        register.invoke(cleaner, new Object(), new Runnable() {
            @Override
            public void run() {
                busy.countDown();
                try {
                    release.await(60, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
        for (int i = 0; i < 50 && busy.getCount() > 0; i++) {
            System.gc();
            busy.await(200, TimeUnit.MILLISECONDS);
        }
        if (busy.getCount() > 0) {
            throw new IllegalStateException("the common Cleaner never ran the blocking action");
        }
        dropUnended(150, 50);
        System.gc(); // clears the phantom references: the dropped ones are now pending
        report("blocked", scan);

        release.countDown();
        String drained = null;
        for (long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20); System.nanoTime() < end; ) {
            drained = (String) scan.invoke(null);
            if (pending(drained, "inflaters") == 0 && pending(drained, "deflaters") == 0) {
                break;
            }
            Thread.sleep(20);
        }
        System.out.println("drained " + drained);

        for (Inflater f : inflaters) {
            f.end();
        }
        for (Deflater f : deflaters) {
            f.end();
        }
        report("ended", scan);
        System.out.println("kept " + KEEP.size());
    }

    private static void dropUnended(int inflaters, int deflaters) {
        for (int i = 0; i < inflaters; i++) {
            new Inflater().getRemaining();
        }
        for (int i = 0; i < deflaters; i++) {
            new Deflater().needsInput();
        }
    }

    private static long pending(String json, String kind) {
        int at = json.indexOf("\"" + kind + "\"");
        int p = json.indexOf("\"pending_cleanup\":", at) + "\"pending_cleanup\":".length();
        int e = p;
        while (e < json.length() && Character.isDigit(json.charAt(e))) {
            e++;
        }
        return e == p ? -1 : Long.parseLong(json.substring(p, e));
    }

    private static byte[] compress(int size) {
        byte[] data = new byte[size];
        for (int i = 0; i < size; i++) {
            data[i] = (byte) "abcdefgh".charAt((i * 7 + i / 13) % 8);
        }
        Deflater d = new Deflater();
        d.setInput(data);
        d.finish();
        byte[] out = new byte[size + 1024];
        int n = d.deflate(out);
        d.end();
        KEEP.add(d);
        byte[] r = new byte[n];
        System.arraycopy(out, 0, r, 0, n);
        return r;
    }

    private static void report(String step, Method scan) throws Exception {
        System.out.println(step + " " + scan.invoke(null));
    }
}
