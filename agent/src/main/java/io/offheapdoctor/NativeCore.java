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
}
