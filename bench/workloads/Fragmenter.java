import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * The trim benchmark's workload: many threads allocate native memory of mixed sizes through JDK
 * paths that use malloc (zlib streams, small direct buffers), keeping a few long-lived objects
 * among many short-lived ones so freed chunks stay trapped behind live ones in glibc's arenas.
 * Deterministic per seed. Prints RSS once a second, then a summary line:
 * {@code result ops=<n> ops_per_s=<x> max_stall_ms=<y> peak_rss=<b> mean_rss=<b> final_rss=<b>
 * probe_max_gap_ms=<z>}.
 * Args: threads seconds seed [burst-ms idle-ms [linger-s [trim-at-s]]]. Work comes in bursts with
 * idle gaps between them, as a service's does: the gaps are where retained memory could be given
 * back. With linger-s the process stays that long after the load ends (its workers gone), printing
 * {@code loadend at_ms=<t>} first; with trim-at-s it then trims once itself that many seconds
 * after the load ended, through the agent's {@code NativeCore.trim} when the agent is there, and
 * prints {@code manualtrim at_ms=<t> rss_before=<b> rss_after=<b>} with VmRSS read around it.
 */
public class Fragmenter {
    static final AtomicLong OPS = new AtomicLong();
    static final AtomicLong MAX_STALL_NS = new AtomicLong();
    static volatile boolean running = true;
    static volatile boolean idle;

