import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.Deflater;

/**
 * Grows native memory in known ways, one phase after another, printing the wall-clock time at
 * the end of each phase so a test can pick the samples in between.
 * Args: phases, each one of: direct=<MiB> (touched direct buffers, NMT sees them),
 * deflaters=<count> (zlib state, NMT does not see it), threads=<count> (idle threads),
 * spread=<threads> (each thread makes and keeps 30 used Deflaters at once, so glibc hands the
 * threads their own arenas), threadleak=<count> (idle threads started one every 50 ms),
 * drip=<MiB> (touched 1 MiB direct buffers, one every 100 ms), classes=<count> (generated
 * classes in leaked class loaders, one every 50 ms; see ClassLeak), sleep=<ms>, await=<n> (until the agent has written its n-th sample; at most 30 s),
 * await=+<n> (until n more samples than now).
 */
public class NativeGrowth {
    static final List<Object> keep = new ArrayList<>();

    /**
     * Each of {@code threads} threads, started together, makes and keeps 30 used Deflaters, so
     * glibc hands the threads their own arenas; the Deflaters go into {@code keep}.
     */
    /** Starts a daemon thread that sleeps until the JVM ends; counts {@code started} down once running. */
    static Thread idleThread(String name, final java.util.concurrent.CountDownLatch started) {
        Thread t = new Thread(() -> {
            if (started != null) {
                started.countDown();
            }
            try {
                Thread.sleep(Long.MAX_VALUE);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, name);
        t.setDaemon(true);
        t.start();
        return t;
    }

    static void spread(int threads, final List<Object> keep) throws InterruptedException {
        final java.util.concurrent.CyclicBarrier go = new java.util.concurrent.CyclicBarrier(threads);
        List<Thread> workers = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            Thread t = new Thread(() -> {
                try {
                    go.await();
                    byte[] src = new byte[64 * 1024];
                    byte[] dst = new byte[64 * 1024];
                    List<Deflater> mine = new ArrayList<>();
                    for (int k = 0; k < 30; k++) {
                        Deflater d = new Deflater(Deflater.BEST_COMPRESSION);
                        d.setInput(src);
                        d.deflate(dst, 0, dst.length, Deflater.SYNC_FLUSH);
                        mine.add(d);
                    }
                    synchronized (keep) {
                        keep.addAll(mine);
                    }
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }, "spread-" + i);
            t.start();
            workers.add(t);
        }
        for (Thread t : workers) {
            t.join();
        }
    }

    static void burst(int threads) throws InterruptedException {
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            Thread t = new Thread(() -> {
                byte[] src = new byte[128 * 1024];
                for (int k = 0; k < src.length; k++) {
                    src[k] = (byte) (k * 7 % 13);
                }
                byte[] dst = new byte[64 * 1024];
                List<Deflater> mine = new ArrayList<>();
                for (int k = 0; k < 40; k++) {
                    Deflater d = new Deflater(Deflater.BEST_COMPRESSION);
                    d.setInput(src);
                    d.deflate(dst, 0, dst.length, Deflater.SYNC_FLUSH);
                    mine.add(d);
                }
                for (Deflater d : mine) {
                    d.end();
                }
            }, "burst-" + i);
            t.start();
            ts.add(t);
        }
        for (Thread t : ts) {
            t.join();
        }
    }

    static void stress(int seconds) throws InterruptedException {
        final long end = System.nanoTime() + seconds * 1_000_000_000L;
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            final int id = i;
            Thread t = new Thread(() -> {
                java.util.Random rnd = new java.util.Random(id);
                byte[] src = new byte[16 * 1024];
                byte[] dst = new byte[32 * 1024];
                while (System.nanoTime() < end) {
                    Deflater d = new Deflater(1 + rnd.nextInt(9));
                    d.setInput(src, 0, 1 + rnd.nextInt(src.length));
                    d.finish();
                    d.deflate(dst);
                    d.end();
                    ByteBuffer.allocateDirect(64 + rnd.nextInt(8192)).put(0, (byte) 1);
                }
            }, "stress-" + i);
            t.start();
            ts.add(t);
        }
        long trims = 0;
        long failures = 0;
        double maxMs = 0;
        java.util.regex.Pattern dur = java.util.regex.Pattern.compile("\"duration_ns\":(\\d+)");
        while (System.nanoTime() < end) {
            try {
                String r = io.offheapdoctor.NativeCore.trim(5_000);
                java.util.regex.Matcher m = dur.matcher(r);
                if (m.find()) {
                    trims++;
                    maxMs = Math.max(maxMs, Long.parseLong(m.group(1)) / 1e6);
                } else {
                    failures++;
                }
            } catch (RuntimeException e) {
                failures++;
                System.out.println("stresserror " + e);
            }
            Thread.sleep(10);
        }
        for (Thread t : ts) {
            t.join();
        }
        System.out.printf("stressresult trims=%d failures=%d max_ms=%.3f%n", trims, failures, maxMs);
    }

