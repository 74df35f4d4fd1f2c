import java.io.File;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * Holds known amounts of memory in known places, one phase after another, so a test can check
 * where each lands in the agent's breakdown. After each phase it waits until the agent has
 * written a sample taken wholly after the phase (two samples later), then prints
 * "{@code <phase> seq=<n>}" with the seq of the latest sample: that sample shows the state after
 * the phase and before the next one.
 *
 * Phases: heap=MiB (a touched byte[] in the Java heap), direct=MiB (1 MiB direct buffers,
 * touched), small=count (touched 100 KiB direct buffers), threads=count (idle threads),
 * mapped=MiB (a touched MappedByteBuffer of a temp file, deleted at exit), spread=threads (each
 * thread makes and keeps 30 used Deflaters, so glibc gives the threads their own arenas),
 * quiet=ms (sleep), await=n (until the agent has written sample n), mark (print only).
 */
public class Placement {
    static final List<Object> keep = new ArrayList<>();

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

    static long awaitSample(long n) throws Exception {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (System.nanoTime() < deadline) {
            long s = currentSeq();
            if (s >= n) {
                return s;
            }
            Thread.sleep(10);
        }
        throw new IllegalStateException("the agent wrote no sample " + n + " within 60 s");
    }

    static void touch(ByteBuffer b) {
        for (int p = 0; p < b.capacity(); p += 4096) {
            b.put(p, (byte) 1);
        }
    }

    public static void main(String[] args) throws Exception {
        for (String phase : args) {
            String[] kv = phase.contains("=") ? phase.split("=") : new String[] {phase, "0"};
            int n = Integer.parseInt(kv[1]);
            switch (kv[0]) {
                case "heap": {
                    byte[] a = new byte[n << 20];
                    for (int p = 0; p < a.length; p += 4096) {
                        a[p] = 1;
                    }
                    keep.add(a);
                    break;
                }
                case "direct":
                    for (int i = 0; i < n; i++) {
                        ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                        touch(b);
                        keep.add(b);
                    }
                    break;
                case "small":
                    for (int i = 0; i < n; i++) {
                        ByteBuffer b = ByteBuffer.allocateDirect(100 * 1024);
                        touch(b);
                        keep.add(b);
                    }
                    break;
                case "threads": {
                    final CountDownLatch started = new CountDownLatch(n);
                    for (int i = 0; i < n; i++) {
                        keep.add(NativeGrowth.idleThread("idle-" + i, started));
                    }
                    started.await();
                    break;
                }
                case "mapped": {
                    File f = File.createTempFile("placement", ".bin");
                    f.deleteOnExit();
                    try (RandomAccessFile raf = new RandomAccessFile(f, "rw")) {
                        raf.setLength((long) n << 20);
                        MappedByteBuffer m = raf.getChannel().map(FileChannel.MapMode.READ_WRITE, 0, (long) n << 20);
                        touch(m);
                        keep.add(m);
                    }
                    break;
                }
                case "spread":
                    NativeGrowth.spread(n, keep);
                    break;
                case "quiet":
                    Thread.sleep(n);
                    break;
                case "await":
                    awaitSample(n);
                    break;
                case "mark":
                    break;
                default:
                    throw new IllegalArgumentException(phase);
            }
            // A sample that started after the phase ended: the one after the next.
            long seq = awaitSample(currentSeq() + 2);
            System.out.println(kv[0] + " seq=" + seq);
            System.out.flush();
        }
    }
}
