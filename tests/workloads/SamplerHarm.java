import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/**
 * The native call sites sampler started, stopped and raced against an application that
 * allocates through JNI and zlib, for tests/test_native_sites_harm.py. Everything it computes it
 * checks itself: inflated bytes against the input and its CRC, the JNI library's own counts
 * against what this class asked for. The JNI library (tests/native/leaky.c, through NativeLeak's
 * natives) is loaded only by "load", from the absolute path in -Dnativeleak.lib.
 *
 * Each argument is a command, run in order; "stdin" then reads more, one a line, until "exit".
 * Each command ends with a line "ok <command>".
 * <ul>
 * <li>{@code load}: System.load of the library.
 * <li>{@code start}, {@code stop}: the agent's MXBean startNativeSites / stopNativeSites, called
 *     in this process; prints "mbean <answer>".
 * <li>{@code leak <bytes> <piece>}: the library keeps bytes in blocks of piece; "leaked=<its count>".
 * <li>{@code release}: the library frees every kept block; "released=<bytes>".
 * <li>{@code zip <n>}: n inflating streams kept open; {@code zipclose}: ends them, "closed=<n>".
 * <li>{@code slots}, {@code await}: as NativeLeak's.
 * <li>{@code sites}: "sites <json>", the agent's native_sites part as it is now.
 * <li>{@code latecheck}: loads the library and reads its malloc slot at once: "late slot=<hex>
 *     real=<hex> sampled_between=<true|false>" (whether an agent sample ended meanwhile).
 * <li>{@code work <threads> <ms>}: zlib round trips and JNI traffic on that many threads;
 *     "work rounds=<n> wrong=<n> kept=<bytes asked> released=<bytes the library freed>".
 * <li>{@code storm <threads> <cycles>}: the same work while this thread starts and stops the
 *     sampler cycles times and another asks for its report; "storm cycles=<n> started=<n>
 *     stopped=<n> hooked=<n> reports=<n> rounds=<n> wrong=<n> kept=<n> released=<n>", then each unexpected
 *     MXBean answer on a line "unexpected <answer>"; hooked counts the starts after which the
 *     library's malloc slot held something else than malloc.
 * <li>{@code loadmany <dir> <n>}: System.load of dir/race1.so .. race<n>.so on two threads
 *     while two others ask the agent for its native_sites part (each look patches the libraries
 *     loaded since the last) as fast as they can; "loadmany loaded=<n> looks=<n>".
 * <li>{@code spawn <threads> <n>}: each thread starts n child processes ("sh -c 'echo <tag>'",
 *     with an environment of its own) and deflates a little between them; "spawn ok=<n> wrong=<n>",
 *     ok counting children that exited 0 having printed their tag.
 * <li>{@code exit}.
 * </ul>
 */
public class SamplerHarm {
    static final String BEAN = "io.offheapdoctor:type=OffHeapDoctor";
    static final List<Object> streams = new ArrayList<Object>();
    static volatile boolean loaded;

    public static void main(String[] args) throws Exception {
        for (String a : args) {
            if (!run(a)) {
                return;
            }
        }
    }

