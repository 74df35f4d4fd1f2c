import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

/**
 * Leaks with known creation sites, each made by its own method. Each site prints where it is,
 * taken from a Throwable made on the same line as the allocation, so a test compares the agent's
 * site with the workload's own stack, not with a constant of the agent's.
 *
 * Modes (one per run, after the agent's first sample): {@code gzip <n> <seconds>}: n unclosed
 * GZIPInputStreams kept, made over the seconds; {@code direct <MiB> <seconds>}: a cache of 1 MiB
 * direct buffers kept, plus churned small ones from another method; {@code threads <n> <seconds>}:
 * a thread per request, never ending; {@code pool <n>}: n Inflaters made once and ended on
 * replacement (a steady pool); {@code churn <n>}: n Inflaters as fast as possible, one in ten kept. Prints "site <kind> <frame>" and "done", then sleeps a while for
 * the agent's last samples.
 */
public class SiteLeaks {
    static final List<Object> keep = new ArrayList<Object>();
    static byte[] gz;

    static String here(Throwable t) {
        StackTraceElement e = t.getStackTrace()[0];
        return e.getClassName() + "." + e.getMethodName() + "(" + e.getFileName() + ":" + e.getLineNumber() + ")";
    }

    static InputStream openIngest() throws IOException {
        Object[] made = {new GZIPInputStream(new ByteArrayInputStream(gz)), new Throwable()};
        site("inflater", (Throwable) made[1]);
        return (InputStream) made[0];
    }

    static ByteBuffer fillCache() {
        Object[] made = {ByteBuffer.allocateDirect(1 << 20), new Throwable()};
        site("direct", (Throwable) made[1]);
        return (ByteBuffer) made[0];
    }

    static ByteBuffer scratch(int size) {
        return ByteBuffer.allocateDirect(size);
    }

    static void serve(final CountDownLatch never) {
        Thread t = new Thread(new Runnable() {
            @Override
            public void run() {
                try {
                    never.await();
                } catch (InterruptedException e) {
                    // exit
                }
            }
        }, "request-" + keep.size());
        t.setDaemon(true);
        Object[] made = {null, new Throwable()}; t.start();
        site("thread", (Throwable) made[1]);
        keep.add(t);
    }

    static java.util.zip.Inflater pooled() {
        Object[] made = {new java.util.zip.Inflater(), new Throwable()};
        site("pool", (Throwable) made[1]);
        return (java.util.zip.Inflater) made[0];
    }

    static java.util.zip.Inflater churned() {
        Object[] made = {new java.util.zip.Inflater(), new Throwable()};
        site("churn", (Throwable) made[1]);
        return (java.util.zip.Inflater) made[0];
    }

    private static final java.util.Set<String> printed = new java.util.HashSet<String>();

    static void site(String kind, Throwable t) {
        if (printed.add(kind)) {
            System.out.println("site " + kind + " " + here(t));
        }
    }

    public static void main(String[] args) throws Exception {
        ZipWorkload.awaitFirstSample();
        String mode = args[0];
        int n = Integer.parseInt(args[1]);
        long spread = (long) (Double.parseDouble(args.length > 2 ? args[2] : "0") * 1000);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        GZIPOutputStream out = new GZIPOutputStream(bytes);
        out.write(new byte[4096]);
        out.close();
        gz = bytes.toByteArray();
        CountDownLatch never = new CountDownLatch(1);
        long start = System.nanoTime();
        for (int i = 0; i < n; i++) {
            switch (mode) {
                case "gzip":
                    InputStream in = openIngest();
                    in.read(new byte[64]);
                    keep.add(in);
                    break;
                case "direct":
                    ByteBuffer b = fillCache();
                    for (int p = 0; p < b.capacity(); p += 4096) {
                        b.put(p, (byte) 1);
                    }
                    keep.add(b);
                    for (int k = 0; k < 8; k++) {
                        scratch(4096 << (k % 6));
                    }
                    break;
                case "threads":
                    serve(never);
                    break;
                case "pool":
                    keep.add(pooled());
                    break;
                case "churn":
                    // Made far faster than each can be recorded: one in ten kept, the rest ended.
                    java.util.zip.Inflater f = churned();
                    if (i % 10 == 0) {
                        keep.add(f);
                    } else {
                        f.end();
                    }
                    break;
                default:
                    throw new IllegalArgumentException(mode);
            }
            long due = start + spread * 1_000_000L * (i + 1) / n;
            long wait = (due - System.nanoTime()) / 1_000_000L;
            if (wait > 0) {
                Thread.sleep(wait);
            }
        }
        if (mode.equals("pool")) {
            // Each ended when replaced, for a while: the pool stays n strong.
            for (int round = 0; round < 4; round++) {
                for (int i = 0; i < keep.size(); i++) {
                    ((java.util.zip.Inflater) keep.get(i)).end();
                    keep.set(i, pooled());
                }
                Thread.sleep(spread / 4 + 1);
            }
        }
        System.out.println("kept " + keep.size());
        boolean hooks;
        try {
            Class.forName("io.offheapdoctor.hooks.Sites", false, null);
            hooks = true;
        } catch (ClassNotFoundException e) {
            hooks = false;
        }
        System.out.println("hooks " + (hooks ? "present" : "absent"));
        System.out.println("done");
        System.out.flush();
        Thread.sleep(Long.parseLong(System.getProperty("siteleaks.linger", "3000")));
    }
}
