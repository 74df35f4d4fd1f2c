import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.Deflater;

/**
 * Grows native memory in known ways, one phase after another, printing the wall-clock time at
 * the end of each phase so a test can pick the samples in between.
 * Args: phases, each one of: direct=<MiB> (touched direct buffers, NMT sees them),
 * deflaters=<count> (zlib state, NMT does not see it), threads=<count> (idle threads),
 * sleep=<ms>.
 */
public class NativeGrowth {
    static final List<Object> keep = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        System.out.println("start " + System.currentTimeMillis());
        for (String phase : args) {
            String[] kv = phase.split("=");
            int n = Integer.parseInt(kv[1]);
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
                        Thread t = new Thread(() -> {
                            try {
                                Thread.sleep(Long.MAX_VALUE);
                            } catch (InterruptedException e) {
                                Thread.currentThread().interrupt();
                            }
                        }, "idle-" + i);
                        t.setDaemon(true);
                        t.start();
                        keep.add(t);
                    }
                    break;
                case "sleep":
                    Thread.sleep(n);
                    break;
                default:
                    throw new IllegalArgumentException(phase);
            }
            System.out.println(kv[0] + " " + System.currentTimeMillis());
            System.out.flush();
        }
    }
}
