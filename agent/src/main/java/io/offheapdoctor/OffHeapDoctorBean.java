package io.offheapdoctor;

import java.lang.management.ManagementFactory;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.management.InstanceAlreadyExistsException;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/**
 * The {@link OffHeapDoctorMXBean} of the running {@link Doctor}. Attributes read the latest
 * report line, parsed once per sample however many attributes a console polls.
 */
final class OffHeapDoctorBean implements OffHeapDoctorMXBean {
    private static boolean registered;

    private final Doctor doctor;
    private volatile SampleView view = SampleView.NONE;

    OffHeapDoctorBean(Doctor doctor) {
        this.doctor = doctor;
    }

    /**
     * Registers the bean of {@code doctor} on the platform MBeanServer, once per JVM. Never throws:
     * without the bean the agent still samples, so a failure is one warning.
     */
    static synchronized void register(Doctor doctor) {
        if (registered) {
            return;
        }
        try {
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            server.registerMBean(new OffHeapDoctorBean(doctor), new ObjectName(OBJECT_NAME));
            registered = true;
        } catch (InstanceAlreadyExistsException e) {
            // Another class loader's copy of the agent owns the name; it answers for this JVM.
            Log.warn("MBean " + OBJECT_NAME + " is already registered by another copy of the agent; leaving it");
            registered = true;
        } catch (Throwable t) {
            Log.warn("cannot register MBean " + OBJECT_NAME + " (" + t + "); JMX and attach commands unavailable");
        }
    }

    /** The latest sample, re-parsed only when the agent has taken a new one. */
    private SampleView view() {
        String line = doctor.lastSample();
        SampleView v = view;
        if (line != v.line) { // identity: a new sample is a new String
            v = SampleView.of(line);
            view = v;
        }
        return v;
    }

    /** The latest line, or a fresh sample when the agent has none yet (just attached). */
    private SampleView viewOrSample() {
        if (doctor.lastSample() == null) {
            doctor.takeSample();
        }
        SampleView v = view();
        if (v.line == null) {
            throw new IllegalStateException("no sample available: sampling failed, see the JVM's stderr");
        }
        return v;
    }

    private static String orUnknown(String s) {
        return s == null ? "unknown" : s;
    }

    @Override
    public long getRss() {
        return view().number("totals", "rss");
    }

    @Override
    public long getPss() {
        return view().number("totals", "pss");
    }

    @Override
    public long getSwap() {
        return view().number("totals", "swap");
    }

    @Override
    public long getJavaHeapRss() {
        return view().breakdownRss("java_heap");
    }

    @Override
    public long getMallocArenaRss() {
        return view().breakdownRss("malloc_arena");
    }

    @Override
    public long getMallocMmapRss() {
        return view().breakdownRss("malloc_mmap");
    }

    @Override
    public long getThreadStackRss() {
        return view().breakdownRss("thread_stack");
    }

    @Override
    public long getJvmCodeRss() {
        return view().breakdownRss("jvm_code");
    }

    @Override
    public long getJvmMetaspaceRss() {
        return view().breakdownRss("jvm_metaspace");
    }

    @Override
    public long getJvmGcRss() {
        return view().breakdownRss("jvm_gc");
    }

    @Override
    public long getJvmOtherRss() {
        return view().breakdownRss("jvm_other");
    }

    @Override
    public long getMappedFileRss() {
        return view().breakdownRss("mapped_file");
    }

    @Override
    public long getOtherAnonRss() {
        return view().breakdownRss("other_anon");
    }

    @Override
    public long getKernelRss() {
        return view().breakdownRss("kernel");
    }

    @Override
    public long getMallocRetained() {
        return view().number("malloc", "retained");
    }

    @Override
    public int getArenaCount() {
        long n = view().number("malloc", "arena_count");
        return n > Integer.MAX_VALUE ? Integer.MAX_VALUE : (int) n;
    }

    @Override
    public String getMallocSettings() {
        String s = ReportText.mallocSettings(view());
        return s == null ? "" : s;
    }

    @Override
    public long getNmtCommitted() {
        return view().number("nmt", "committed");
    }

    @Override
    public double getNmtCoverage() {
        return view().real("nmt", "growth", "coverage");
    }

    @Override
    public long getZipInflatersAlive() {
        return zipCount(view(), "inflaters", "alive", "finalizable_alive");
    }

    @Override
    public long getZipInflatersPending() {
        return zipCount(view(), "inflaters", "pending_cleanup", "finalizable_pending");
    }

    @Override
    public long getZipDeflatersAlive() {
        return zipCount(view(), "deflaters", "alive", "finalizable_alive");
    }

    @Override
    public long getZipDeflatersPending() {
        return zipCount(view(), "deflaters", "pending_cleanup", "finalizable_pending");
    }

    /** The Cleaner's count plus the finalizer's, when the census could read it; -1 without a census. */
    private static long zipCount(SampleView v, String kind, String cleaner, String finalizer) {
        long n = v.number("zip", kind, cleaner);
        long f = v.number("zip", kind, finalizer);
        return n < 0 ? n : n + Math.max(f, 0);
    }

    @Override
    public long getZipEstimatedNativeBytes() {
        return view().number("zip", "estimated_native_bytes");
    }

