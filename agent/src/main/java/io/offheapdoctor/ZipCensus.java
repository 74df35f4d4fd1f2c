package io.offheapdoctor;

import io.offheapdoctor.Internals.FieldRef;
import io.offheapdoctor.Internals.MethodRef;

import java.lang.instrument.Instrumentation;
import java.lang.ref.PhantomReference;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * Counts the {@link Inflater}s and {@link Deflater}s that hold native zlib memory: those still
 * reachable and not ended, and those already unreachable whose cleanup has not run yet.
 *
 * <p>On JDK 9 and later every unended Inflater/Deflater has a cleanable in the JDK's common
 * Cleaner ({@code jdk.internal.ref.CleanerFactory.cleaner()}) whose action is its
 * {@code InflaterZStreamRef}/{@code DeflaterZStreamRef}; {@code end()} removes it. Walking that
 * list therefore finds exactly the streams that still own zlib memory, and the cleanable's
 * referent tells them apart: set while the owner is reachable, cleared by the GC once it is not
 * (the Cleaner thread has yet to free it). The list lives in {@code CleanerImpl}:
 * <ul>
 * <li>JDK 9 to 23: {@code phantomCleanableList}, the head of a circular doubly linked list of
 *     {@code PhantomCleanable} ({@code next}/{@code prev}), guarded by the head's monitor;</li>
 * <li>JDK 24+: {@code activeList}, a {@code CleanerImpl$CleanableList} of array nodes
 *     ({@code head}, {@code Node.arr}/{@code size}/{@code next}), guarded by the list's monitor.</li>
 * </ul>
 * The native core reads them ({@link NativeCore#zipCensus}: it copies each list under its lock
 * and classifies the copy after releasing it, and opens nothing to anyone). Without the native
 * core they are read by reflection, which needs
 * {@code java.base} to open {@code jdk.internal.ref} and {@code java.util.zip} (before JDK 16 also
 * {@code java.lang.ref}, for {@code Reference.referent}) to the agent, done with
 * {@code Instrumentation.redefineModule}. The agent jar is on the system class path, so the
 * application's classpath code (the same unnamed module) then gains that access too.
 *
 * <p>Where that is impossible (no Instrumentation and no {@code --add-opens}, an unknown layout,
 * or JDK 8, where the streams are finalized instead of cleaned) the census falls back to
 * HotSpot's {@code GC.class_histogram -all}, which counts every instance in the heap, reachable or
 * not and ended or not, at the price of a stop-the-world heap walk; it is therefore run at most
 * once a minute. Without that too the census says "unavailable" and why.
 *
 * <p>Inflaters and Deflaters that go through a finalizer instead are counted apart
 * ({@code finalizable_alive}/{@code finalizable_pending}): subclasses that override
 * {@code finalize()}, which HotSpot registers with {@code java.lang.ref.Finalizer}, JDK 9 to 17's
 * {@code FinalizableZStreamRef} (made for subclasses that override {@code end()}; JDK 11 has it,
 * 17 not) and JDK 8's own Inflater/Deflater. They are found on the Finalizer's
 * {@code unfinalized} list (read under its lock, {@code java.lang.ref} opened as above); one whose
 * reference has been enqueued for the finalizer thread is pending. Each unended stream is counted
 * once: a finalizable one is left out of the Cleaner's counts. If the Finalizer's internals cannot
 * be read that part alone says "unavailable" and why.
 *
 * <p>Nothing here throws or blocks for long: a scan holds the Cleaner's list lock for at most
 * {@link #SCAN_BUDGET_NS} and reports {@code "truncated":true} if it had to stop early.
 *
 * <p>Each sample asks for a census ({@link #scanJson}); a scan runs when the previous one's cost
 * allows it, else the previous census is carried: the lock held at most 1/{@link #LOCK_BACKOFF}
 * of the time, a core busy at most 1/{@link #SCAN_BACKOFF}. A cheap census keeps up with every
 * sample; a costly one spaces itself out.
 */
final class ZipCensus {
    /**
     * Resident bytes one Inflater holds once it has inflated a stream: zlib's inflate_state
     * (about 7 KiB) plus the 32 KiB window, allocated on the first inflate that produces output.
     * Measured 39 KiB per object (10000 objects mid-stream, RSS delta, JDK 17 with system zlib and
     * Temurin 25 with bundled zlib); a fresh, never used Inflater holds only 5 to 7 KiB.
     */
    static final long INFLATER_NATIVE_BYTES = 40L * 1024;

    /**
     * Resident bytes one Deflater with the defaults (level 6, windowBits 15, memLevel 8) holds
     * once it has compressed 64 KiB or more: window 64 KiB + prev 64 KiB + head 64 KiB + pending
     * buffer 64 KiB + deflate_state. Measured 262 KiB per object (10000 objects, RSS delta, JDK 17
     * and 25); a fresh Deflater has the same allocated but only about 82 KiB resident.
     */
    static final long DEFLATER_NATIVE_BYTES = 262L * 1024;

    /** The longest a scan may hold the common Cleaner's list lock. */
    static final long SCAN_BUDGET_NS = 200_000_000L;

    /** Entries the start-up checks walk at most (a multiple of 1024). */
    static final long CHECK_LIMIT = 8192;

    /** After a scan, the next waits this many times as long as the scan held a list's lock. */
    static final long LOCK_BACKOFF = 1000;

    /** ... and this many times as long as the whole scan took. */
    static final long SCAN_BACKOFF = 100;

    /**
     * The longest the pacing makes a census wait: one hold stretched by a descheduled thread
     * would otherwise leave the samples with an old census for minutes.
     */
    static final long MAX_WAIT_NS = 30_000_000_000L;

    /** The histogram fallback stops the world; never more often than this. */
    static final long HISTOGRAM_MIN_INTERVAL_NS = 60_000_000_000L;

    private static final String INFLATER_REF = "java.util.zip.Inflater$InflaterZStreamRef";
    private static final String DEFLATER_REF = "java.util.zip.Deflater$DeflaterZStreamRef";

    static final String TEST_HISTOGRAM_PROPERTY = "offheap.doctor.test.zipHistogram";
    /**
     * Tests: take the reflection route and ask redefineModule to open a package java.base lacks,
     * so it refuses as on a JDK that would (the native route opens nothing).
     */
    static final String TEST_OPEN_FAILS_PROPERTY = "offheap.doctor.test.zipCensusOpenFails";
    /** Tests: the same for the Finalizer part only (java.lang.ref), the Cleaner part unaffected. */
    static final String TEST_FINALIZER_OPEN_FAILS_PROPERTY = "offheap.doctor.test.zipFinalizerOpenFails";

    private static volatile Instrumentation instrumentation;
    private static ZipCensus forTest;

    /** The Cleaner part by reflection; null when the native core reads it ({@link #nativeCleaner}) or nobody can. */
    private final CleanerWalk walk;
    private final boolean nativeCleaner;
    private final String reason;
    /** The Finalizer part by reflection: null with {@link #finalizerReason} when it cannot be read. */
    private final FinalizerWalk finalizers;
    private final boolean nativeFinalizer;
    private final String finalizerReason;
    /** The native route's longest hold of the Cleaner's lock (the start-up check included), ns. */
    private volatile long nativeLockHeldMaxNs;
    private final Object paceLock = new Object();
    /** The last census and when the next may run ({@link #scanJson}). */
    private String lastJson;
    private long nextScanNs;
    /** The longest either list's lock was held by the last scan, and how long its walks took, ns. */
    private long lastLockNs;
    private long lastWalkNs;
    private final Object histogramLock = new Object();
    private long lastHistogramNs;
    /** Inflater and Deflater instances from the last histogram. */
    private long[] lastHistogram;

    private ZipCensus(CleanerWalk walk, boolean nativeCleaner, String reason, FinalizerWalk finalizers,
            boolean nativeFinalizer, String finalizerReason) {
        this.walk = walk;
        this.nativeCleaner = nativeCleaner;
        this.reason = reason;
        this.finalizers = finalizers;
        this.nativeFinalizer = nativeFinalizer;
        this.finalizerReason = finalizerReason;
    }

    /** Keeps the agent's Instrumentation for {@link #scanForTest()}. */
    static void remember(Instrumentation inst) {
        instrumentation = inst;
    }

    /**
     * Prepares a census: opens the JDK internals it reads (through {@code inst}, which may be
     * null) and checks their layout on a throwaway Inflater. Never throws; when the Cleaner cannot
     * be read the census falls back to the class histogram.
     */
    static ZipCensus create(Instrumentation inst) {
        CleanerWalk w = null;
        boolean viaNative = false;
        long checkLockNs = 0;
        String why = null;
        try {
            if (!hasModules()) {
                throw new UnsupportedOperationException(
                        "JDK 8 has no Cleaner: Inflater/Deflater are released by finalization");
            }
            if (nativeRoute(TEST_OPEN_FAILS_PROPERTY)) {
                checkLockNs = nativeCheck(NativeCore.CENSUS_CLEANER);
                viaNative = true;
            } else {
                w = CleanerWalk.resolve(inst);
            }
        } catch (Throwable t) {
            why = describe(t);
            // Said once: the fallback walks the whole heap (at most once a minute) and counts less.
            Log.info("zip census: cannot read the Cleaner (" + why + "); counting with the class histogram instead");
        }
        ZipCensus c = withFinalizers(w, viaNative, why, inst);
        c.nativeLockHeldMaxNs = checkLockNs;
        return c;
    }

    /** Adds the Finalizer part; its failure is reported in every census ("finalizer"), not logged. */
    private static ZipCensus withFinalizers(CleanerWalk w, boolean nativeCleaner, String why, Instrumentation inst) {
        try {
            if (hasModules() && nativeRoute(TEST_FINALIZER_OPEN_FAILS_PROPERTY)) {
                nativeCheck(NativeCore.CENSUS_FINALIZER);
                return new ZipCensus(w, nativeCleaner, why, null, true, null);
            }
            return new ZipCensus(w, nativeCleaner, why, FinalizerWalk.resolve(inst), false, null);
        } catch (Throwable t) {
            return new ZipCensus(w, nativeCleaner, why, null, false, describe(t));
        }
    }

    private static boolean hasModules() {
        try {
            Class.forName("java.lang.Module");
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        }
    }

    /** Whether the native core reads the lists; the tests' property forces reflection, whose opening it fails. */
    private static boolean nativeRoute(String testProperty) {
        return Internals.nativeRoute() && !Boolean.getBoolean(testProperty);
    }

    /**
     * Proves the native census of {@code part} on new streams (a Cleaner's Inflater and Deflater,
     * a finalizable Inflater), which it must find among the first entries of the list (new ones
     * go first). Returns how long it held the list's lock.
     */
    private static long nativeCheck(int part) {
        String problem = NativeCore.zipCensusProblem(part);
        if (problem != null) {
            throw new IllegalStateException(problem);
        }
        boolean cleaner = part == NativeCore.CENSUS_CLEANER;
        Inflater probe = cleaner ? new Inflater() : new FinalizableProbe();
        Deflater probeD = cleaner ? new Deflater() : null;
        try {
            long[] r = NativeCore.zipCensus(part, CHECK_LIMIT, SCAN_BUDGET_NS);
            int at = cleaner ? 0 : NATIVE_SLOTS;
            if (r[at] == NATIVE_DISABLED) {
                return 0;
            }
            if (cleaner ? (r[1] < 1 || r[3] < 1) : r[at + 1] < 1) {
                throw new IllegalStateException(cleaner ? "the Cleaner's list does not hold a new Inflater and Deflater"
                        : "the Finalizer's list does not hold a new finalizable Inflater");
            }
            return r[at + 7];
        } finally {
            probe.end();
            if (probeD != null) {
                probeD.end();
            }
        }
    }

    /** Per part, the slots of {@link NativeCore#zipCensus}'s answer, and its "finalization disabled" state. */
    private static final int NATIVE_SLOTS = 8;
    private static final long NATIVE_DISABLED = 2;

    /** One part of the native answer as Counts. */
    private static void fromNative(long[] r, int at, Counts c) {
        c.inflatersAlive = r[at + 1];
        c.inflatersPending = r[at + 2];
        c.deflatersAlive = r[at + 3];
        c.deflatersPending = r[at + 4];
        c.seen = r[at + 5];
        c.truncated = r[at + 6] != 0;
        c.lockHeldNs = r[at + 7];
    }

    /**
     * The census as one JSON object:
     * <pre>
     * {"method":"cleaner"|"histogram"|"unavailable",
     *  "inflaters":{"alive":N,"pending_cleanup":N,"instances":N,"finalizable_alive":N,"finalizable_pending":N},
     *  "deflaters":{...the same...},
     *  "estimated_native_bytes":N, "scan_ns":N, "truncated":bool, "reason":"..."|null,
     *  "lock_held_last_ns":N, "lock_held_max_ns":N,
     *  "finalizer":{"state":"read"|"disabled"|"unavailable","reason":"..."|null,"lock_held_ns":N}}
     * </pre>
     * With "cleaner", alive + pending_cleanup is exactly the number of unended streams released
     * by the Cleaner (instances is null; "cleanables" is the length of the list walked). "alive"
     * means not yet found unreachable by a GC: an object dropped since the last GC that processed
     * it still counts as alive. "pending_cleanup" ones are unreachable and wait for the Cleaner
     * thread. The JDK's own open jar and zip files keep a few unended Inflaters in a cache, so a
     * JVM starts at 2 or 3. "lock_held_last_ns"/"lock_held_max_ns": how long this scan, and the
     * longest scan of this census, held the Cleaner's lock. The finalizable_* counts are the
     * unended streams a finalizer releases (pending: queued for the finalizer thread); they are
     * in the estimate with "cleaner" and null where the Finalizer cannot be read.
     * With "histogram", only instances is known (every object in the heap: reachable or not,
     * ended or not), the estimate is an upper bound, and "age_ms" says how old the (rate-limited)
     * histogram is. "truncated" says a walk stopped at its time budget (counts are then low).
     * Never throws.
     */
    String scanJson() {
        synchronized (paceLock) {
            long now = System.nanoTime();
            if (lastJson != null && now - nextScanNs < 0) {
                return lastJson;
            }
            lastLockNs = 0;
            lastWalkNs = 0;
            String json = scanNow();
            // The histogram fallback is rate-limited on its own: only the lists' walks count here.
            long wait = Math.max(LOCK_BACKOFF * lastLockNs, SCAN_BACKOFF * lastWalkNs);
            nextScanNs = System.nanoTime() + Math.min(wait, MAX_WAIT_NS);
            lastJson = json;
            return json;
        }
    }

    /** A census now, whatever the last one cost: {@link #scanJson} without its pacing. */
    String scanNow() {
        long t0 = System.nanoTime();
        try {
            long[] r = null;
            String nativeFailure = null;
            int parts = (nativeCleaner ? NativeCore.CENSUS_CLEANER : 0) | (nativeFinalizer ? NativeCore.CENSUS_FINALIZER : 0);
            if (parts != 0) {
                try {
                    r = NativeCore.zipCensus(parts, Long.MAX_VALUE, SCAN_BUDGET_NS);
                } catch (RuntimeException e) {
                    nativeFailure = describe(e);
                }
            }
            Fin f;
            if (!nativeFinalizer) {
                f = finalizerCounts(t0 + SCAN_BUDGET_NS);
            } else if (r == null) {
                f = new Fin();
                f.state = "unavailable";
                f.reason = "reading the Finalizer failed: " + nativeFailure;
            } else {
                f = new Fin();
                if (r[NATIVE_SLOTS] == NATIVE_DISABLED) {
                    f.state = "disabled";
                    f.reason = "finalization is disabled (--finalization=disabled)";
                } else {
                    fromNative(r, NATIVE_SLOTS, f);
                    f.state = "read";
                }
            }
            lastLockNs = Math.max(lastLockNs, f.lockHeldNs);
            lastWalkNs = System.nanoTime() - t0;
            if (nativeCleaner) {
                if (r == null) {
                    return fallback("reading the Cleaner failed: " + nativeFailure, f, t0);
                }
                Counts c = new Counts();
                fromNative(r, 0, c);
                lastLockNs = Math.max(lastLockNs, c.lockHeldNs);
                if (c.lockHeldNs > nativeLockHeldMaxNs) {
                    nativeLockHeldMaxNs = c.lockHeldNs; // racy max: scans of one census rarely overlap
                }
                return cleanerJson(c, f, t0, nativeLockHeldMaxNs);
            }
            if (walk != null) {
                try {
                    String json = walk.scan(t0, f);
                    lastLockNs = Math.max(lastLockNs, walk.lastHeldNs);
                    lastWalkNs = System.nanoTime() - t0;
                    return json;
                } catch (Throwable t) {
                    return fallback("reading the Cleaner failed: " + describe(t), f, t0);
                }
            }
            return fallback(reason, f, t0);
        } catch (Throwable t) {
            return unavailable("census failed: " + describe(t), System.nanoTime() - t0, null);
        }
    }

    private Fin finalizerCounts(long deadline) {
        Fin f = new Fin();
        if (finalizers == null) {
            f.state = "unavailable";
            f.reason = finalizerReason;
        } else if (!finalizers.enabled) {
            f.state = "disabled";
            f.reason = "finalization is disabled (--finalization=disabled)";
        } else {
            try {
                finalizers.count(f, deadline);
                f.state = "read";
            } catch (Throwable t) {
                f = new Fin();
                f.state = "unavailable";
                f.reason = "reading the Finalizer failed: " + describe(t);
            }
        }
        return f;
    }

    /**
     * The census of this JVM as JSON, using the Instrumentation the agent was started with. With
     * the system property {@value #TEST_HISTOGRAM_PROPERTY}=true, a fresh census forced onto the
     * histogram fallback (not rate-limited, since each call is a new census).
     */
    public static String scanForTest() {
        if (Boolean.getBoolean(TEST_HISTOGRAM_PROPERTY)) {
            return withFinalizers(null, false, "histogram forced by " + TEST_HISTOGRAM_PROPERTY, instrumentation).scanNow();
        }
        ZipCensus c;
        synchronized (ZipCensus.class) {
            if (forTest == null) {
                forTest = create(instrumentation);
            }
            c = forTest;
        }
        return c.scanNow();
    }

    private String fallback(String why, Fin f, long t0) {
        long[] h;
        long ageMs;
        synchronized (histogramLock) {
            long now = System.nanoTime();
            if (lastHistogram == null || now - lastHistogramNs >= HISTOGRAM_MIN_INTERVAL_NS) {
                try {
                    lastHistogram = histogram();
                } catch (Throwable t) {
                    return unavailable(why + "; class histogram failed: " + describe(t), System.nanoTime() - t0, f);
                }
                lastHistogramNs = now;
            }
            h = lastHistogram;
            ageMs = (now - lastHistogramNs) / 1_000_000L;
        }
        // Finalizable streams are among the instances already: not added to the estimate.
        return new Json()
                .put("method", "histogram")
                .putRaw("inflaters", counts(null, null, h[0], f, true))
                .putRaw("deflaters", counts(null, null, h[1], f, false))
                .put("estimated_native_bytes", h[0] * INFLATER_NATIVE_BYTES + h[1] * DEFLATER_NATIVE_BYTES)
                .put("scan_ns", System.nanoTime() - t0)
                .put("truncated", f.truncated)
                .put("age_ms", ageMs)
                .put("reason", why)
                .putRaw("finalizer", f.json())
                .end();
    }

    /** Instances of Inflater and Deflater in the heap, reachable or not, from the class histogram. */
    private static long[] histogram() throws Exception {
        Object out = DiagnosticCommands.invoke("gcClassHistogram", "-all");
        String text = String.valueOf(out);
        long inflaters = 0;
        long deflaters = 0;
        for (String line : text.split("\n")) {
            // "   7:        1234        59232  java.util.zip.Inflater (java.base@17.0.9)"; JDK 8 has no module.
            String[] f = line.trim().split("\\s+");
            if (f.length < 4 || !f[0].endsWith(":")) {
                continue;
            }
            if (f[3].equals("java.util.zip.Inflater")) {
                inflaters = parseLong(f[1]);
            } else if (f[3].equals("java.util.zip.Deflater")) {
                deflaters = parseLong(f[1]);
            }
        }
        return new long[] {inflaters, deflaters};
    }

    private static long parseLong(String s) {
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    private static String unavailable(String why, long ns, Fin f) {
        return new Json()
                .put("method", "unavailable")
                .putRaw("inflaters", counts(null, null, null, f, true))
                .putRaw("deflaters", counts(null, null, null, f, false))
                .putRaw("estimated_native_bytes", null)
                .put("scan_ns", ns)
                .put("truncated", false)
                .put("reason", why)
                .putRaw("finalizer", f == null ? null : f.json())
                .end();
    }

    private static String counts(Long alive, Long pending, Long instances, Fin f, boolean inflaters) {
        boolean known = f != null && !"unavailable".equals(f.state);
        return new Json()
                .putRaw("alive", alive == null ? null : alive.toString())
                .putRaw("pending_cleanup", pending == null ? null : pending.toString())
                .putRaw("instances", instances == null ? null : instances.toString())
                .putRaw("finalizable_alive", known ? Long.toString(inflaters ? f.inflatersAlive : f.deflatersAlive) : null)
                .putRaw("finalizable_pending",
                        known ? Long.toString(inflaters ? f.inflatersPending : f.deflatersPending) : null)
                .end();
    }

    /** A census of the Cleaner's list ("cleaner"), leaving out the streams {@code f} counted already. */
    private static String cleanerJson(Counts c, Fin f, long t0, long lockHeldMaxNs) {
        long bytes = (c.inflatersAlive + c.inflatersPending + f.inflatersAlive + f.inflatersPending)
                * INFLATER_NATIVE_BYTES
                + (c.deflatersAlive + c.deflatersPending + f.deflatersAlive + f.deflatersPending)
                * DEFLATER_NATIVE_BYTES;
        return new Json()
                .put("method", "cleaner")
                .putRaw("inflaters", counts(c.inflatersAlive, c.inflatersPending, null, f, true))
                .putRaw("deflaters", counts(c.deflatersAlive, c.deflatersPending, null, f, false))
                .put("estimated_native_bytes", bytes)
                .put("scan_ns", System.nanoTime() - t0)
                .put("truncated", c.truncated || f.truncated)
                .put("cleanables", c.seen)
                .put("reason", (String) null)
                .put("lock_held_last_ns", c.lockHeldNs)
                .put("lock_held_max_ns", lockHeldMaxNs)
                .putRaw("finalizer", f.json())
                .end();
    }

    static String describe(Throwable t) {
        if (t instanceof java.lang.reflect.InvocationTargetException && t.getCause() != null) {
            t = t.getCause();
        }
        String m = t.getMessage();
        return t.getClass().getSimpleName() + (m == null ? "" : ": " + m);
    }

    /** The reflective handles on one JDK's Cleaner list, resolved and checked once. */
    private static final class CleanerWalk {
        private final Object lock;
        /** JDK 9 to 23: the list head and PhantomCleanable.next. */
        private final Object linkedHead;
        private final FieldRef next;
        /** JDK 24+: CleanableList.head and Node's fields. */
        private final FieldRef nodeHead;
        private final FieldRef nodeArr;
        private final FieldRef nodeSize;
        private final FieldRef nodeNext;
        private final Class<?> cleanableRef;
        private final FieldRef action;
        private final Class<?> inflaterRef;
        private final Class<?> deflaterRef;
        private final FieldRef inflaterAddress;
        private final FieldRef deflaterAddress;
        /** Reference.refersTo (JDK 16+), else the Reference.referent field. */
        private final MethodRef refersTo;
        private final FieldRef referent;
        /** The longest a walk (the start-up check included) held the list's lock, ns. */
        private volatile long lockHeldMaxNs;
        /** How long the last scan held it, ns. */
        volatile long lastHeldNs;

        private CleanerWalk(Object lock, Object linkedHead, FieldRef next, FieldRef nodeHead, FieldRef nodeArr, FieldRef nodeSize,
                FieldRef nodeNext, Class<?> cleanableRef, FieldRef action, Class<?> inflaterRef, Class<?> deflaterRef,
                FieldRef inflaterAddress, FieldRef deflaterAddress, MethodRef refersTo, FieldRef referent) {
            this.lock = lock;
            this.linkedHead = linkedHead;
            this.next = next;
            this.nodeHead = nodeHead;
            this.nodeArr = nodeArr;
            this.nodeSize = nodeSize;
            this.nodeNext = nodeNext;
            this.cleanableRef = cleanableRef;
            this.action = action;
            this.inflaterRef = inflaterRef;
            this.deflaterRef = deflaterRef;
            this.inflaterAddress = inflaterAddress;
            this.deflaterAddress = deflaterAddress;
            this.refersTo = refersTo;
            this.referent = referent;
        }

        static CleanerWalk resolve(Instrumentation inst) throws Exception {
            try {
                Class.forName("java.lang.Module");
            } catch (ClassNotFoundException e) {
                throw new UnsupportedOperationException(
                        "JDK 8 has no Cleaner: Inflater/Deflater are released by finalization");
            }
            openJavaBase(inst);

            Class<?> factory = Class.forName("jdk.internal.ref.CleanerFactory");
            Object cleaner = MethodRef.of(factory.getMethod("cleaner")).invoke(null);
            Class<?> implClass = Class.forName("jdk.internal.ref.CleanerImpl");
            MethodRef getImpl = MethodRef.of(
                    implClass.getDeclaredMethod("getCleanerImpl", Class.forName("java.lang.ref.Cleaner")));
            Object impl = getImpl.invoke(null, cleaner);
            if (impl == null) {
                throw new IllegalStateException("the common Cleaner has no CleanerImpl");
            }
            Class<?> phantomCleanable = Class.forName("jdk.internal.ref.PhantomCleanable");

            Object lock;
            Object linkedHead = null;
            FieldRef next = null;
            FieldRef nodeHead = null;
            FieldRef nodeArr = null;
            FieldRef nodeSize = null;
            FieldRef nodeNext = null;
            FieldRef list = FieldRef.optional(implClass, "activeList");
            if (list != null) {
                lock = list.get(impl);
                Class<?> listClass = Class.forName("jdk.internal.ref.CleanerImpl$CleanableList");
                Class<?> nodeClass = Class.forName("jdk.internal.ref.CleanerImpl$CleanableList$Node");
                nodeHead = FieldRef.of(listClass, "head");
                nodeArr = FieldRef.of(nodeClass, "arr");
                nodeSize = FieldRef.of(nodeClass, "size");
                nodeNext = FieldRef.of(nodeClass, "next");
            } else {
                list = FieldRef.of(implClass, "phantomCleanableList");
                linkedHead = list.get(impl);
                lock = linkedHead;
                next = FieldRef.of(phantomCleanable, "next");
            }
            if (lock == null) {
                throw new IllegalStateException("the common Cleaner's list is null");
            }

            MethodRef refersTo = null;
            FieldRef referent = null;
            try {
                refersTo = MethodRef.of(java.lang.ref.Reference.class.getMethod("refersTo", Object.class));
            } catch (NoSuchMethodException e) {
                referent = FieldRef.of(java.lang.ref.Reference.class, "referent");
            }
            Class<?> inflaterRef = Class.forName(INFLATER_REF);
            Class<?> deflaterRef = Class.forName(DEFLATER_REF);
            CleanerWalk w = new CleanerWalk(lock, linkedHead, next, nodeHead, nodeArr, nodeSize, nodeNext,
                    Class.forName("jdk.internal.ref.CleanerImpl$PhantomCleanableRef"),
                    FieldRef.of(Class.forName("jdk.internal.ref.CleanerImpl$PhantomCleanableRef"), "action"),
                    inflaterRef, deflaterRef, FieldRef.of(inflaterRef, "address"),
                    FieldRef.of(deflaterRef, "address"), refersTo, referent);
            w.selfCheck();
            return w;
        }

        /**
         * Proves the layout on a fresh Inflater (its cleanable is a PhantomCleanableRef whose
         * action is its ZStreamRef, with an address, referring to it) and warms up every
         * reflective path, so the scan loads no classes while it holds the Cleaner's lock.
         */
        private void selfCheck() throws Exception {
            Inflater probe = new Inflater();
            Deflater probeD = new Deflater();
            try {
                Object zsRef = FieldRef.of(Inflater.class, "zsRef").get(probe);
                Object cleanable = FieldRef.of(inflaterRef, "cleanable").get(zsRef);
                if (cleanable == null || cleanable.getClass() != cleanableRef || action.get(cleanable) != zsRef) {
                    throw new IllegalStateException("an Inflater's cleanable is not the expected PhantomCleanableRef");
                }
                if (inflaterAddress.getLong(zsRef) == 0) {
                    throw new IllegalStateException("a new Inflater has no zlib address");
                }
                Object zsRefD = FieldRef.of(Deflater.class, "zsRef").get(probeD);
                if (deflaterAddress.getLong(zsRefD) == 0) {
                    throw new IllegalStateException("a new Deflater has no zlib address");
                }
                // Enough calls for reflection to settle on its final accessor (inflation after 15).
                PhantomReference<Object> cleared = new PhantomReference<Object>(null, null);
                for (int i = 0; i < 20; i++) {
                    if (isCleared(cleanable) || !isCleared(cleared)) {
                        throw new IllegalStateException("cannot tell a live cleanable from a cleared one");
                    }
                }
                // The walk's other reads too, outside the lock: a cold accessor (tens of ms on a
                // first use) would otherwise be paid while the Cleaner's lock is held.
                for (int i = 0; i < 20; i++) {
                    action.get(cleanable);
                    inflaterAddress.getLong(zsRef);
                    deflaterAddress.getLong(zsRefD);
                    if (next != null) {
                        next.get(cleanable);
                    } else {
                        Object node = nodeHead.get(lock); // unlocked, racy, and discarded
                        if (node != null) {
                            nodeArr.get(node);
                            nodeSize.getInt(node);
                            nodeNext.get(node);
                        }
                    }
                }
                // New cleanables go first (JDK 11-21: after the head; 25: in the head node's array,
                // at most 4096 long): the probes are found without walking a long list cold.
                Counts c = new Counts();
                c.limit = CHECK_LIMIT;
                count(c, System.nanoTime() + SCAN_BUDGET_NS);
                if (c.inflatersAlive < 1 || c.deflatersAlive < 1) {
                    throw new IllegalStateException("the Cleaner's list does not hold a new Inflater and Deflater");
                }
            } finally {
                probe.end();
                probeD.end();
            }
        }

        private boolean isCleared(Object reference) throws Exception {
            if (refersTo != null) {
                return (Boolean) refersTo.invoke(reference, (Object) null);
            }
            return referent.get(reference) == null;
        }

        /** The Cleaner's counts, leaving out the streams {@code f} counted already. */
        String scan(long t0, Fin f) throws Exception {
            Counts c = new Counts();
            c.skip = f.zsRefs;
            count(c, t0 + SCAN_BUDGET_NS);
            lastHeldNs = c.lockHeldNs;
            return cleanerJson(c, f, t0, lockHeldMaxNs);
        }

        /**
         * Walks the list under the lock the JDK itself takes to insert and remove, so the list
         * is consistent; stops at the deadline rather than hold up other threads' cleanables.
         */
        private void count(Counts c, long deadline) throws Exception {
            synchronized (lock) {
                long in = System.nanoTime();
                try {
                    walkLocked(c, deadline);
                } finally {
                    c.lockHeldNs = System.nanoTime() - in;
                    if (c.lockHeldNs > lockHeldMaxNs) {
                        lockHeldMaxNs = c.lockHeldNs; // racy max: scans of one census rarely overlap
                    }
                }
            }
        }

        private void walkLocked(Counts c, long deadline) throws Exception {
            if (linkedHead != null) {
                Object head = linkedHead;
                Object e = next.get(head);
                while (e != null && e != head) {
                    if (!visit(c, e, deadline)) {
                        return;
                    }
                    Object n = next.get(e);
                    if (n == e) {
                        // Removed without the lock (cannot happen in the JDK): do not spin.
                        c.truncated = true;
                        return;
                    }
                    e = n;
                }
            } else {
                Object node = nodeHead.get(lock);
                while (node != null) {
                    Object[] arr = (Object[]) nodeArr.get(node);
                    int size = Math.min(nodeSize.getInt(node), arr.length);
                    for (int i = 0; i < size; i++) {
                        if (arr[i] != null && !visit(c, arr[i], deadline)) {
                            return;
                        }
                    }
                    node = nodeNext.get(node);
                }
            }
        }

        /** Counts one cleanable; false when the time budget is spent. */
        private boolean visit(Counts c, Object cleanable, long deadline) throws Exception {
            if ((++c.seen & 1023) == 0 && (System.nanoTime() - deadline > 0 || c.seen >= c.limit)) {
                c.truncated = true;
                return false;
            }
            if (cleanable.getClass() != cleanableRef) {
                return true; // another kind of cleanable (files, zip files, ...)
            }
            Object a = action.get(cleanable);
            if (a == null) {
                return true;
            }
            Class<?> k = a.getClass();
            boolean inflater = k == inflaterRef;
            if (!inflater && k != deflaterRef) {
                return true;
            }
            if (c.skip != null && c.skip.containsKey(a)) {
                return true; // a finalizable stream, counted by the Finalizer part
            }
            // Racy by design: end() on another thread may zero it right now; it is then ended.
            long address = (inflater ? inflaterAddress : deflaterAddress).getLong(a);
            if (address == 0) {
                return true;
            }
            c.tally(inflater, isCleared(cleanable));
            return true;
        }

        /**
         * Opens java.base's jdk.internal.ref, java.util.zip and java.lang.ref to this class's
         * module ({@link Modules#open}).
         */
        private static void openJavaBase(Instrumentation inst) throws Exception {
            // java.lang.ref here only for Reference.referent, which JDK 16+ replaces by refersTo
            // (the Finalizer part opens it in any case).
            boolean needReferent = !hasMethod(java.lang.ref.Reference.class, "refersTo", Object.class);
            String[] packages = needReferent
                    ? new String[] {"jdk.internal.ref", "java.util.zip", "java.lang.ref"}
                    : new String[] {"jdk.internal.ref", "java.util.zip"};
            if (Boolean.getBoolean(TEST_OPEN_FAILS_PROPERTY)) {
                packages = java.util.Arrays.copyOf(packages, packages.length + 1);
                packages[packages.length - 1] = "offheap.doctor.no.such.package";
            }
            Modules.open(inst, Object.class, packages);
        }

        private static boolean hasMethod(Class<?> c, String name, Class<?>... params) {
            try {
                c.getMethod(name, params);
                return true;
            } catch (NoSuchMethodException e) {
                return false;
            }
        }
    }

    /** What one walk (the Cleaner's list or the Finalizer's) counted. */
    private static class Counts {
        long inflatersAlive;
        long inflatersPending;
        long deflatersAlive;
        long deflatersPending;
        long seen;
        boolean truncated;
        long lockHeldNs;
        /** Entries after which the walk stops (truncated): the start-up check's bound. */
        long limit = Long.MAX_VALUE;
        /** ZStreamRefs already counted by the Finalizer part, or null. */
        Map<Object, Boolean> skip;

        /** Counts one unended stream, alive or awaiting its cleanup. */
        void tally(boolean inflater, boolean pending) {
            if (inflater) {
                if (pending) {
                    inflatersPending++;
                } else {
                    inflatersAlive++;
                }
            } else if (pending) {
                deflatersPending++;
            } else {
                deflatersAlive++;
            }
        }
    }

    /** What the Finalizer part found in one scan. */
    private static final class Fin extends Counts {
        String state;
        String reason;
        /** The ZStreamRefs counted (identity), so each stream is counted once; null if none. */
        Map<Object, Boolean> zsRefs;

        String json() {
            return new Json().put("state", state).put("reason", reason).put("lock_held_ns", lockHeldNs).end();
        }
    }

    /**
     * An Inflater that goes through a finalizer, for the Finalizer part's start-up check.
     * Its finalize() does what JDK 8's Inflater did: end().
     */
    private static final class FinalizableProbe extends Inflater {
        @Override
        @SuppressWarnings("deprecation")
        protected void finalize() {
            end();
        }
    }

    /** The reflective handles on java.lang.ref.Finalizer's list, resolved and checked once. */
    private static final class FinalizerWalk {
        private final Object lock;
        private final FieldRef unfinalized;
        private final FieldRef next;
        /** Finalizer.queue (static): a Finalizer whose Reference.queue is no longer it is enqueued. */
        private final FieldRef finalizerQueue;
        private final FieldRef referenceQueue;
        private final FieldRef referent;
        private final FieldRef inflaterZsRef;
        private final FieldRef deflaterZsRef;
        private final Class<?> inflaterRefType;
        private final FieldRef inflaterAddress;
        private final FieldRef deflaterAddress;
        /** Finalizer.ENABLED (JDK 18+: false with --finalization=disabled). */
        final boolean enabled;

        private FinalizerWalk(Object lock, FieldRef unfinalized, FieldRef next, FieldRef finalizerQueue, FieldRef referenceQueue,
                FieldRef referent, FieldRef inflaterZsRef, FieldRef deflaterZsRef, boolean enabled)
                throws Exception {
            this.lock = lock;
            this.unfinalized = unfinalized;
            this.next = next;
            this.finalizerQueue = finalizerQueue;
            this.referenceQueue = referenceQueue;
            this.referent = referent;
            this.inflaterZsRef = inflaterZsRef;
            this.deflaterZsRef = deflaterZsRef;
            this.inflaterRefType = inflaterZsRef.getType();
            this.inflaterAddress = FieldRef.of(inflaterZsRef.getType(), "address");
            this.deflaterAddress = FieldRef.of(deflaterZsRef.getType(), "address");
            this.enabled = enabled;
        }

        static FinalizerWalk resolve(Instrumentation inst) throws Exception {
            open(inst);
            Class<?> fin = Class.forName("java.lang.ref.Finalizer");
            Class<?> ref = java.lang.ref.Reference.class;
            Object lock = FieldRef.of(fin, "lock").get(null);
            if (lock == null) {
                throw new IllegalStateException("Finalizer.lock is null");
            }
            FieldRef enabledField = FieldRef.optional(fin, "ENABLED");
            boolean enabled = enabledField == null || enabledField.getBoolean(null);
            FinalizerWalk w = new FinalizerWalk(lock, FieldRef.of(fin, "unfinalized"),
                    FieldRef.of(fin, "next"), FieldRef.of(fin, "queue"), FieldRef.of(ref, "queue"),
                    FieldRef.of(ref, "referent"), FieldRef.of(Inflater.class, "zsRef"),
                    FieldRef.of(Deflater.class, "zsRef"), enabled);
            if (enabled) {
                w.selfCheck();
            }
            return w;
        }

        /** Proves the layout on a new finalizable Inflater, and warms up the reflective paths. */
        private void selfCheck() throws Exception {
            Inflater probe = new FinalizableProbe();
            try {
                // Warm the reflective reads outside the lock (values racy and discarded).
                for (int i = 0; i < 20; i++) {
                    finalizerQueue.get(null);
                    Object head = unfinalized.get(null);
                    if (head != null) {
                        referent.get(head);
                        referenceQueue.get(head);
                        next.get(head);
                    }
                    inflaterAddress.getLong(inflaterZsRef.get(probe));
                }
                Fin f = new Fin();
                f.limit = CHECK_LIMIT; // Finalizer.register pushes at the head: the probe is first
                count(f, System.nanoTime() + SCAN_BUDGET_NS);
                if (f.inflatersAlive < 1) {
                    throw new IllegalStateException("the Finalizer's list does not hold a new finalizable Inflater");
                }
            } finally {
                probe.end();
            }
        }

        /** Walks the unfinalized list under the lock Finalizer itself takes, up to the deadline. */
        void count(Fin f, long deadline) throws Exception {
            Object queue = finalizerQueue.get(null);
            synchronized (lock) {
                long in = System.nanoTime();
                try {
                    Object e = unfinalized.get(null);
                    while (e != null) {
                        if ((++f.seen & 255) == 0 && (System.nanoTime() - deadline > 0 || f.seen >= f.limit)) {
                            f.truncated = true;
                            return;
                        }
                        visit(f, e, queue);
                        Object n = next.get(e);
                        if (n == e) {
                            f.truncated = true; // finalized without the lock (cannot happen in the JDK)
                            return;
                        }
                        e = n;
                    }
                } finally {
                    f.lockHeldNs = System.nanoTime() - in;
                }
            }
        }

        private void visit(Fin f, Object finalizer, Object queue) throws Exception {
            Object r = referent.get(finalizer);
            Object zs;
            boolean inflater;
            if (r instanceof Inflater) {
                zs = inflaterZsRef.get(r); // a subclass with finalize(), or JDK 8's Inflater
                inflater = true;
            } else if (r instanceof Deflater) {
                zs = deflaterZsRef.get(r);
                inflater = false;
            } else if (r != null && inflaterRefType.isInstance(r)) {
                zs = r; // JDK 9-17: FinalizableZStreamRef of a subclass that overrides end()
                inflater = true;
            } else if (r != null && deflaterZsRef.getType().isInstance(r)) {
                zs = r;
                inflater = false;
            } else {
                return;
            }
            // Racy by design, as in the Cleaner's walk: end() on another thread may zero it now.
            if (zs == null || (inflater ? inflaterAddress : deflaterAddress).getLong(zs) == 0) {
                return;
            }
            if (f.zsRefs == null) {
                f.zsRefs = new IdentityHashMap<Object, Boolean>();
            }
            if (f.zsRefs.put(zs, Boolean.TRUE) != null) {
                return; // JDK 11: a subclass overriding both finalize() and end() has two Finalizers
            }
            // Registered: Reference.queue is Finalizer.queue; enqueued or taken by the finalizer
            // thread: ENQUEUED or NULL. Not yet enqueued by the reference handler: still alive.
            f.tally(inflater, referenceQueue.get(finalizer) != queue);
        }

        /** Opens java.lang.ref and java.util.zip of java.base to the agent (JDK 9+; no-op on 8). */
        private static void open(Instrumentation inst) throws Exception {
            String[] packages = Boolean.getBoolean(TEST_FINALIZER_OPEN_FAILS_PROPERTY)
                    ? new String[] {"java.lang.ref", "java.util.zip", "offheap.doctor.no.such.package"}
                    : new String[] {"java.lang.ref", "java.util.zip"};
            try {
                Modules.open(inst, Object.class, packages);
            } catch (ClassNotFoundException e) {
                return; // JDK 8: setAccessible suffices
            }
        }
    }
}
