package io.offheapdoctor;

/**
 * Every native method of the agent, in one class. Public methods check their arguments and call
 * a private {@code *0} native; all data crosses as JSON strings. Errors arrive as
 * {@link NativeException} subclasses, {@link IllegalArgumentException} or
 * {@link UnsupportedOperationException}; a native panic as {@link NativePanicException}.
 */
public final class NativeCore {
    private NativeCore() {}

    /** The native core's version; also proves the library is linked. */
    public static String version() {
        NativeLoader.ensureLoaded();
        return version0();
    }

    /** The version, without the load check: for the loader's own probe right after loading. */
    static String linkedVersion() {
        return version0();
    }

    /** Configures the core (a JSON object); resets its state. */
    static void init(String configJson) {
        init0(requireNonNull(configJson, "configJson"));
    }

    /** Takes one sample with the JVM's facts (a JSON object); returns the report line. */
    static String sample(String factsJson) {
        return sample0(requireNonNull(factsJson, "factsJson"));
    }

    /**
     * Releases free memory to the kernel now (glibc {@code malloc_trim}, jemalloc purge,
     * tcmalloc release) on the core's trim worker, waiting at most {@code timeoutMs}. Returns the
     * outcome as JSON: {@code {"status":"done",...record}} or {@code {"status":"still_running"}}.
     */
    public static String trim(long timeoutMs) {
        if (timeoutMs < 0) {
            throw new IllegalArgumentException("timeoutMs must not be negative: " + timeoutMs);
        }
        NativeLoader.ensureLoaded();
        return trim0(timeoutMs);
    }

    /** Sets the trim policy ({@code off}, {@code auto[,key=value...]}, an interval); returns its status as JSON. */
    public static String setTrimPolicy(String policy) {
        requireNonNull(policy, "policy");
        NativeLoader.ensureLoaded();
        return setTrimPolicy0(policy);
    }

    /** Makes the next sample the baseline that growth is measured from. */
    public static void setBaseline() {
        NativeLoader.ensureLoaded();
        setBaseline0();
    }

    /**
     * Applies glibc malloc settings ({@code arenaMax=2,mmapThreshold=128k}) on behalf of
     * {@code by} ({@code premain} or {@code agentmain}); returns the outcomes as JSON.
     */
    static String tune(String settings, String by) {
        requireNonNull(settings, "settings");
        requireNonNull(by, "by");
        NativeLoader.ensureLoaded();
        return tune0(settings, by);
    }

    /**
     * Renders a report file (JSON lines) and the files rotated out of it ({@code <report>.1}, ...)
     * into one self-contained HTML page written to {@code out}; says how many samples it drew.
     */
    public static String renderTimeline(String report, String out) {
        requireNonNull(report, "report");
        requireNonNull(out, "out");
        NativeLoader.ensureLoaded();
        return renderTimeline0(report, out);
    }

    /** Writes the timeline page of this JVM's samples so far to {@code out}. */
    static String liveTimeline(String out) {
        requireNonNull(out, "out");
        NativeLoader.ensureLoaded();
        return liveTimeline0(out);
    }

    /** Lines the core wants said to the operator since the last call, newline-separated. */
    static String takeNotices() {
        return takeNotices0();
    }

    /**
     * Drives the error policy from Java: {@code ok} returns "ok"; {@code io}, {@code argument},
     * {@code unsupported} and {@code panic} each throw their mapped exception.
     */
    public static String selfTest(String what) {
        requireNonNull(what, "what");
        NativeLoader.ensureLoaded();
        return selfTest0(what);
    }

