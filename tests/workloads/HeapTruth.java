import java.io.FileInputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Grows the process by a known amount either inside the Java heap or outside it, and prints the
 * JVM's own account of its heap (MemoryMXBean) and the kernel's VmRSS before and after, so a test
 * can hold the agent's heap findings against numbers the agent did not compute.
 * Args: heap|direct|none, MiB, then the number of samples to wait for after the growth.
 * Prints "truth <phase> epoch_ms=.. vmrss=.. heap_committed=.. heap_used=.. heap_max=..".
 */
public class HeapTruth {
    static final List<Object> keep = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        String where = args[0];
        int mib = Integer.parseInt(args[1]);
        int after = Integer.parseInt(args[2]);
        NativeGrowth.awaitSample(1);
        truth("before");
        for (int i = 0; i < mib; i++) {
            if (where.equals("heap")) {
                // Quarters of a MiB: below G1's humongous size, so each MiB takes one MiB of heap.
                for (int q = 0; q < 4; q++) {
                    byte[] b = new byte[(1 << 18) - 64];
                    for (int p = 0; p < b.length; p += 4096) {
                        b[p] = 1;
                    }
                    keep.add(b);
                }
            } else if (where.equals("direct")) {
                // allocateDirect zeroes the buffer, so every page is resident.
                keep.add(ByteBuffer.allocateDirect(1 << 20));
            }
        }
        truth("grown");
        NativeGrowth.awaitSample(NativeGrowth.currentSeq() + after);
        truth("end");
        System.out.println("kept " + keep.size() + " " + where);
    }

    static void truth(String phase) throws Exception {
        MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        System.out.println("truth " + phase + " epoch_ms=" + System.currentTimeMillis() + " vmrss=" + vmRss()
                + " heap_committed=" + heap.getCommitted() + " heap_used=" + heap.getUsed()
                + " heap_max=" + heap.getMax());
        System.out.flush();
    }

    static long vmRss() throws Exception {
        StringBuilder text = new StringBuilder();
        byte[] buf = new byte[4096];
        try (FileInputStream in = new FileInputStream("/proc/self/status")) {
            for (int n; (n = in.read(buf)) > 0; ) {
                text.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
            }
        }
        for (String line : text.toString().split("\n")) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }
}
