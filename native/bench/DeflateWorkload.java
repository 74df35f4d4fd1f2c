import java.util.*;
import java.util.zip.*;
import java.util.concurrent.*;
public class DeflateWorkload {
    public static void main(String[] a) throws Exception {
        int threads = a.length > 0 ? Integer.parseInt(a[0]) : 16;
        List<Deflater> keep = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch done = new CountDownLatch(threads);
        for (int t = 0; t < threads; t++) {
            final int id = t;
            new Thread(() -> {
                byte[] in = new byte[256 * 1024];
                new Random(id).nextBytes(in);
                byte[] out = new byte[512 * 1024];
                for (int i = 0; i < 200; i++) {
                    Deflater d = new Deflater(i % 9);
                    d.setInput(in); d.finish();
                    while (!d.finished()) d.deflate(out);
                    if (i % 10 == 0) keep.add(d); else d.end();
                }
                done.countDown();
                try { Thread.sleep(Long.MAX_VALUE); } catch (InterruptedException e) {}
            }, "deflater-" + id).start();
        }
        done.await();
        System.out.println("READY " + ProcessHandle.current().pid());
        Thread.sleep(Long.MAX_VALUE);
    }
}
