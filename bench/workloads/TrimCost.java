import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.Deflater;

/**
 * What one trim costs as a function of what glibc retains: 16 threads fill their arenas with
 * used Deflaters (about 256 KiB of zlib state each) and end seven of every eight, so freed chunks
 * stay trapped between live ones; then, with <churn> threads allocating and freeing zlib streams
 * meanwhile, the agent trims once. Prints
 * {@code result retained_mib=<r> churn=<n> released=<b> duration_ms=<d> max_stall_ms=<s> base_stall_ms=<s0>}.
 * Args: retained-MiB churn-threads. Run with the agent on the class path (-javaagent).
 */
public class TrimCost {
    static final AtomicBoolean STOP = new AtomicBoolean();
    static final AtomicLong MAX_STALL = new AtomicLong();

    public static void main(String[] args) throws Exception {
        int retainedMiB = Integer.parseInt(args[0]);
        int churn = Integer.parseInt(args[1]);
        final int perThread = Math.max(8, retainedMiB * 4 / 16 * 8 / 7);
        final List<Deflater> pinned = new ArrayList<>();
        List<Thread> fillers = new ArrayList<>();
        for (int t = 0; t < 16; t++) {
            Thread f = new Thread(() -> {
                byte[] src = new byte[96 * 1024];
                for (int i = 0; i < src.length; i++) {
                    src[i] = (byte) (i * 31 % 253);
                }
                byte[] dst = new byte[64 * 1024];
                List<Deflater> mine = new ArrayList<>();
                for (int i = 0; i < perThread; i++) {
                    Deflater d = new Deflater(Deflater.BEST_COMPRESSION);
                    d.setInput(src);
                    d.deflate(dst, 0, dst.length, Deflater.SYNC_FLUSH);
                    mine.add(d);
                }
                for (int i = 0; i < mine.size(); i++) {
                    if (i % 8 == 7) {
                        synchronized (pinned) {
                            pinned.add(mine.get(i));
                        }
                    } else {
                        mine.get(i).end();
                    }
                }
            });
            f.start();
            fillers.add(f);
        }
        for (Thread f : fillers) {
            f.join();
        }
        List<Thread> churners = new ArrayList<>();
        for (int t = 0; t < churn; t++) {
            Thread c = new Thread(TrimCost::churn);
            c.setDaemon(true);
            c.start();
            churners.add(c);
        }
        Thread.sleep(1000);
        long baseStall = MAX_STALL.getAndSet(0);
        String r = io.offheapdoctor.NativeCore.trim(120_000);
        long stall = MAX_STALL.get();
        STOP.set(true);
        for (Thread c : churners) {
            c.join();
        }
        System.out.printf("result retained_mib=%d churn=%d released=%d duration_ms=%.3f max_stall_ms=%.3f base_stall_ms=%.3f%n",
                retainedMiB, churn, field(r, "released"), field(r, "duration_ns") / 1e6, stall / 1e6, baseStall / 1e6);
        synchronized (pinned) {
            System.out.println("pinned " + pinned.size());
        }
    }

    static long field(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\":(\\d+)").matcher(json);
        return m.find() ? Long.parseLong(m.group(1)) : -1;
    }

    static void churn() {
        byte[] src = new byte[8 * 1024];
        byte[] dst = new byte[16 * 1024];
        while (!STOP.get()) {
            long t0 = System.nanoTime();
            Deflater d = new Deflater(1);
            d.setInput(src);
            d.finish();
            d.deflate(dst);
            d.end();
            long dt = System.nanoTime() - t0;
            if (dt > MAX_STALL.get()) {
                MAX_STALL.accumulateAndGet(dt, Math::max);
            }
        }
    }
}
