import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.zip.Deflater;
import java.util.zip.DeflaterOutputStream;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;
import java.util.zip.Inflater;
import java.util.zip.InflaterInputStream;

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
 *
 * <p>gzip: the same states with real streams: 200 GZIPInputStreams (each mid-read), 100
 * GZIPOutputStreams and 50 DeflaterOutputStreams kept open ("open"); 100 GZIPInputStreams and 50
 * GZIPOutputStreams opened and closed ("closed": nothing more); 40 InflaterInputStreams over an
 * Inflater of the caller's own, closed ("closed_own": close() does not end it, 40 more alive);
 * then the open ones dropped while the Cleaner is held busy ("blocked"), released ("drained").
 *
 * <p>finalizable: subclasses that go through a finalizer: 120 Inflaters and 40 Deflaters whose
 * finalize() ends them, 30 Inflaters that override end() (JDK 11: a FinalizableZStreamRef; JDK 17+:
 * the Cleaner) kept ("live"); then 60, 20 and 10 of them dropped while the finalizer thread is
 * held in a blocking finalize() ("blocked"); released ("drained"); the rest ended ("ended").
 * finalizable-live: only up to "live" (for --finalization=disabled, where nothing finalizes).
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

        if (mode.equals("gzip")) {
            gzip(scan, compressed);
            return;
        }
        if (mode.startsWith("finalizable")) {
            finalizable(scan, compressed, mode.equals("finalizable-live"));
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

        CountDownLatch release = holdCleaner();
        dropUnended(150, 50);
        System.gc(); // clears the phantom references: the dropped ones are now pending
        report("blocked", scan);

        release.countDown();
        System.out.println("drained " + awaitDrained(scan));

        for (Inflater f : inflaters) {
            f.end();
        }
        for (Deflater f : deflaters) {
            f.end();
        }
        report("ended", scan);
        System.out.println("kept " + KEEP.size());
    }

    /**
     * Holds the common Cleaner's only thread in an action of ours, so what the next GC finds
     * unreachable stays pending until the returned latch is counted down.
     */
    private static CountDownLatch holdCleaner() throws Exception {
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
        return release;
    }

    /** Holds the finalizer thread in a finalize() of ours, the same way. */
    private static CountDownLatch holdFinalizer() throws Exception {
        final CountDownLatch busy = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);
        new Blocker(busy, release).hashCode();
        for (int i = 0; i < 50 && busy.getCount() > 0; i++) {
            System.gc();
            busy.await(200, TimeUnit.MILLISECONDS);
        }
        if (busy.getCount() > 0) {
            throw new IllegalStateException("the finalizer thread never ran the blocking finalize()");
        }
        return release;
    }

    static final class Blocker {
        private final CountDownLatch busy;
        private final CountDownLatch release;

        Blocker(CountDownLatch busy, CountDownLatch release) {
            this.busy = busy;
            this.release = release;
        }

        @Override
        protected void finalize() throws InterruptedException {
            busy.countDown();
            release.await(60, TimeUnit.SECONDS);
        }
    }

    /** Ends itself when finalized, as JDK 8's Inflater did. */
    static final class FinalizingInflater extends Inflater {
        @Override
        protected void finalize() {
            end();
        }
    }

    static final class FinalizingDeflater extends Deflater {
        @Override
        protected void finalize() {
            end();
        }
    }

    /** Overrides end(): JDK 9-17 then release it through a FinalizableZStreamRef (not in 17). */
    static final class EndingInflater extends Inflater {
        @Override
        public void end() {
            super.end();
        }
    }

    private static void gzip(Method scan, byte[] deflated) throws Exception {
        byte[] gz = gzipBytes(64 * 1024);
        List<Closeable> open = new ArrayList<Closeable>();
        byte[] buf = new byte[4096];
        for (int i = 0; i < 200; i++) {
            GZIPInputStream in = new GZIPInputStream(new ByteArrayInputStream(gz));
            if (in.read(buf) <= 0) { // mid-read: zlib state and window allocated
                throw new IllegalStateException("nothing inflated");
            }
            open.add(in);
        }
        for (int i = 0; i < 100; i++) {
            GZIPOutputStream out = new GZIPOutputStream(new ByteArrayOutputStream());
            out.write(buf);
            open.add(out);
        }
        for (int i = 0; i < 50; i++) {
            open.add(new DeflaterOutputStream(new ByteArrayOutputStream()));
        }
        report("open", scan);
        for (int i = 0; i < 100; i++) {
            GZIPInputStream in = new GZIPInputStream(new ByteArrayInputStream(gz));
            while (in.read(buf) > 0) {
                // read it all
            }
            in.close();
            KEEP.add(in);
        }
        for (int i = 0; i < 50; i++) {
            GZIPOutputStream out = new GZIPOutputStream(new ByteArrayOutputStream());
            out.write(buf);
            out.close();
            KEEP.add(out);
        }
        report("closed", scan);
        for (int i = 0; i < 40; i++) {
            // The caller's own Inflater: close() leaves it to the caller (usesDefaultInflater is false).
            InflaterInputStream in = new InflaterInputStream(new ByteArrayInputStream(deflated), new Inflater());
            in.read(buf);
            in.close();
            KEEP.add(in);
        }
        report("closed_own", scan);

        CountDownLatch release = holdCleaner();
        open.clear();
        System.gc(); // clears the phantom references: the dropped ones are now pending
        report("blocked", scan);
        release.countDown();
        System.out.println("drained " + awaitDrained(scan));
    }

    private static void finalizable(Method scan, byte[] deflated, boolean liveOnly) throws Exception {
        List<Object> kept = new ArrayList<Object>();
        List<Object> dropped = new ArrayList<Object>();
        byte[] buf = new byte[4096];
        for (int i = 0; i < 120; i++) {
            Inflater f = new FinalizingInflater();
            f.setInput(deflated);
            f.inflate(buf);
            (i < 60 ? kept : dropped).add(f);
        }
        for (int i = 0; i < 40; i++) {
            (i < 20 ? kept : dropped).add(new FinalizingDeflater());
        }
        for (int i = 0; i < 30; i++) {
            (i < 20 ? kept : dropped).add(new EndingInflater());
        }
        report("live", scan);
        if (liveOnly) {
            end(kept);
            end(dropped);
            report("ended", scan);
            return;
        }
        // JDK 9-17 (11 here) finalize the EndingInflaters' ZStreamRefs; later JDKs clean them.
        long endingFinalized = 0;
        try {
            Class.forName("java.util.zip.Inflater$InflaterZStreamRef$FinalizableZStreamRef");
            endingFinalized = 10;
        } catch (ClassNotFoundException e) {
            // cleaned
        }
        CountDownLatch release = holdFinalizer();
        dropped.clear();
        System.gc();
        // The reference handler thread enqueues what the GC found, the Cleaner cleans the
        // EndingInflaters it does: give them a moment.
        String blocked = null;
        for (long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10); System.nanoTime() < end; ) {
            blocked = (String) scan.invoke(null);
            if (number(blocked, "inflaters", "finalizable_pending") == 60 + endingFinalized
                    && number(blocked, "deflaters", "finalizable_pending") == 20
                    && pending(blocked, "inflaters") == 0) {
                break;
            }
            Thread.sleep(20);
        }
        System.out.println("blocked " + scan.invoke(null));
        release.countDown();
        String drained = null;
        for (long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20); System.nanoTime() < end; ) {
            drained = (String) scan.invoke(null);
            if (number(drained, "inflaters", "finalizable_pending") == 0
                    && number(drained, "deflaters", "finalizable_pending") == 0
                    && pending(drained, "inflaters") == 0) {
                break;
            }
            Thread.sleep(20);
        }
        System.out.println("drained " + drained);
        end(kept);
        report("ended", scan);
    }

    private static void end(List<Object> zips) {
        for (Object o : zips) {
            if (o instanceof Inflater) {
                ((Inflater) o).end();
            } else {
                ((Deflater) o).end();
            }
        }
    }

    private static String awaitDrained(Method scan) throws Exception {
        String drained = null;
        for (long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20); System.nanoTime() < end; ) {
            drained = (String) scan.invoke(null);
            if (pending(drained, "inflaters") == 0 && pending(drained, "deflaters") == 0) {
                break;
            }
            Thread.sleep(20);
        }
        return drained;
    }

    private static byte[] gzipBytes(int size) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        GZIPOutputStream out = new GZIPOutputStream(b);
        for (int i = 0; i < size; i++) {
            out.write("abcdefgh".charAt((i * 7 + i / 13) % 8));
        }
        out.close();
        return b.toByteArray();
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
        return number(json, kind, "pending_cleanup");
    }

    private static long number(String json, String kind, String key) {
        int at = json.indexOf("\"" + kind + "\"");
        int p = json.indexOf("\"" + key + "\":", at) + key.length() + 3;
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
