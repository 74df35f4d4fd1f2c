import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/** Grows native memory, moves the agent's baseline, and waits for samples after it. */
public class Baseline {
    public static void main(String[] args) throws Exception {
        List<ByteBuffer> keep = new ArrayList<>();
        NativeGrowth.awaitSample(1);
        for (int i = 0; i < 80; i++) {
            ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
            for (int p = 0; p < b.capacity(); p += 4096) {
                b.put(p, (byte) 1);
            }
            keep.add(b);
        }
        NativeGrowth.awaitSample(NativeGrowth.currentSeq() + 2);
        System.out.println("grown " + System.currentTimeMillis());
        io.offheapdoctor.NativeCore.setBaseline();
        System.out.println("reset " + System.currentTimeMillis());
        NativeGrowth.awaitSample(NativeGrowth.currentSeq() + 3);
        System.out.println("kept " + keep.size());
    }
}