    static long vmRssBytes() throws java.io.IOException {
        java.io.BufferedReader r = new java.io.BufferedReader(new java.io.FileReader("/proc/self/status"));
        try {
            for (String line; (line = r.readLine()) != null; ) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
            return -1;
        } finally {
            r.close();
        }
    }

    static long currentSeq() throws Exception {
        Class<?> doctor = Class.forName("io.offheapdoctor.Doctor");
        Object d = doctor.getMethod("get").invoke(null);
        Object line = d == null ? null : doctor.getMethod("lastSample").invoke(d);
        if (line == null) {
            return 0;
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"seq\":(\\d+)").matcher((String) line);
        return m.find() ? Long.parseLong(m.group(1)) : 0;
    }

    /** Waits until the agent's latest sample has seq >= n (the agent runs on its own thread). */
    static void awaitSample(long n) throws Exception {
        Class<?> doctor = Class.forName("io.offheapdoctor.Doctor");
        java.lang.reflect.Method get = doctor.getMethod("get");
        java.lang.reflect.Method last = doctor.getMethod("lastSample");
        java.util.regex.Pattern seq = java.util.regex.Pattern.compile("\"seq\":(\\d+)");
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (System.nanoTime() < deadline) {
            Object d = get.invoke(null);
            Object line = d == null ? null : last.invoke(d);
            if (line != null) {
                java.util.regex.Matcher m = seq.matcher((String) line);
                if (m.find() && Long.parseLong(m.group(1)) >= n) {
                    return;
                }
            }
            Thread.sleep(10);
        }
        throw new IllegalStateException("the agent wrote no sample " + n + " within 30 s");
    }

    public static void main(String[] args) throws Exception {
        System.out.println("start " + System.currentTimeMillis());
        for (String phase : args) {
            String[] kv = phase.contains("=") ? phase.split("=") : new String[] {phase, "0"};
            boolean relative = kv[1].startsWith("+");
            int n = Integer.parseInt(relative ? kv[1].substring(1) : kv[1]);
            switch (kv[0]) {
                case "direct":
                    for (int i = 0; i < n; i++) {
                        ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                        for (int p = 0; p < b.capacity(); p += 4096) {
                            b.put(p, (byte) 1);
                        }
                        keep.add(b);
                    }
                    break;
                case "deflaters":
                    byte[] in = new byte[4096];
                    byte[] out = new byte[8192];
                    for (int i = 0; i < n; i++) {
                        Deflater d = new Deflater(Deflater.BEST_COMPRESSION);
                        d.setInput(in);
                        d.deflate(out, 0, out.length, Deflater.SYNC_FLUSH);
                        keep.add(d);
                    }
                    break;
                case "threads":
                    for (int i = 0; i < n; i++) {
                        keep.add(idleThread("idle-" + i, null));
                    }
                    break;
                case "threadleak":
                    for (int i = 0; i < n; i++) {
                        keep.add(idleThread("leaked-" + i, null));
                        Thread.sleep(50);
                    }
                    break;
                case "drip":
                    for (int i = 0; i < n; i++) {
                        ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                        for (int p = 0; p < b.capacity(); p += 4096) {
                            b.put(p, (byte) 1);
                        }
                        keep.add(b);
                        Thread.sleep(100);
                    }
                    break;
                case "classes":
                    System.out.println("classbytes " + ClassLeak.load(n, 50));
                    break;
                case "spread":
                    spread(n, keep);
                    break;
                case "burst":
                    burst(n);
                    break;
                case "gc":
                    System.gc();
                    break;
                case "trim": {
                    // The process's own VmRSS around the call: a figure the agent does not compute.
                    long before = vmRssBytes();
                    String result = io.offheapdoctor.NativeCore.trim(60_000);
                    long after = vmRssBytes();
                    System.out.println("trimresult " + result);
                    System.out.println("trimvmrss " + before + " " + after);
                    break;
                }
                case "stress":
                    stress(n);
                    break;
                case "sleep":
                    Thread.sleep(n);
                    break;
                case "await":
                    awaitSample(relative ? currentSeq() + n : n);
                    break;
                default:
                    throw new IllegalArgumentException(phase);
            }
            System.out.println(kv[0] + " " + System.currentTimeMillis());
            System.out.flush();
        }
    }
}
