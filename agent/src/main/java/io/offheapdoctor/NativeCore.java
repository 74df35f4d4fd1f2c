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

    // JDK internals through JNI, for Internals only (which checks kinds and shapes first).

    static native long fieldId0(java.lang.reflect.Field field);

    static native long methodId0(java.lang.reflect.Method method);

    static native Object getObject0(Class<?> owner, Object target, long id, boolean isStatic);

    /** kind: 1 long, 2 int, 3 boolean (as 0/1). */
    static native long getPrimitive0(Class<?> owner, Object target, long id, boolean isStatic, int kind);

    static native Object callObject0(Class<?> owner, Object target, long id, boolean isStatic, Object arg, int argc);

    static native boolean callBoolean0(Class<?> owner, Object target, long id, boolean isStatic, Object arg, int argc);
}
