import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

/**
 * Native allocations with known sites and a known size, for the native call sites tests. The
 * JNI library (tests/native/leaky.c) is loaded by the absolute path in -Dnativeleak.lib. Each
 * argument is a command, run in order; "stdin" then reads more commands, one a line, until
 * "exit" or the end of input. Each command ends with a line "ok <command>".
 *
 * <ul>
 * <li>{@code await}: until the agent (when there is one) has taken a sample begun after the library
 *     was loaded: the native call sites interpose a library loaded after their start at the next
 *     sample, and the agent's first sample may have begun before the load.
 * <li>{@code leak <bytes> <piece>}: LeakyCache.put keeps {@code bytes} in blocks of {@code piece}
 *     bytes, malloc'd by leak_into_cache on a thread named "cache-filler", while a thread named
 *     "churner" mallocs and frees (churn_buffers) until it is done. Prints "leaked=<bytes>", the
 *     bytes the library holds in all (its own count), and "site leak <frame>", the frame of
 *     LeakyCache.put that calls into the library, taken from a Throwable on that line.
 * <li>{@code zip <n>}: ZipHold.open makes n GZIPInputStreams, reads from each and keeps them open
 *     (zlib's state and window stay allocated). Prints "zip kept=<n>" and "site zip <frame>".
 * <li>{@code slots}: "malloc_slot=<hex> real_malloc=<hex>": what the library's calls to malloc
 *     jump to now, and the address malloc resolves to without interposition.
 * <li>{@code release}: frees every kept block; prints "released=<bytes>".
 * <li>{@code sleep <ms>}, {@code ping} (prints "pong"), {@code stdin} (prints "ready"), {@code exit}.
 * </ul>
 */
public class NativeLeak {
    static native long leak(int count, int size);

    static native long churn(int rounds, int size);

    static native long releaseAll();

    static native long mallocSlot();

    static native long realMalloc();

    static final List<Object> keep = new ArrayList<Object>();

    static String here(Throwable t) {
        StackTraceElement e = t.getStackTrace()[0];
        return e.getClassName() + "." + e.getMethodName() + "(" + e.getFileName() + ":" + e.getLineNumber() + ")";
    }

    public static void main(String[] args) throws Exception {
        String lib = System.getProperty("nativeleak.lib");
        if (lib == null || !new java.io.File(lib).isAbsolute()) {
            throw new IllegalArgumentException("-Dnativeleak.lib=<absolute path of libleaky.so> is required");
        }
        System.load(lib);
        for (String a : args) {
            if (!run(a)) {
                return;
            }
        }
    }

    /** Runs one command; false once the workload should end. */
    static boolean run(String line) throws Exception {
        String[] w = line.trim().split("\\s+");
        switch (w[0]) {
            case "await":
                awaitSampleAfterLoad();
                break;
            case "leak":
                long leaked = leakWhileChurning(Long.parseLong(w[1]), Integer.parseInt(w[2]));
                System.out.println("leaked=" + leaked);
                break;
            case "zip":
                int n = Integer.parseInt(w[1]);
                ZipHold.open(n, keep);
                System.out.println("zip kept=" + n);
                break;
            case "slots":
                System.out.println("malloc_slot=" + Long.toHexString(mallocSlot()) + " real_malloc="
                        + Long.toHexString(realMalloc()));
                break;
            case "release":
                System.out.println("released=" + releaseAll());
                break;
            case "sleep":
                Thread.sleep(Long.parseLong(w[1]));
                break;
            case "ping":
                System.out.println("pong");
                break;
            case "stdin":
                System.out.println("ready");
                System.out.flush();
                BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
                String next;
                while ((next = in.readLine()) != null) {
                    if (!next.trim().isEmpty() && !run(next)) {
                        return false;
                    }
                }
                return false;
            case "exit":
                System.out.println("ok exit");
                System.out.flush();
                return false;
            default:
                throw new IllegalArgumentException("unknown command: " + line);
        }
        System.out.println("ok " + w[0]);
        System.out.flush();
        return true;
    }

    static void awaitSampleAfterLoad() throws Exception {
        Class<?> doctor;
        try {
            doctor = Class.forName("io.offheapdoctor.Doctor");
        } catch (ClassNotFoundException e) {
            return;
        }
        ZipWorkload.awaitFirstSample();
        java.lang.reflect.Method get = doctor.getMethod("get");
        java.lang.reflect.Method last = doctor.getMethod("lastSample");
        Object first = last.invoke(get.invoke(null));
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (System.nanoTime() < deadline && last.invoke(get.invoke(null)) == first) {
            Thread.sleep(20);
        }
    }

    /** The leak on "cache-filler" with the churn on "churner" meanwhile; the bytes kept in all. */
    static long leakWhileChurning(final long bytes, final int piece) throws InterruptedException {
        final long[] result = {-1};
        final boolean[] done = {false};
        Thread churner = new Thread(new Runnable() {
            @Override
            public void run() {
                while (true) {
                    synchronized (done) {
                        if (done[0]) {
                            return;
                        }
                    }
                    churn(64, 8192);
                }
            }
        }, "churner");
        Thread filler = new Thread(new Runnable() {
            @Override
            public void run() {
                result[0] = LeakyCache.put(bytes, piece);
            }
        }, "cache-filler");
        churner.start();
        filler.start();
        filler.join();
        synchronized (done) {
            done[0] = true;
        }
        churner.join();
        return result[0];
    }
}

/** The Java method whose native calls leak: named by the tests as the site's Java frame. */
class LeakyCache {
    private static boolean said;

    /** Keeps {@code bytes} in blocks of {@code piece} bytes; the bytes the library holds in all. */
    static long put(long bytes, int piece) {
        long total = -1;
        for (long kept = 0; kept < bytes; kept += piece) {
            Throwable at = said ? null : new Throwable(); total = NativeLeak.leak(1, piece);
            if (at != null) {
                said = true;
                System.out.println("site leak " + NativeLeak.here(at));
            }
        }
        return total;
    }
}

/** Zip streams kept open: zlib's memory allocated through libz (or the JDK's own copy in libzip). */
class ZipHold {
    static void open(int n, List<Object> keep) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        GZIPOutputStream out = new GZIPOutputStream(bytes);
        byte[] data = new byte[256 * 1024];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 31 % 251);
        }
        out.write(data);
        out.close();
        byte[] gz = bytes.toByteArray();
        byte[] buf = new byte[4096];
        for (int i = 0; i < n; i++) {
            Throwable at = i == 0 ? new Throwable() : null; InputStream in = new GZIPInputStream(new ByteArrayInputStream(gz));
            // A read allocates the inflater's window too.
            if (in.read(buf) <= 0) {
                throw new IOException("nothing inflated");
            }
            keep.add(in);
            if (at != null) {
                System.out.println("site zip " + NativeLeak.here(at));
            }
        }
    }
}
