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
 *
 * <p>pool [seconds] [size]: a pool of size (default 800) Deflaters made at once and each used
 * (64 KiB compressed), then used by 4 threads for the given seconds (default 40): each use
 * compresses 8 KiB with one of them, and every 20th use replaces it with a new Deflater and ends
 * the old one. Prints "pool <size>" when made, then "pool_uses <n> replaced <n> at <epoch_ms>" and
 * "ended" at the end. Without the agent's scan: the agent's census (zipInterval) is what is under test.
 *
 * <p>gzip-leak [seconds] [per-second]: a GZIPOutputStream opened per request (default 10 a
 * second, for 40 s), 16 KiB written, never closed and kept reachable. Prints "leaked <n> at
 * <epoch_ms>".
 *
 * <p>estimate [n]: n (default 2000) Inflaters and Deflaters made fresh, then n of each used
 * (an Inflater inflates 64 KiB of output, a Deflater compresses 128 KiB), each set kept; after each
 * step one line "<step> <n> rss_anon_delta=<bytes> census_delta=<bytes>" with the growth of
 * RssAnon (/proc/self/status) and of the census's estimated_native_bytes over the step.
 */
public final class ZipWorkload {
    private static final List<Object> KEEP = new ArrayList<Object>();

    /**
     * The agent's first sample loads classes (and so may open jar Inflaters) on its own thread;
     * wait for it so the baseline is not disturbed by it.
     */
    /**
     * Waits until the agent (started by premain on a thread of its own) has loaded its library
     * and written its first sample; returns at once in a JVM without the agent's jar.
     */
    static void awaitFirstSample() throws Exception {
        Class<?> doctor;
        try {
            doctor = Class.forName("io.offheapdoctor.Doctor");
        } catch (ClassNotFoundException e) {
            return;
        }
        Method get = doctor.getMethod("get");
        Method last = doctor.getMethod("lastSample");
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (System.nanoTime() < deadline) {
            Object d = get.invoke(null);
            if (d != null && last.invoke(d) != null) {
                return;
            }
            Thread.sleep(20);
        }
    }

    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "counts";
        if (mode.equals("pool")) {
            awaitFirstSample();
            pool(args.length > 1 ? Integer.parseInt(args[1]) : 40, args.length > 2 ? Integer.parseInt(args[2]) : 800);
            return;
        }
        if (mode.equals("gzip-leak")) {
            awaitFirstSample();
            gzipLeak(args.length > 1 ? Integer.parseInt(args[1]) : 40, args.length > 2 ? Integer.parseInt(args[2]) : 10);
            return;
        }
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
        if (mode.equals("estimate")) {
            estimate(scan, args.length > 1 ? Integer.parseInt(args[1]) : 2000);
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

    /** Text that compresses about as well as a JSON response: words from a small vocabulary. */
    private static byte[] text(int size, long seed) {
        String[] words = {"\"id\":", "\"name\":", "\"value\":", "true", "false", "null", "{", "}", ",",
            "offheap", "doctor", "memory", "deflater", "pool", "request", "response", "0", "1", "2", "42"};
        java.util.Random r = new java.util.Random(seed);
        StringBuilder b = new StringBuilder(size + 16);
        while (b.length() < size) {
            b.append(words[r.nextInt(words.length)]);
            if (r.nextInt(4) == 0) {
                b.append(r.nextInt(100000));
            }
        }
        return b.substring(0, size).getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    }

    /** Compresses data with d (a sync flush: the stream stays open, the Deflater unfinished). */
    private static void use(Deflater d, byte[] data, byte[] out) {
        d.setInput(data);
        while (!d.needsInput()) {
            d.deflate(out, 0, out.length, Deflater.SYNC_FLUSH);
        }
    }

    private static void pool(int seconds, int size) throws Exception {
        final byte[] first = text(64 * 1024, 1);
        final java.util.concurrent.atomic.AtomicReferenceArray<Deflater> slots =
                new java.util.concurrent.atomic.AtomicReferenceArray<Deflater>(size);
        byte[] out = new byte[64 * 1024];
        for (int i = 0; i < size; i++) {
            Deflater d = new Deflater();
            use(d, first, out);
            slots.set(i, d);
        }
        System.out.println("pool " + size);
        final long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        final java.util.concurrent.atomic.AtomicLong uses = new java.util.concurrent.atomic.AtomicLong();
        final java.util.concurrent.atomic.AtomicLong replaced = new java.util.concurrent.atomic.AtomicLong();
        Thread[] users = new Thread[4];
        for (int t = 0; t < users.length; t++) {
            final int seed = t;
            users[t] = new Thread(new Runnable() {
                @Override
                public void run() {
                    java.util.Random r = new java.util.Random(seed);
                    byte[] data = text(8 * 1024, 100 + seed);
                    byte[] buf = new byte[16 * 1024];
                    try {
                        while (System.nanoTime() < end) {
                            int i = r.nextInt(slots.length());
                            if (uses.incrementAndGet() % 20 == 0) {
                                Deflater fresh = new Deflater();
                                use(fresh, data, buf);
                                slots.getAndSet(i, fresh).end();
                                replaced.incrementAndGet();
                            } else {
                                Deflater d = slots.get(i);
                                synchronized (d) {
                                    try {
                                        use(d, data, buf);
                                    } catch (NullPointerException e) {
                                        // replaced and ended by another user meanwhile: next one
                                    }
                                }
                            }
                            Thread.sleep(2);
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }, "pool-user-" + t);
            users[t].start();
        }
        for (Thread t : users) {
            t.join();
        }
        System.out.println("pool_uses " + uses.get() + " replaced " + replaced.get() + " at " + System.currentTimeMillis());
        for (int i = 0; i < size; i++) {
            slots.get(i).end();
        }
        System.out.println("ended");
    }

    private static void gzipLeak(int seconds, int perSecond) throws Exception {
        byte[] data = text(16 * 1024, 7);
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        long pause = Math.max(1, 1000 / perSecond);
        while (System.nanoTime() < end) {
            GZIPOutputStream out = new GZIPOutputStream(new ByteArrayOutputStream());
            out.write(data);
            out.flush();
            KEEP.add(out); // the bug: never closed
            Thread.sleep(pause);
        }
        System.out.println("leaked " + KEEP.size() + " at " + System.currentTimeMillis());
    }

    /** RssAnon of this process, in bytes, from /proc/self/status. */
    private static long rssAnon() throws IOException {
        java.io.BufferedReader r = new java.io.BufferedReader(new java.io.FileReader("/proc/self/status"));
        try {
            for (String line = r.readLine(); line != null; line = r.readLine()) {
                if (line.startsWith("RssAnon:")) {
                    return Long.parseLong(line.substring(8).trim().split("\\s+")[0]) * 1024;
                }
            }
        } finally {
            r.close();
        }
        throw new IOException("no RssAnon in /proc/self/status");
    }

    private static long censusBytes(Method scan) throws Exception {
        String json = (String) scan.invoke(null);
        int p = json.indexOf("\"estimated_native_bytes\":") + "\"estimated_native_bytes\":".length();
        int e = p;
        while (e < json.length() && Character.isDigit(json.charAt(e))) {
            e++;
        }
        return Long.parseLong(json.substring(p, e));
    }

    /**
     * One step of the estimate check: runs make, then prints how much RssAnon and the census's
     * estimate grew. The census is taken on both sides so its own garbage is in the heap already.
     */
    private static void step(String name, int n, Method scan, Runnable make) throws Exception {
        censusBytes(scan);
        long est0 = censusBytes(scan);
        long rss0 = rssAnon();
        make.run();
        long rss1 = rssAnon();
        long est1 = censusBytes(scan);
        System.out.println(name + " " + n + " rss_anon_delta=" + (rss1 - rss0) + " census_delta=" + (est1 - est0));
    }

    private static void estimate(Method scan, final int n) throws Exception {
        final byte[] deflated = compress(128 * 1024);
        final byte[] plain = text(128 * 1024, 3);
        final List<Object> kept = new ArrayList<Object>();
        step("inflater_fresh", n, scan, new Runnable() {
            @Override
            public void run() {
                for (int i = 0; i < n; i++) {
                    kept.add(new Inflater());
                }
            }
        });
        step("deflater_fresh", n, scan, new Runnable() {
            @Override
            public void run() {
                for (int i = 0; i < n; i++) {
                    kept.add(new Deflater());
                }
            }
        });
        step("inflater_used", n, scan, new Runnable() {
            @Override
            public void run() {
                byte[] buf = new byte[64 * 1024];
                try {
                    for (int i = 0; i < n; i++) {
                        Inflater f = new Inflater();
                        f.setInput(deflated);
                        f.inflate(buf); // 64 KiB out, more to come: mid-stream
                        kept.add(f);
                    }
                } catch (java.util.zip.DataFormatException e) {
                    throw new IllegalStateException(e);
                }
            }
        });
        step("deflater_used", n, scan, new Runnable() {
            @Override
            public void run() {
                byte[] buf = new byte[64 * 1024];
                for (int i = 0; i < n; i++) {
                    Deflater d = new Deflater();
                    use(d, plain, buf);
                    kept.add(d);
                }
            }
        });
        end(kept);
        System.out.println("ended " + kept.size());
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
