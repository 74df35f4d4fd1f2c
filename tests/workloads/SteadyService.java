import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.zip.Deflater;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

/**
 * A service in its steady state: a fixed pool of 4 workers handles requests for the given number
 * of seconds, each request allocating on the heap, compressing and decompressing with streams it
 * closes, using a small direct buffer it drops and a Deflater it ends. Nothing accumulates, so
 * the agent must raise no finding. Args: seconds.
 */
public class SteadyService {
    public static void main(String[] args) throws Exception {
        int seconds = args.length > 0 ? Integer.parseInt(args[0]) : 60;
        final long end = System.nanoTime() + seconds * 1_000_000_000L;
        ThreadPoolExecutor pool = new ThreadPoolExecutor(4, 4, 0, TimeUnit.SECONDS, new ArrayBlockingQueue<Runnable>(64),
                new ThreadPoolExecutor.CallerRunsPolicy());
        final byte[] text = new byte[32 * 1024];
        for (int i = 0; i < text.length; i++) {
            text[i] = (byte) ('a' + (i * 7 % 23));
        }
        System.out.println("start " + System.currentTimeMillis());
        long requests = 0;
        while (System.nanoTime() < end) {
            pool.execute(() -> {
                try {
                    List<byte[]> garbage = new ArrayList<>();
                    for (int k = 0; k < 16; k++) {
                        garbage.add(new byte[4096]);
                    }
                    java.io.ByteArrayOutputStream bos = new java.io.ByteArrayOutputStream();
                    try (GZIPOutputStream gz = new GZIPOutputStream(bos)) {
                        gz.write(text);
                    }
                    byte[] back = new byte[text.length];
                    try (GZIPInputStream in = new GZIPInputStream(new java.io.ByteArrayInputStream(bos.toByteArray()))) {
                        int off = 0;
                        while (off < back.length) {
                            int n = in.read(back, off, back.length - off);
                            if (n < 0) {
                                break;
                            }
                            off += n;
                        }
                    }
                    Deflater d = new Deflater(1);
                    try {
                        d.setInput(back);
                        d.finish();
                        d.deflate(new byte[1024]);
                    } finally {
                        d.end();
                    }
                    ByteBuffer.allocateDirect(8192).put(0, (byte) garbage.size());
                } catch (java.io.IOException e) {
                    throw new IllegalStateException(e);
                }
            });
            requests++;
            Thread.sleep(2);
        }
        pool.shutdown();
        pool.awaitTermination(30, TimeUnit.SECONDS);
        System.out.println("requests " + requests);
        System.out.println("end " + System.currentTimeMillis());
    }
}
