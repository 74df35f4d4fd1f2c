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
 * They are read through the native core (JNI, which checks no access: nothing is opened; see
 * {@link Internals}). Without the native core they are read by reflection, which needs
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

    private final CleanerWalk walk;
    private final String reason;
    /** The Finalizer part: null with {@link #finalizerReason} when it cannot be read. */
    private final FinalizerWalk finalizers;
    private final String finalizerReason;
    private final Object histogramLock = new Object();
    private long lastHistogramNs;
    /** Inflater and Deflater instances from the last histogram. */
    private long[] lastHistogram;

    private ZipCensus(CleanerWalk walk, String reason, FinalizerWalk finalizers, String finalizerReason) {
        this.walk = walk;
        this.reason = reason;
        this.finalizers = finalizers;
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
        String why = null;
        try {
            w = CleanerWalk.resolve(inst);
        } catch (Throwable t) {
            why = describe(t);
            // Said once: the fallback walks the whole heap (at most once a minute) and counts less.
            Log.info("zip census: cannot read the Cleaner (" + why + "); counting with the class histogram instead");
        }
        return withFinalizers(w, why, inst);
    }

    /** Adds the Finalizer part; its failure is reported in every census ("finalizer"), not logged. */
    private static ZipCensus withFinalizers(CleanerWalk w, String why, Instrumentation inst) {
        try {
            return new ZipCensus(w, why, FinalizerWalk.resolve(inst), null);
        } catch (Throwable t) {
            return new ZipCensus(w, why, null, describe(t));
        }
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
        long t0 = System.nanoTime();
        try {
            Fin f = finalizerCounts(t0 + SCAN_BUDGET_NS);
            if (walk != null) {
                try {
                    return walk.scan(t0, f);
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
            return withFinalizers(null, "histogram forced by " + TEST_HISTOGRAM_PROPERTY, instrumentation).scanJson();
        }
        ZipCensus c;
        synchronized (ZipCensus.class) {
            if (forTest == null) {
                forTest = create(instrumentation);
            }
            c = forTest;
        }
        return c.scanJson();
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
        /** Whether the fields are read through the native core ({@link Internals}). */
        private final boolean viaNative;

        private CleanerWalk(Object lock, Object linkedHead, FieldRef next, FieldRef nodeHead, FieldRef nodeArr, FieldRef nodeSize,
                FieldRef nodeNext, Class<?> cleanableRef, FieldRef action, Class<?> inflaterRef, Class<?> deflaterRef,
                FieldRef inflaterAddress, FieldRef deflaterAddress, MethodRef refersTo, FieldRef referent,
                boolean viaNative) {
            this.viaNative = viaNative;
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
            // The test of unreachable internals takes the reflection route, whose opening it fails.
            boolean nat = Internals.nativeRoute() && !Boolean.getBoolean(TEST_OPEN_FAILS_PROPERTY);
            if (!nat) {
                openJavaBase(inst);
            }

            Class<?> factory = Class.forName("jdk.internal.ref.CleanerFactory");
            Object cleaner = MethodRef.of(factory.getMethod("cleaner"), nat).invoke(null);
            Class<?> implClass = Class.forName("jdk.internal.ref.CleanerImpl");
            MethodRef getImpl = MethodRef.of(
                    implClass.getDeclaredMethod("getCleanerImpl", Class.forName("java.lang.ref.Cleaner")), nat);
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
            FieldRef list = FieldRef.optional(implClass, "activeList", nat);
            if (list != null) {
                lock = list.get(impl);
                Class<?> listClass = Class.forName("jdk.internal.ref.CleanerImpl$CleanableList");
                Class<?> nodeClass = Class.forName("jdk.internal.ref.CleanerImpl$CleanableList$Node");
                nodeHead = FieldRef.of(listClass, "head", nat);
                nodeArr = FieldRef.of(nodeClass, "arr", nat);
                nodeSize = FieldRef.of(nodeClass, "size", nat);
                nodeNext = FieldRef.of(nodeClass, "next", nat);
            } else {
                list = FieldRef.of(implClass, "phantomCleanableList", nat);
                linkedHead = list.get(impl);
                lock = linkedHead;
                next = FieldRef.of(phantomCleanable, "next", nat);
            }
            if (lock == null) {
                throw new IllegalStateException("the common Cleaner's list is null");
            }

            MethodRef refersTo = null;
            FieldRef referent = null;
            try {
                refersTo = MethodRef.of(java.lang.ref.Reference.class.getMethod("refersTo", Object.class), nat);
            } catch (NoSuchMethodException e) {
                referent = FieldRef.of(java.lang.ref.Reference.class, "referent", nat);
            }
            Class<?> inflaterRef = Class.forName(INFLATER_REF);
            Class<?> deflaterRef = Class.forName(DEFLATER_REF);
            CleanerWalk w = new CleanerWalk(lock, linkedHead, next, nodeHead, nodeArr, nodeSize, nodeNext,
                    Class.forName("jdk.internal.ref.CleanerImpl$PhantomCleanableRef"),
                    FieldRef.of(Class.forName("jdk.internal.ref.CleanerImpl$PhantomCleanableRef"), "action", nat),
                    inflaterRef, deflaterRef, FieldRef.of(inflaterRef, "address", nat),
                    FieldRef.of(deflaterRef, "address", nat), refersTo, referent, nat);
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
                Object zsRef = FieldRef.of(Inflater.class, "zsRef", viaNative).get(probe);
                Object cleanable = FieldRef.of(inflaterRef, "cleanable", viaNative).get(zsRef);
                if (cleanable == null || cleanable.getClass() != cleanableRef || action.get(cleanable) != zsRef) {
                    throw new IllegalStateException("an Inflater's cleanable is not the expected PhantomCleanableRef");
                }
                if (inflaterAddress.getLong(zsRef) == 0) {
                    throw new IllegalStateException("a new Inflater has no zlib address");
                }
                Object zsRefD = FieldRef.of(Deflater.class, "zsRef", viaNative).get(probeD);
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
                FieldRef referent, FieldRef inflaterZsRef, FieldRef deflaterZsRef, boolean enabled, boolean nat)
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
            this.inflaterAddress = FieldRef.of(inflaterZsRef.getType(), "address", nat);
            this.deflaterAddress = FieldRef.of(deflaterZsRef.getType(), "address", nat);
            this.enabled = enabled;
        }

        static FinalizerWalk resolve(Instrumentation inst) throws Exception {
            // The test of unreachable internals takes the reflection route, whose opening it fails.
            boolean nat = Internals.nativeRoute() && !Boolean.getBoolean(TEST_FINALIZER_OPEN_FAILS_PROPERTY);
            if (!nat) {
                open(inst);
            }
            Class<?> fin = Class.forName("java.lang.ref.Finalizer");
            Class<?> ref = java.lang.ref.Reference.class;
            Object lock = FieldRef.of(fin, "lock", nat).get(null);
            if (lock == null) {
                throw new IllegalStateException("Finalizer.lock is null");
            }
            FieldRef enabledField = FieldRef.optional(fin, "ENABLED", nat);
            boolean enabled = enabledField == null || enabledField.getBoolean(null);
            FinalizerWalk w = new FinalizerWalk(lock, FieldRef.of(fin, "unfinalized", nat),
                    FieldRef.of(fin, "next", nat), FieldRef.of(fin, "queue", nat), FieldRef.of(ref, "queue", nat),
                    FieldRef.of(ref, "referent", nat), FieldRef.of(Inflater.class, "zsRef", nat),
                    FieldRef.of(Deflater.class, "zsRef", nat), enabled, nat);
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
