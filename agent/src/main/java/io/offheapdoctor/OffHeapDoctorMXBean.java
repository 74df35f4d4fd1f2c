package io.offheapdoctor;

/**
 * The agent on the platform MBeanServer, under {@value #OBJECT_NAME}. Attributes are the
 * headline numbers of the latest sample as plain numbers and strings, so JConsole, VisualVM and
 * the Prometheus JMX exporter read them unchanged. A number the latest sample does not hold (no
 * sample yet, NMT off, no breakdown in this build) reads -1; a ratio reads NaN; a string
 * "unknown". Sizes are bytes.
 */
public interface OffHeapDoctorMXBean {
    String OBJECT_NAME = "io.offheapdoctor:type=OffHeapDoctor";

    /** Resident set size of the process. */
    long getRss();

    /** Proportional set size: shared pages divided among their sharers. */
    long getPss();

    long getSwap();

    long getJavaHeapRss();

    long getMallocArenaRss();

    long getMallocMmapRss();

    long getThreadStackRss();

    long getJvmCodeRss();

    long getJvmMetaspaceRss();

    long getJvmGcRss();

    long getJvmOtherRss();

    long getMappedFileRss();

    long getOtherAnonRss();

    long getKernelRss();

    /** Bytes glibc holds free in its arenas: the upper bound of what a trim can return. */
    long getMallocRetained();

    int getArenaCount();

    /**
     * The glibc malloc settings in force and who set them ({@code arenaMax=2 (-agentpath)},
     * {@code mmapThreshold=131072 (MALLOC_MMAP_THRESHOLD_)}, ...); empty when none is set.
     */
    String getMallocSettings();

    /** What NMT counts as committed; -1 when NMT is off. */
    long getNmtCommitted();

    /** The share of RSS growth since the baseline that NMT explains (0..1), NaN when unknown. */
    double getNmtCoverage();

    /** Inflaters alive and not ended, those a finalizer would release included. */
    long getZipInflatersAlive();

    /** Inflaters unreachable but still holding native memory until their cleanup (or finalizer) runs. */
    long getZipInflatersPending();

    /** Deflaters alive and not ended, those a finalizer would release included. */
    long getZipDeflatersAlive();

    /** Deflaters unreachable but still holding native memory until their cleanup (or finalizer) runs. */
    long getZipDeflatersPending();

    long getZipEstimatedNativeBytes();

    /** The allocator behind malloc, such as "glibc 2.36" or "jemalloc". */
    String getAllocator();

    String getTrimPolicy();

    long getTrimCount();

    long getTrimReleasedBytes();

    /** Bytes the last trim released; -1 before the first. */
    long getTrimLastReleasedBytes();

    /** Total time spent trimming, in nanoseconds. */
    long getTrimTotalDurationNanos();

    /** 99th percentile of recent trims' durations, in nanoseconds; -1 before the first. */
    long getTrimP99DurationNanos();

    /** Longest recent trim, in nanoseconds; -1 before the first. */
    long getTrimMaxDurationNanos();

    int getFindingsCount();

    /** "id: title" of the most severe finding; "none" when there is none. */
    String getMostSevereFinding();

    /** Sequence number of the latest sample (the count taken since the agent started). */
    long getSampleCount();

    /** UTC time of the latest sample, ISO 8601. */
    String getLastSampleTime();

    /** The latest sample as a human-readable report (takes one if there is none yet). */
    String reportText();

    /** The latest sample's report line, JSON (takes one if there is none yet). */
    String reportJson();

    /**
     * The call sites of the latest sample as JSON text: {@code kind} is "zip", "direct",
     * "threads" or "all". An object with the sites part's "status" ("on", "off" or "unavailable"
     * with its "problem") and, when on, the list of that kind (its top sites, largest first,
     * then "other"); "all" is the whole part, as the report line holds it.
     */
    String topSites(String kind);

    /** Takes a sample now, in addition to the scheduled ones, and returns its JSON line. */
    String sampleNow();

    /** Runs malloc_trim now and says what it released. */
    String trimNow();

    /** Makes the current state the baseline that growth is measured from. */
    String setBaseline();

    /** Changes the trim policy: off, auto, or an interval such as 30s. */
    String setTrimPolicy(String policy);

    /**
     * Starts the native call sites (sampled malloc calls of the loaded libraries) at the
     * {@code nativeSitesRate} the agent started with; says in one line whether it did, and why not.
     */
    String startNativeSites();

    /** Stops the native call sites, restoring every interposed entry; says in one line whether it did. */
    String stopNativeSites();

    /** The native call sites now as text: status, sampling rate, live estimate, growth and the top sites. */
    String nativeSitesReport();

    /** Writes the timeline page (one self-contained HTML file) of this JVM's samples to {@code path}. */
    String writeTimeline(String path);
}
