package io.offheapdoctor.demo;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.zip.Deflater;

/**
 * A small service that misbehaves on purpose, the way the motivating incident did: worker threads
 * compress with zlib (native memory from glibc, spread over per-thread malloc arenas) and some
 * Deflaters are never ended, so native memory grows while the heap stays small.
 */
public final class Demo {
    private Demo() {}

    public static void main(String[] args) throws Exception {
        int seconds = args.length > 0 ? Integer.parseInt(args[0]) : 6;
        final int threads = 8;
        final List<Deflater> leaked = new ArrayList<>();
        final long end = System.nanoTime() + seconds * 1_000_000_000L;
        final CountDownLatch done = new CountDownLatch(threads);
        System.out.println("demo: " + threads + " threads compressing for " + seconds + " s, leaking some Deflaters");
        for (int t = 0; t < threads; t++) {
            Thread w = new Thread(() -> {
                byte[] in = new byte[256 * 1024];
                byte[] out = new byte[64 * 1024];
                for (int i = 0; i < in.length; i++) {
                    in[i] = (byte) (i * 31 % 251);
                }
                int n = 0;
                while (System.nanoTime() < end) {
                    Deflater d = new Deflater(Deflater.BEST_COMPRESSION);
                    d.setInput(in);
                    d.finish();
                    while (!d.finished()) {
                        d.deflate(out);
                    }
                    if (++n % 4 == 0) {
                        synchronized (leaked) {
                            leaked.add(d);
                        }
                    } else {
                        d.end();
                    }
                }
                done.countDown();
            }, "demo-worker-" + t);
            w.start();
        }
        for (int s = 1; s <= seconds; s++) {
            Thread.sleep(1000);
            synchronized (leaked) {
                System.out.println("demo: t=" + s + "s unended Deflaters=" + leaked.size());
            }
        }
        done.await();
        synchronized (leaked) {
            System.out.println("demo: done, unended Deflaters=" + leaked.size());
        }
        // The agent's next samples see the final state: the demo's script checks its census
        // against it. A census spaces itself by its cost, which a loaded machine stretches.
        Thread.sleep(4000);
        System.out.println("demo: done");
    }
}
