import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * The workloads of bench/sites_bench.py, each making many of what the agent's call sites hook.
 * {@code SitesBench hello}: prints {@code main_ns=} (System.nanoTime, CLOCK_MONOTONIC like the
 * script's clock) at main's first line and exits. {@code SitesBench zip|direct <threads>
 * <warmup ms> <measure ms>}: the same {@code main_ns=} line, then runs the load on its threads and
 * prints {@code ops=<n> ns=<measured> rss=<VmRSS bytes after the load, a GC and a trim> cached=<bytes>}.
 * zip: each operation gzips a 4 KiB message into a fresh GZIPOutputStream and reads it back
 * through a fresh GZIPInputStream, both closed (an Inflater and a Deflater each time).
 * direct: each operation allocates a direct buffer of 4 KiB to 1 MiB (log-uniform), touches it
 * and drops it; one in 16 replaces an entry of a kept cache of 64 buffers instead.
 */
public class SitesBench {
    static volatile boolean measuring;
    static volatile boolean stop;

    public static void main(String[] args) throws Exception {
        System.out.println("main_ns=" + System.nanoTime());
        if (args[0].equals("hello")) {
            return;
        }
        final String kind = args[0];
        int threads = Integer.parseInt(args[1]);
        long warmupMs = Long.parseLong(args[2]);
        long measureMs = Long.parseLong(args[3]);
        final AtomicLongArray ops = new AtomicLongArray(threads * 16);
        final AtomicReferenceArray<ByteBuffer> cache = new AtomicReferenceArray<>(64);
        Thread[] workers = new Thread[threads];
        for (int t = 0; t < threads; t++) {
            final int slot = t * 16;
            final long seed = 17 + t;
            workers[t] = new Thread(new Runnable() {
                @Override
                public void run() {
                    Random random = new Random(seed);
                    byte[] message = message(random);
                    long n = 0;
                    try {
                        while (!stop) {
                            if (kind.equals("zip")) {
                                zipOnce(message);
                            } else {
                                directOnce(random, cache);
                            }
                            if (measuring) {
                                n++;
                            }
                        }
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                    ops.set(slot, n);
                }
            }, "bench-" + t);
            workers[t].start();
        }
        Thread.sleep(warmupMs);
        measuring = true;
        long t0 = System.nanoTime();
        Thread.sleep(measureMs);
        measuring = false;
        long ns = System.nanoTime() - t0;
        stop = true;
        long total = 0;
        for (int t = 0; t < threads; t++) {
            workers[t].join();
            total += ops.get(t * 16);
        }
        // What stays resident once the dropped buffers and streams are collected and glibc has
        // returned the free memory it keeps (the agent's trimNow): the load's garbage would
        // otherwise bury a difference of a few MiB.
        System.gc();
        Thread.sleep(200);
        try {
            javax.management.MBeanServer server = java.lang.management.ManagementFactory.getPlatformMBeanServer();
            javax.management.ObjectName doctor = new javax.management.ObjectName("io.offheapdoctor:type=OffHeapDoctor");
            for (int i = 0; i < 100 && !server.isRegistered(doctor); i++) {
                Thread.sleep(100);
            }
            server.invoke(doctor, "trimNow", null, null);
        } catch (Exception e) {
            System.out.println("trim_failed=1 " + e);
        }
        System.out.println("ops=" + total + " ns=" + ns + " rss=" + vmRss() + " cached=" + cached(cache));
    }

    /** 4 KiB of text-like bytes: compressible, as a message is. */
    static byte[] message(Random random) {
        String words = "offheap doctor call site inflater deflater buffer thread ";
        StringBuilder b = new StringBuilder(4096);
        while (b.length() < 4096) {
            int i = random.nextInt(words.length() - 8);
            b.append(words, i, i + 8).append(random.nextInt(1000));
        }
        return b.substring(0, 4096).getBytes(StandardCharsets.US_ASCII);
    }

    static void zipOnce(byte[] message) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(2048);
        try (java.util.zip.GZIPOutputStream out = new java.util.zip.GZIPOutputStream(bytes)) {
            out.write(message);
        }
        byte[] buf = new byte[4096];
        int read = 0;
        try (java.util.zip.GZIPInputStream in = new java.util.zip.GZIPInputStream(
                new ByteArrayInputStream(bytes.toByteArray()))) {
            for (int r; (r = in.read(buf)) > 0;) {
                read += r;
            }
        }
        if (read != message.length) {
            throw new IOException("read back " + read + " bytes of " + message.length);
        }
    }

    static void directOnce(Random random, AtomicReferenceArray<ByteBuffer> cache) {
        // Log-uniform between 4 KiB (2^12) and 1 MiB (2^20).
        int size = (int) Math.pow(2, 12 + 8 * random.nextDouble());
        ByteBuffer b = ByteBuffer.allocateDirect(size);
        b.put(0, (byte) 1).put(size - 1, (byte) 2);
        if (random.nextInt(16) == 0) {
            cache.set(random.nextInt(cache.length()), b);
        }
    }

    /** Bytes the cache keeps, so the cache stays reachable until the end. */
    static long cached(AtomicReferenceArray<ByteBuffer> cache) {
        long n = 0;
        for (int i = 0; i < cache.length(); i++) {
            ByteBuffer b = cache.get(i);
            n += b == null ? 0 : b.capacity();
        }
        return n;
    }

    static long vmRss() throws IOException {
        for (String line : Files.readAllLines(Paths.get("/proc/self/status"), StandardCharsets.US_ASCII)) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        return -1;
    }
}