    static boolean run(String line) throws Exception {
        String[] w = line.trim().split("\\s+");
        switch (w[0]) {
            case "load":
                load();
                break;
            case "start":
                System.out.println("mbean " + invoke("startNativeSites"));
                break;
            case "stop":
                System.out.println("mbean " + invoke("stopNativeSites"));
                break;
            case "leak":
                long total = -1;
                int piece = Integer.parseInt(w[2]);
                for (long kept = 0; kept < Long.parseLong(w[1]); kept += piece) {
                    total = NativeLeak.leak(1, piece);
                }
                System.out.println("leaked=" + total);
                break;
            case "release":
                System.out.println("released=" + NativeLeak.releaseAll());
                break;
            case "zip":
                ZipHold.open(Integer.parseInt(w[1]), streams);
                break;
            case "zipclose":
                for (Object in : streams) {
                    ((InputStream) in).close();
                }
                System.out.println("closed=" + streams.size());
                streams.clear();
                break;
            case "slots":
                System.out.println("malloc_slot=" + Long.toHexString(NativeLeak.mallocSlot()) + " real_malloc="
                        + Long.toHexString(NativeLeak.realMalloc()));
                break;
            case "await":
                NativeLeak.awaitSampleAfterLoad();
                break;
            case "sites":
                System.out.println("sites " + Class.forName("io.offheapdoctor.NativeCore").getMethod("nativeSitesJson")
                        .invoke(null));
                break;
            case "latecheck":
                lateCheck();
                break;
            case "work": {
                Work work = new Work(Integer.parseInt(w[1]));
                work.begin();
                Thread.sleep(Long.parseLong(w[2]));
                work.end();
                System.out.println("work " + work);
                break;
            }
            case "loadmany":
                loadMany(w[1], Integer.parseInt(w[2]));
                break;
            case "spawn":
                spawn(Integer.parseInt(w[1]), Integer.parseInt(w[2]));
                break;
            case "storm":
                storm(Integer.parseInt(w[1]), Integer.parseInt(w[2]));
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

    static void load() {
        String lib = System.getProperty("nativeleak.lib");
        if (lib == null || !new java.io.File(lib).isAbsolute()) {
            throw new IllegalArgumentException("-Dnativeleak.lib=<absolute path of libleaky.so> is required");
        }
        System.load(lib);
        loaded = true;
    }

    static Object lastSample() throws Exception {
        Class<?> doctor = Class.forName("io.offheapdoctor.Doctor");
        Object d = doctor.getMethod("get").invoke(null);
        return d == null ? null : doctor.getMethod("lastSample").invoke(d);
    }

    static void lateCheck() throws Exception {
        Object before = lastSample();
        load();
        long slot = NativeLeak.mallocSlot();
        Object after = lastSample();
        System.out.println("late slot=" + Long.toHexString(slot) + " real=" + Long.toHexString(NativeLeak.realMalloc())
                + " sampled_between=" + (before != after));
    }

    static void loadMany(final String dir, final int n) throws Exception {
        final java.lang.reflect.Method look = Class.forName("io.offheapdoctor.NativeCore").getMethod("nativeSitesJson");
        final AtomicBoolean done = new AtomicBoolean();
        final AtomicLong looks = new AtomicLong();
        final AtomicLong loadedCount = new AtomicLong();
        final List<Throwable> failures = new ArrayList<Throwable>();
        Thread[] lookers = new Thread[2];
        Thread[] loaders = new Thread[2];
        for (int k = 0; k < 2; k++) {
            final int id = k;
            lookers[k] = new Thread(new Runnable() {
                @Override
                public void run() {
                    try {
                        while (!done.get()) {
                            look.invoke(null);
                            looks.incrementAndGet();
                        }
                    } catch (Throwable t) {
                        synchronized (failures) {
                            failures.add(t);
                        }
                    }
                }
            }, "looker-" + k);
            loaders[k] = new Thread(new Runnable() {
                @Override
                public void run() {
                    for (int i = 1 + id; i <= n; i += 2) {
                        System.load(dir + "/race" + i + ".so");
                        loadedCount.incrementAndGet();
                    }
                }
            }, "loader-" + k);
        }
        for (Thread t : lookers) {
            t.start();
        }
        for (Thread t : loaders) {
            t.start();
        }
        for (Thread t : loaders) {
            t.join();
        }
        done.set(true);
        for (Thread t : lookers) {
            t.join();
        }
        if (!failures.isEmpty()) {
            throw new IllegalStateException("a look at the native call sites failed", failures.get(0));
        }
        System.out.println("loadmany loaded=" + loadedCount.get() + " looks=" + looks.get());
    }

    static void spawn(int threads, final int n) throws InterruptedException {
        final AtomicLong ok = new AtomicLong();
        final AtomicLong wrong = new AtomicLong();
        Thread[] t = new Thread[threads];
        for (int k = 0; k < threads; k++) {
            final int id = k;
            t[k] = new Thread(new Runnable() {
                @Override
                public void run() {
                    byte[] packed = new byte[2048];
                    for (int i = 0; i < n; i++) {
                        String tag = id + "-" + i;
                        try {
                            ProcessBuilder pb = new ProcessBuilder("sh", "-c", "echo " + tag);
                            pb.environment().put("SAMPLER_HARM_" + i, tag);
                            Process p = pb.start();
                            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
                            InputStream in = p.getInputStream();
                            byte[] buf = new byte[256];
                            for (int r; (r = in.read(buf)) > 0; ) {
                                out.write(buf, 0, r);
                            }
                            if (p.waitFor() == 0 && out.toString("UTF-8").trim().equals(tag)) {
                                ok.incrementAndGet();
                            } else {
                                wrong.incrementAndGet();
                            }
                        } catch (Exception e) {
                            wrong.incrementAndGet();
                        }
                        Deflater d = new Deflater();
                        d.setInput(new byte[1000]);
                        d.finish();
                        d.deflate(packed);
                        d.end();
                    }
                }
            }, "spawner-" + k);
            t[k].start();
        }
        for (Thread x : t) {
            x.join();
        }
        System.out.println("spawn ok=" + ok.get() + " wrong=" + wrong.get());
    }

    static String invoke(String op) throws Exception {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        ObjectName name = new ObjectName(BEAN);
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!server.isRegistered(name)) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(BEAN + " is not registered");
            }
            Thread.sleep(20);
        }
        return String.valueOf(server.invoke(name, op, null, null));
    }

    static void storm(int threads, int cycles) throws Exception {
        Work work = new Work(threads);
        final AtomicBoolean done = new AtomicBoolean();
        final AtomicLong reports = new AtomicLong();
        final List<String> unexpected = new ArrayList<String>();
        Thread reporter = new Thread(new Runnable() {
            @Override
            public void run() {
                while (!done.get()) {
                    try {
                        String r = invoke("nativeSitesReport");
                        if (!r.startsWith("Native call sites ")) {
                            synchronized (unexpected) {
                                unexpected.add("report " + r.split("\n")[0]);
                            }
                        }
                        reports.incrementAndGet();
                    } catch (Exception e) {
                        synchronized (unexpected) {
                            unexpected.add("report threw " + e);
                        }
                    }
                }
            }
        }, "reporter");
        Random rnd = new Random(7);
        int started = 0;
        int stopped = 0;
        int hooked = 0;
        work.begin();
        reporter.start();
        for (int c = 0; c < cycles; c++) {
            String a = invoke("startNativeSites");
            if (a.startsWith("native call sites on")) {
                started++;
                if (loaded && NativeLeak.mallocSlot() != NativeLeak.realMalloc()) {
                    hooked++;
                }
            } else {
                unexpected.add(a);
            }
            Thread.sleep(5 + rnd.nextInt(60));
            String b = invoke("stopNativeSites");
            if (b.startsWith("native call sites off")) {
                stopped++;
            } else {
                unexpected.add(b);
            }
            Thread.sleep(rnd.nextInt(30));
        }
        done.set(true);
        reporter.join();
        work.end();
        System.out.println("storm cycles=" + cycles + " started=" + started + " stopped=" + stopped
                + " hooked=" + hooked + " reports=" + reports.get() + " " + work);
        for (String u : unexpected) {
            System.out.println("unexpected " + u.replace('\n', ' '));
        }
    }

    /**
     * Threads doing zlib round trips (some Deflaters left to the Cleaner, so zlib memory is freed
     * on another thread, in another sampler session than it was allocated in) and JNI mallocs and
     * frees; each checks its own results.
     */
    static final class Work {
        final Thread[] threads;
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicLong rounds = new AtomicLong();
        final AtomicLong wrong = new AtomicLong();
        final AtomicLong kept = new AtomicLong();
        long released;
        final List<String> firstWrong = new ArrayList<String>();

        Work(int n) {
            threads = new Thread[n];
            for (int i = 0; i < n; i++) {
                final int id = i;
                threads[i] = new Thread(new Runnable() {
                    @Override
                    public void run() {
                        loop(id);
                    }
                }, "zip-" + i);
            }
        }

        void begin() {
            for (Thread t : threads) {
                t.start();
            }
        }

        void end() throws InterruptedException {
            stop.set(true);
            for (Thread t : threads) {
                t.join();
            }
            released = loaded ? NativeLeak.releaseAll() : 0;
        }

        void fail(String why) {
            wrong.incrementAndGet();
            synchronized (firstWrong) {
                if (firstWrong.size() < 3) {
                    firstWrong.add(why);
                }
            }
        }

        void loop(int id) {
            Random rnd = new Random(id * 1000003L);
            byte[] words = "native call sites sample malloc free inflate deflate ".getBytes();
            for (long r = 0; !stop.get(); r++) {
                int size = 4096 + rnd.nextInt(60 * 1024);
                byte[] input = new byte[size];
                for (int i = 0; i < size; i++) {
                    input[i] = rnd.nextInt(8) == 0 ? (byte) rnd.nextInt(256) : words[(i * 7 + (int) r) % words.length];
                }
                CRC32 crc = new CRC32();
                crc.update(input, 0, size);
                Deflater d = new Deflater(1 + (int) (r % 9));
                d.setInput(input);
                d.finish();
                byte[] packed = new byte[size + 1024];
                int n = 0;
                while (!d.finished() && n < packed.length) {
                    n += d.deflate(packed, n, packed.length - n);
                }
                if (r % 5 != 0) {
                    d.end();
                }
                Inflater inf = new Inflater();
                inf.setInput(packed, 0, n);
                byte[] out = new byte[size];
                int got = 0;
                try {
                    while (!inf.finished() && got < size) {
                        int k = inf.inflate(out, got, size - got);
                        if (k == 0 && (inf.needsInput() || inf.needsDictionary())) {
                            break;
                        }
                        got += k;
                    }
                } catch (DataFormatException e) {
                    fail("inflate threw " + e);
                }
                boolean finished = inf.finished();
                inf.end();
                CRC32 back = new CRC32();
                back.update(out, 0, got);
                if (!finished || got != size || !Arrays.equals(out, input) || back.getValue() != crc.getValue()) {
                    fail("round trip of " + size + " bytes gave " + got + (finished ? "" : " (unfinished)"));
                }
                if (loaded) {
                    int piece = 4096 + (int) (r % 7) * 100;
                    long expect = 16L * piece * 2;
                    long did = NativeLeak.churn(2, piece);
                    if (did != expect) {
                        fail("churn did " + did + " bytes, not " + expect);
                    }
                    if (r % 8 == 0) {
                        if (NativeLeak.leak(1, 1024) < 0) {
                            fail("leak failed");
                        } else {
                            kept.addAndGet(1024);
                        }
                    }
                }
                rounds.incrementAndGet();
            }
        }

        @Override
        public String toString() {
            return "rounds=" + rounds.get() + " wrong=" + wrong.get() + " kept=" + kept.get() + " released=" + released
                    + (firstWrong.isEmpty() ? "" : " first_wrong=" + firstWrong.toString().replace(' ', '_'));
        }
    }
}
