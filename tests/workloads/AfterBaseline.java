import java.io.File;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Grows by a known amount of touched direct memory, waits for the operator (a test) to move the
 * agent's baseline from outside, then grows by a second known amount, so a test can hold the
 * growth the agent reports against what was made after the baseline.
 * Args: MiB before, MiB after, the file whose appearance says the baseline was moved, then the
 * number of samples to wait for after the second growth. Prints "grown", "go", "allocated"
 * (each with the wall-clock time) and "done".
 */
public class AfterBaseline {
    public static void main(String[] args) throws Exception {
        int before = Integer.parseInt(args[0]);
        int after = Integer.parseInt(args[1]);
        File go = new File(args[2]);
        int samples = Integer.parseInt(args[3]);
        List<ByteBuffer> keep = new ArrayList<>();
        NativeGrowth.awaitSample(1);
        grow(keep, before);
        NativeGrowth.awaitSample(NativeGrowth.currentSeq() + 2);
        System.out.println("grown " + System.currentTimeMillis());
        System.out.flush();
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (!go.exists()) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no " + go + " within 60 s");
            }
            Thread.sleep(20);
        }
        System.out.println("go " + System.currentTimeMillis());
        grow(keep, after);
        System.out.println("allocated " + System.currentTimeMillis());
        System.out.flush();
        NativeGrowth.awaitSample(NativeGrowth.currentSeq() + samples);
        System.out.println("done " + keep.size());
        System.out.flush();
    }

    /** MiB of direct buffers, zeroed by allocateDirect and so resident. */
    static void grow(List<ByteBuffer> keep, int mib) {
        for (int i = 0; i < mib; i++) {
            keep.add(ByteBuffer.allocateDirect(1 << 20));
        }
    }
}