    private static String requireNonNull(String s, String name) {
        if (s == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
        return s;
    }

    private static native String version0();

    private static native void init0(String configJson);

    private static native String sample0(String factsJson);

    private static native String selfTest0(String what);

    private static native String trim0(long timeoutMs);

    private static native String setTrimPolicy0(String policy);

    private static native void setBaseline0();

    private static native String tune0(String settings, String by);

    private static native String takeNotices0();

    private static native String renderTimeline0(String report, String out);

    private static native String liveTimeline0(String out);

    // JDK internals: the native core resolves the few members it reads itself (an allow-list of
    // class, name and signature) and does each job whole. What comes back is what the JDK hands
    // class-path code anyway: counts, command output, a VM option's value, public beans.

    /** The zip census's parts: the common Cleaner's list, the Finalizer's. */
    static final int CENSUS_CLEANER = 1;
    static final int CENSUS_FINALIZER = 2;

    /**
     * Counts the unended Inflaters and Deflaters of {@code parts} (bits of {@link #CENSUS_CLEANER}
     * and {@link #CENSUS_FINALIZER}), copying at most {@code limit} entries of each list, holding
     * each list's lock at most {@code budgetNs}. Returns 16 numbers, 8 per part (Cleaner, then
     * Finalizer): state (0 not asked, 1 read, 2 finalization disabled), inflaters alive, pending,
     * deflaters alive, pending, entries seen, truncated (0/1), lock held in ns.
     */
    static long[] zipCensus(int parts, long limit, long budgetNs) {
        if (parts <= 0 || parts > (CENSUS_CLEANER | CENSUS_FINALIZER) || limit <= 0 || budgetNs <= 0) {
            throw new IllegalArgumentException("census parts " + parts + ", limit " + limit + ", budget " + budgetNs);
        }
        NativeLoader.ensureLoaded();
        return zipCensus0(parts, limit, budgetNs);
    }

    /** Why the census cannot read {@code part} on this JDK, or null when it can. */
    static String zipCensusProblem(int part) {
        if (part != CENSUS_CLEANER && part != CENSUS_FINALIZER) {
            throw new IllegalArgumentException("census part " + part);
        }
        NativeLoader.ensureLoaded();
        return zipCensusProblem0(part);
    }

    /** The diagnostic commands {@link #diagnosticCommand} runs, by index. */
    static final int DCMD_HEAP_INFO = 0;
    static final int DCMD_NATIVE_MEMORY = 1;
    static final int DCMD_CLASS_HISTOGRAM = 2;

    /** Runs diagnostic command {@code command} ({@code DCMD_*}) with {@code args}; its output. */
    static String diagnosticCommand(int command, String args) {
        if (command < DCMD_HEAP_INFO || command > DCMD_CLASS_HISTOGRAM) {
            throw new IllegalArgumentException("diagnostic command " + command);
        }
        requireNonNull(args, "args");
        NativeLoader.ensureLoaded();
        return diagnosticCommand0(command, args);
    }

    /** A HotSpot VM option's value, or null where the JVM has no such option. */
    static String vmOption(String name) {
        requireNonNull(name, "name");
        NativeLoader.ensureLoaded();
        return vmOption0(name);
    }

    /** The platform beans {@link #platformBean} gives, by index. */
    static final int BEAN_RUNTIME = 0;
    static final int BEAN_MEMORY = 1;
    static final int BEAN_THREADS = 2;

    /** The runtime, memory or threads bean ({@code BEAN_*}), as ManagementFactory gives it. */
    static Object platformBean(int which) {
        if (which < BEAN_RUNTIME || which > BEAN_THREADS) {
            throw new IllegalArgumentException("platform bean " + which);
        }
        NativeLoader.ensureLoaded();
        return platformBean0(which);
    }

    /** The buffer pool beans, as ManagementFactory gives them. */
    static Object[] bufferPoolBeans() {
        NativeLoader.ensureLoaded();
        return bufferPoolBeans0();
    }

    /**
     * Readies the call sites: defines the boot loader's hook class
     * {@code io.offheapdoctor.hooks.Sites}, whose natives the rewritten Inflater, Deflater,
     * DirectByteBuffer and {@code Thread.start} call, and lets {@code java.base} read it. Returns
     * null when done (again, once done), or why it cannot in one line.
     */
    public static String sitesInstall() {
        NativeLoader.ensureLoaded();
        return sitesInstall0();
    }

    /** Records why the call sites are off (a refused rewrite, the option), for the report. */
    static void sitesFailed(String why) {
        requireNonNull(why, "why");
        NativeLoader.ensureLoaded();
        sitesFailed0(why);
    }

    // Native call sites: the sampler interposes the allocation functions of the loaded libraries.
    // Each wrapper answers in words instead of throwing: its callers (the agent's start, the
    // MBean) say the outcome in one line, and a core built without the sampler is one such line.

    /** Why a core without the sampler's natives cannot answer. */
    static final String NATIVE_SITES_MISSING = "this build of the native core has no native call sites";

    /**
     * Starts sampling the native allocations, one sample per {@code sampleBytes} allocated on
     * average ({@link Options#MIN_NATIVE_SAMPLE_BYTES} to {@link Options#MAX_NATIVE_SAMPLE_BYTES}).
     * Returns null when started, else why not in one line.
     */
    public static String nativeSitesStart(long sampleBytes) {
        if (sampleBytes < Options.MIN_NATIVE_SAMPLE_BYTES || sampleBytes > Options.MAX_NATIVE_SAMPLE_BYTES) {
            throw new IllegalArgumentException("sampleBytes must be from " + Options.MIN_NATIVE_SAMPLE_BYTES + " to "
                    + Options.MAX_NATIVE_SAMPLE_BYTES + ": " + sampleBytes);
        }
        try {
            NativeLoader.ensureLoaded();
            return nativeSitesStart0(sampleBytes);
        } catch (UnsatisfiedLinkError e) {
            return NATIVE_SITES_MISSING;
        } catch (NativeException | UnsupportedOperationException | IllegalArgumentException e) {
            return reason(e);
        }
    }

    /** Stops the sampler and restores every entry it interposed; null when stopped, else why not. */
    public static String nativeSitesStop() {
        try {
            NativeLoader.ensureLoaded();
            return nativeSitesStop0();
        } catch (UnsatisfiedLinkError e) {
            return NATIVE_SITES_MISSING;
        } catch (NativeException | UnsupportedOperationException | IllegalArgumentException e) {
            return reason(e);
        }
    }

    /**
     * The {@code native_sites} part as a sample holds it (JSON text): {@code {"status":"on",...}},
     * {@code {"status":"off"}}, or {@code {"status":"unavailable","problem":...}} when the core
     * cannot say.
     */
    public static String nativeSitesJson() {
        String problem;
        try {
            NativeLoader.ensureLoaded();
            String json = nativeSitesJson0();
            if (json != null) {
                return json;
            }
            problem = "the native core gave no native call sites";
        } catch (UnsatisfiedLinkError e) {
            problem = NATIVE_SITES_MISSING;
        } catch (NativeException | UnsupportedOperationException | IllegalArgumentException e) {
            problem = reason(e);
        }
        return new Json().put("status", "unavailable").put("problem", problem).end();
    }

    /** The exception's message on one line: the core's errors say what failed. */
    private static String reason(RuntimeException e) {
        String m = e.getMessage();
        return m == null || m.isEmpty() ? e.getClass().getSimpleName() : m.replace('\n', ' ').replace('\r', ' ');
    }

    private static native String nativeSitesStart0(long sampleBytes);

    private static native String nativeSitesStop0();

    private static native String nativeSitesJson0();

    private static native long[] zipCensus0(int parts, long limit, long budgetNs);

    private static native String zipCensusProblem0(int part);

    private static native String diagnosticCommand0(int command, String args);

    private static native String vmOption0(String name);

    private static native Object platformBean0(int which);

    private static native Object[] bufferPoolBeans0();

    private static native String sitesInstall0();

    private static native void sitesFailed0(String why);
}
