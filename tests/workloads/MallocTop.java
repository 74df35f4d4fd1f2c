import java.io.FileInputStream;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Mallocs and frees at the top of glibc's main arena, printing the [heap] mapping as the kernel
 * sees it after each phase, so a test can tell what M_TOP_PAD and M_TRIM_THRESHOLD did. Run with
 * MALLOC_ARENA_MAX=1 so every thread's malloc comes from the main arena, whose memory is [heap].
 * Args: the number of 64 KiB blocks (direct buffers: one malloc each, below the mmap threshold,
 * zeroed so resident), freed through their cleaners (JDK 9 and later). Prints
 * "phase start|allocated|freed cycle=<n> size=<bytes> rss=<bytes>" for each of CYCLES rounds and
 * "direct count <n> of <m> before" after each round's frees.
 */
public class MallocTop {
    static final int BLOCK = 64 * 1024;
    /**
     * Measured rounds: another thread's malloc that lands above a round's blocks keeps its top
     * from being free; a test reads the median round.
     */
    static final int CYCLES = 3;
    /** sun.misc.Unsafe.invokeCleaner (JDK 9 and later): frees a direct buffer's memory now. */
    static Object UNSAFE;
    static Method INVOKE_CLEANER;
    static final java.util.regex.Pattern MAPPING = java.util.regex.Pattern.compile("[0-9a-f]+-[0-9a-f]+ ");

    public static void main(String[] args) throws Exception {
        int blocks = Integer.parseInt(args[0]);
        Field f = Class.forName("sun.misc.Unsafe").getDeclaredField("theUnsafe");
        f.setAccessible(true);
        UNSAFE = f.get(null);
        INVOKE_CLEANER = UNSAFE.getClass().getMethod("invokeCleaner", ByteBuffer.class);
        BufferPoolMXBean direct = directPool();
        long countBefore = direct.getCount();
        // A first, small round: whatever this code and the cleaners malloc and keep for themselves
        // the first time they run lies below the measured blocks, not above them.
        cycle(16, direct, countBefore, -1);
        // Start-up work of the JVM's own threads (on JDK 25, a malloc about a second in that
        // lands above the blocks of a round running then) is over before the measured rounds.
        Thread.sleep(1000);
        for (int i = 0; i < CYCLES; i++) {
            cycle(blocks, direct, countBefore, i);
        }
        System.out.flush();
    }

    static void cycle(int blocks, BufferPoolMXBean direct, long countBefore, int cycle) throws Exception {
        long[] start = heap();
        List<ByteBuffer> keep = new ArrayList<>();
        for (int i = 0; i < blocks; i++) {
            keep.add(ByteBuffer.allocateDirect(BLOCK));
        }
        long[] allocated = heap();
        // Freed at once, newest first, with nothing run in between: a collection would malloc
        // for itself above the blocks and keep the top from being free.
        for (int i = keep.size() - 1; i >= 0; i--) {
            INVOKE_CLEANER.invoke(UNSAFE, keep.get(i));
        }
        keep = null;
        long[] freed = heap();
        if (cycle >= 0) {
            print("start", cycle, start);
            print("allocated", cycle, allocated);
            System.out.println("direct count " + direct.getCount() + " of " + countBefore + " before");
            print("freed", cycle, freed);
        }
    }

    static void print(String phase, int cycle, long[] heap) {
        System.out.println("phase " + phase + " cycle=" + cycle + " size=" + heap[0] + " rss=" + heap[1]);
    }

    static BufferPoolMXBean directPool() {
        for (BufferPoolMXBean b : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
            if (b.getName().equals("direct")) {
                return b;
            }
        }
        throw new IllegalStateException("no direct buffer pool");
    }

    /** The [heap] mapping's Size and Rss from /proc/self/smaps; 0 and 0 when there is none. */
    static long[] heap() throws Exception {
        long[] sizeRss = new long[2];
        boolean inHeap = false;
        for (String line : smaps().split("\n")) {
            if (MAPPING.matcher(line).lookingAt()) {
                inHeap = line.endsWith("[heap]");
            } else if (inHeap && line.startsWith("Size:")) {
                sizeRss[0] = kib(line);
            } else if (inHeap && line.startsWith("Rss:")) {
                sizeRss[1] = kib(line);
            }
        }
        return sizeRss;
    }

    /**
     * Read through java.io in reads of at most 8 KiB, which the JDK serves from a stack buffer:
     * NIO's reads would malloc a temporary direct buffer and cache it for the thread, a block
     * above the test's own that keeps the arena's top from ever being free.
     */
    static String smaps() throws Exception {
        StringBuilder text = new StringBuilder();
        byte[] buf = new byte[4096];
        try (FileInputStream in = new FileInputStream("/proc/self/smaps")) {
            for (int n; (n = in.read(buf)) > 0; ) {
                text.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
            }
        }
        return text.toString();
    }

    static long kib(String line) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
    }
}