    @Override
    public String getAllocator() {
        return orUnknown(view().allocator());
    }

    @Override
    public String getTrimPolicy() {
        return orUnknown(view().text("trim", "policy", "spec"));
    }

    @Override
    public long getTrimCount() {
        return view().number("trim", "count");
    }

    @Override
    public long getTrimReleasedBytes() {
        return view().number("trim", "released_total");
    }

    @Override
    public long getTrimLastReleasedBytes() {
        return view().number("trim", "last", "released");
    }

    @Override
    public long getTrimTotalDurationNanos() {
        return view().number("trim", "duration_total_ns");
    }

    @Override
    public long getTrimP99DurationNanos() {
        return view().number("trim", "duration", "p99_ns");
    }

    @Override
    public long getTrimMaxDurationNanos() {
        return view().number("trim", "duration", "max_ns");
    }

    @Override
    public int getFindingsCount() {
        List<Map<?, ?>> f = view().findings();
        return f == null ? -1 : f.size();
    }

    @Override
    public String getMostSevereFinding() {
        SampleView v = view();
        if (v.findings() == null) {
            return "unknown";
        }
        Map<?, ?> f = v.mostSevere();
        return f == null ? "none" : f.get("id") + ": " + f.get("title");
    }

    @Override
    public long getSampleCount() {
        return view().number("seq");
    }

    @Override
    public String getLastSampleTime() {
        return orUnknown(view().text("time"));
    }

    @Override
    public String reportText() {
        return ReportText.render(viewOrSample());
    }

    @Override
    public String reportJson() {
        return viewOrSample().line;
    }

    /** The kinds {@link #topSites} answers, each with the keys of the sites part it returns. */
    private static final String[][] SITE_KINDS = {
        {"zip", "zip"},
        {"direct", "direct", "direct_sample_bytes"},
        {"threads", "threads", "threads_untracked"},
    };

    @Override
    public String topSites(String kind) {
        check(kind);
        return topSites(viewOrSample(), kind.trim());
    }

    private static void check(String kind) {
        String k = kind == null ? "" : kind.trim();
        if (!k.equals("all") && kindKeys(k) == null) {
            throw new IllegalArgumentException("unknown kind of call site '" + ReportText.oneLine(k)
                    + "': zip, direct, threads or all");
        }
    }

    private static String[] kindKeys(String kind) {
        for (String[] s : SITE_KINDS) {
            if (s[0].equals(kind)) {
                return s;
            }
        }
        return null;
    }

    /** The answer of {@link #topSites(String)} from {@code v}. */
    static String topSites(SampleView v, String kind) {
        check(kind);
        String[] keys = kindKeys(kind);
        Object sites = v.at("sites");
        if (!(sites instanceof Map)) {
            Map<String, Object> none = new LinkedHashMap<>();
            none.put("status", "unavailable");
            none.put("problem", "the latest sample has no call sites (the native core is not loaded)");
            return Json.write(none);
        }
        Map<?, ?> all = (Map<?, ?>) sites;
        if (keys == null || !"on".equals(all.get("status"))) {
            return Json.write(all);
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("status", "on");
        for (int i = 1; i < keys.length; i++) {
            if (all.containsKey(keys[i])) {
                out.put(keys[i], all.get(keys[i]));
            }
        }
        return Json.write(out);
    }

    @Override
    public String sampleNow() {
        String line = doctor.takeSample();
        if (line == null) {
            throw new IllegalStateException("the sample failed; the JVM's stderr says why");
        }
        return line;
    }

    @Override
    public String trimNow() {
        return doctor.actions().trimNow();
    }

    @Override
    public String setBaseline() {
        return doctor.actions().setBaseline();
    }

    @Override
    public String startNativeSites() {
        return doctor.startNativeSites();
    }

    @Override
    public String stopNativeSites() {
        return doctor.stopNativeSites();
    }

    @Override
    public String nativeSitesReport() {
        return doctor.nativeSitesReport();
    }

    @Override
    public String writeTimeline(String path) {
        if (path == null || path.trim().isEmpty()) {
            throw new IllegalArgumentException("path must name a file to write");
        }
        if (!doctor.nativeAvailable()) {
            throw new UnsupportedOperationException("the timeline needs the native core, which is not loaded");
        }
        try {
            return "wrote " + SafeFiles.replace(java.nio.file.Paths.get(path.trim()), new SafeFiles.Content() {
                @Override
                public void writeTo(java.nio.file.Path fresh) {
                    NativeCore.liveTimeline(fresh.toString());
                }
            });
        } catch (java.nio.file.InvalidPathException e) {
            throw new IllegalArgumentException("cannot write the timeline to " + path.trim() + ": " + e.getMessage());
        } catch (java.io.IOException e) {
            // Refused or failed: said in the JDK's own exception types, which every JMX client
            // can read.
            throw new IllegalStateException("cannot write the timeline to " + path.trim() + ": " + e.getMessage());
        }
    }

    @Override
    public String setTrimPolicy(String policy) {
        if (policy == null || policy.trim().isEmpty()) {
            throw new IllegalArgumentException("a trim policy is required: off, auto, or an interval such as 30s");
        }
        return doctor.actions().setTrimPolicy(policy.trim());
    }
}