    public static void main(String[] args) throws Exception {
        final int threads = Integer.parseInt(args[0]);
        final int seconds = Integer.parseInt(args[1]);
        final long seed = Long.parseLong(args[2]);
        final long burstMs = args.length > 3 ? Long.parseLong(args[3]) : 3000;
        final long idleMs = args.length > 4 ? Long.parseLong(args[4]) : 2000;
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            final Random rnd = new Random(seed * 1000 + t);
            Thread w = new Thread(() -> work(rnd), "frag-" + t);
            w.setDaemon(true);
            workers.add(w);
            w.start();
        }
        Thread probe = new Thread(Fragmenter::probe, "frag-probe");
        probe.setDaemon(true);
        probe.start();
        long start = System.nanoTime();
        long peak = 0;
        double sum = 0;
        int n = 0;
        long rss = 0;
        long phaseStart = System.currentTimeMillis();
        for (int s = 1; s <= seconds; s++) {
            long wake = start + s * 1_000_000_000L;
            while (System.nanoTime() < wake) {
                long now = System.currentTimeMillis();
                long cycle = (now - phaseStart) % (burstMs + idleMs);
                idle = cycle >= burstMs;
                Thread.sleep(Math.max(1, Math.min(50, (wake - System.nanoTime()) / 1_000_000)));
            }
            rss = rss();
            peak = Math.max(peak, rss);
            sum += rss;
            n++;
            System.out.println("rss t=" + s + " " + rss);
        }
        running = false;
        for (Thread w : workers) {
            w.join(5000);
        }
        double elapsed = (System.nanoTime() - start) / 1e9;
        final int linger = args.length > 5 ? Integer.parseInt(args[5]) : 0;
        final int trimAt = args.length > 6 ? Integer.parseInt(args[6]) : -1;
        if (linger > 0) {
            long end = System.currentTimeMillis();
            System.out.println("loadend at_ms=" + end);
            for (int s = 1; s <= linger; s++) {
                Thread.sleep(Math.max(1, end + s * 1000L - System.currentTimeMillis()));
                if (s == trimAt) {
                    long before = rss();
                    long at = System.currentTimeMillis();
                    trimThroughAgent();
                    System.out.println("manualtrim at_ms=" + at + " rss_before=" + before + " rss_after=" + rss());
                }
                System.out.println("rss linger t=" + s + " " + rss());
            }
        }
        System.out.printf("result ops=%d ops_per_s=%.1f max_stall_ms=%.3f peak_rss=%d mean_rss=%d final_rss=%d"
                + " probe_max_gap_ms=%.3f%n",
                OPS.get(), OPS.get() / elapsed, MAX_STALL_NS.get() / 1e6, peak, (long) (sum / Math.max(1, n)), rss,
                PROBE_MAX_GAP_NS.get() / 1e6);
    }

    static void work(Random rnd) {
        byte[] plain = new byte[32 * 1024];
        rnd.nextBytes(plain);
        for (int i = 0; i < plain.length; i += 4) {
            plain[i] = 7; // partly compressible
        }
        byte[] buf = new byte[64 * 1024];
        byte[] out = new byte[64 * 1024];
        List<Object> longLived = new ArrayList<>();
        List<Object> shortLived = new ArrayList<>();
        while (running) {
            if (idle) {
                // Between bursts: drop everything short-lived and rest.
                endAll(shortLived);
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
                continue;
            }
            long t0 = System.nanoTime();
            int kind = rnd.nextInt(10);
            Object o;
            if (kind < 4) {
                Deflater d = new Deflater(1 + rnd.nextInt(9));
                d.setInput(plain, 0, 1024 + rnd.nextInt(plain.length - 1024));
                d.finish();
                int len = d.deflate(buf);
                Inflater inf = new Inflater();
                inf.setInput(buf, 0, len);
                try {
                    inf.inflate(out);
                } catch (java.util.zip.DataFormatException e) {
                    throw new IllegalStateException(e);
                }
                o = rnd.nextBoolean() ? d : inf;
                (o == d ? inf : d).getClass();
                if (o == d) {
                    inf.end();
                } else {
                    d.end();
                }
            } else if (kind < 8) {
                // With -Dfragmenter.big=<KiB>, one buffer in 8 is 128 KiB to that size: past
                // glibc's initial mmap threshold, as a server's I/O buffers often are.
                int size = BIG_KIB > 128 && rnd.nextInt(8) == 0
                        ? (128 + rnd.nextInt(BIG_KIB - 127)) * 1024 : 256 + rnd.nextInt(16 * 1024);
                o = ByteBuffer.allocateDirect(size);
            } else {
                Deflater d = new Deflater(Deflater.BEST_SPEED);
                d.setInput(plain, 0, 4096);
                d.deflate(buf, 0, buf.length, Deflater.SYNC_FLUSH);
                o = d;
            }
            long stall = System.nanoTime() - t0;
            if (stall > MAX_STALL_NS.get()) {
                MAX_STALL_NS.accumulateAndGet(stall, Math::max);
            }
            OPS.incrementAndGet();
            // One in 64 lives long (pinning the chunks around it), the rest die soon.
            if (rnd.nextInt(64) == 0 && longLived.size() < 400) {
                longLived.add(o);
            } else {
                shortLived.add(o);
                if (shortLived.size() > 64) {
                    endAll(shortLived);
                }
            }
        }
        endAll(shortLived);
    }

    static final AtomicLong PROBE_MAX_GAP_NS = new AtomicLong();
    static final int BIG_KIB = Integer.getInteger("fragmenter.big", 0);

    /**
     * What trims cost the application: one thread that mallocs and frees (a zlib stream's state,
     * through Inflater) in a loop while the load runs, recording the longest time one round took.
     * A trim holding an arena's lock shows up here as a gap.
     */
    static void probe() {
        while (running) {
            long t0 = System.nanoTime();
            new Inflater().end();
            long gap = System.nanoTime() - t0;
            if (gap > PROBE_MAX_GAP_NS.get()) {
                PROBE_MAX_GAP_NS.accumulateAndGet(gap, Math::max);
            }
        }
    }

    static void endAll(List<Object> objs) {
        for (Object x : objs) {
            if (x instanceof Deflater) {
                ((Deflater) x).end();
            } else if (x instanceof Inflater) {
                ((Inflater) x).end();
            }
        }
        objs.clear();
    }

    /** One trim through the agent's library, found by reflection (the bench runs without it too). */
    static void trimThroughAgent() throws Exception {
        Class<?> core = Class.forName("io.offheapdoctor.NativeCore");
        core.getMethod("trim", long.class).invoke(null, 60_000L);
    }

    static long rss() throws Exception {
        for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        return -1;
    }
}
