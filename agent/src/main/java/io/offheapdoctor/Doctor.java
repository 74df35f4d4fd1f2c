package io.offheapdoctor;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.instrument.Instrumentation;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.text.SimpleDateFormat;
import java.util.Date;
import java.util.Locale;
import java.util.Map;
import java.util.TimeZone;
import javax.management.MBeanServer;
import javax.management.MBeanServerFactory;
import javax.management.ObjectName;

/**
 * The running agent: one per JVM. Owns the sampler thread and the report stream. Whatever fails
 * inside is logged in one line and the agent carries on with less (or stops sampling); the
 * application is never disturbed.
 */
public final class Doctor {
    static final String THREAD_NAME = "offheap-doctor-sampler";

    private static Doctor instance;

    private final Options options;
    private final boolean attached;
    private final Instrumentation inst;
    private volatile String nativeFailure = "not loaded yet";
    private final Object lock = new Object();
    /** Held while a sample is taken: the sampler thread and JMX callers never sample at once. */
    private final Object sampleLock = new Object();
    private final Thread sampler;
    private OutputStream report;
    /** Bytes in the current report file, so rotation needs no stat per sample. */
    private long reportBytes;
    private volatile boolean stopping;
    /** How often {@code mbean=auto} looks for the platform MBeanServer. */
    static final long MBEAN_POLL_MS = 200;
    private volatile String lastSample;
    private long javaOnlySeq;
    private JvmFacts facts;
    private String trimSpec = "off";
    private String lastError;
    /** The sources of the last sample's problems, so each change is said once, not every sample. */
    private String lastProblemSources = "";

    private Doctor(Options options, boolean attached, Instrumentation inst) {
        this.options = options;
        this.attached = attached;
        this.inst = inst;
        // Inner classes, not lambdas, here and below: the agent's start-up then does not bootstrap
        // the JDK's lambda machinery in a JVM that has not used it yet (garbage, metaspace).
        this.sampler = new Thread(new Runnable() {
            @Override
            public void run() {
                runSampler();
            }
        }, THREAD_NAME);
        this.sampler.setDaemon(true);
    }

    /**
     * Starts the agent once per JVM; a second start (a second attach) only says it is running.
     * Only option parsing happens on the caller's thread: loading the native core and sampling
     * run on the sampler thread, so {@code premain} adds almost nothing to the JVM's start-up.
     */
    static synchronized void start(String agentArgs, Instrumentation inst, boolean attached) {
        if (instance != null) {
            Log.info("already running in this JVM; options of this load ignored: " + agentArgs);
            return;
        }
        Options options = Options.parse(agentArgs, System.getenv(Options.ENV_VAR));
        Log.setLevel(options.log);
        String trimSpec = options.trimSpec();
        for (String p : options.problems) {
            Log.warn(p);
        }
        NativeLoader.configure(options);
        applyMallocSettings(options, attached);
        Doctor d = new Doctor(options, attached, inst);
        d.trimSpec = trimSpec;
        instance = d;
        DiagnosticCommands.setInstrumentation(inst);
        d.sampler.start();
        try {
            Runtime.getRuntime().addShutdownHook(new Thread("offheap-doctor-shutdown") {
                @Override
                public void run() {
                    d.stop();
                }
            });
        } catch (IllegalStateException e) {
            // The JVM is already shutting down: nothing to sample.
            d.stop();
        } catch (SecurityException e) {
            // A SecurityManager that denies shutdownHooks: the sampler is a daemon and every
            // report line is flushed as written, so the JVM's exit loses nothing.
            Log.debug("no shutdown hook (" + e.getMessage() + "); sampling goes on");
        }
    }

    /**
     * Applies the malloc settings from premain or agentmain. By then the JVM has made its arenas,
     * so an arena cap limits only new ones (the native core's line says so and points to
     * -agentpath, which applies them before the JVM's threads exist). This is the one case where
     * the native core loads on the application's start-up path, and only when the operator asked
     * for a malloc setting.
     */
    private static void applyMallocSettings(Options options, boolean attached) {
        String spec = options.mallocSpec();
        if (spec == null) {
            return;
        }
        String failure = NativeLoader.load(options);
        if (failure != null) {
            Log.warn("malloc settings " + spec + " not applied: " + failure);
            return;
        }
        try {
            NativeCore.tune(spec, attached ? "agentmain" : "premain");
        } catch (RuntimeException e) {
            Log.warn("malloc settings " + spec + " not applied: " + e.getMessage());
        }
        logNotices();
    }

    /** Logs what the native core wants the operator to hear. */
    static void logNotices() {
        if (!NativeLoader.isLoaded()) {
            return;
        }
        try {
            String notices = NativeCore.takeNotices();
            if (!notices.isEmpty()) {
                for (String line : notices.split("\n")) {
                    Log.info(line);
                }
            }
        } catch (RuntimeException e) {
            Log.debug("cannot take notices: " + e);
        }
    }

    /** Loads the native core and opens the report; runs first on the sampler thread. */
    private void setUp() {
        String failure = NativeLoader.load(options);
        if (failure == null) {
            try {
                NativeCore.init(new Json().put("proc_root", options.procRoot).put("trim", trimSpec)
                        .putRaw("thresholds", options.thresholdsJson()).end());
            } catch (RuntimeException e) {
                failure = "native core refused its configuration: " + e.getMessage();
            }
        }
        if (failure != null) {
            Log.warn(failure + "; continuing without the native core (JVM facts only)");
        } else if (options.sites) {
            // Here, on the agent's thread before its first sample: the sites of the objects made
            // from now on are known to every sample, and premain has long returned.
            SiteHooks.install(inst);
        }
        nativeFailure = failure;
        if (failure == null && options.nativeSites) {
            // As the sites above: before the first sample, so it carries the sampler's state.
            Log.info(startNativeSites());
        }
        openReport();
        Log.info((attached ? "attached" : "started") + ": sampling every " + Options.formatDuration(options.intervalMs)
                + (report != null ? ", report " + options.report : "")
                + (failure == null ? "" : ", Java-only mode"));
    }

    /** The running agent, or null when it was not started or failed to start. */
    public static synchronized Doctor get() {
        return instance;
    }

    /** The last report line (JSON), or null before the first sample. */
    public String lastSample() {
        return lastSample;
    }

    /** What the MBean's operations ask of the agent beyond sampling. */
    interface Actions {
        /** Runs malloc_trim now; says what it released. */
        String trimNow();

        /** Makes the current state the baseline growth is measured from; says so. */
        String setBaseline();

        /** Switches the trim policy ({@code off}, {@code auto} or an interval); says the new one. */
        String setTrimPolicy(String policy);
    }

    private static final Actions NOT_YET = new Actions() {
        @Override
        public String trimNow() {
            throw new UnsupportedOperationException("trimNow is not available yet in this version of offheap-doctor");
        }

        @Override
        public String setBaseline() {
            throw new UnsupportedOperationException("setBaseline is not available yet in this version of offheap-doctor");
        }

        @Override
        public String setTrimPolicy(String policy) {
            throw new UnsupportedOperationException("setTrimPolicy is not available yet in this version of offheap-doctor");
        }
    };

    Actions actions() {
        return nativeFailure == null ? nativeActions : NOT_YET;
    }

    /** The operator's actions, carried out by the native core. */
    private final Actions nativeActions = new Actions() {
        @Override
        public String trimNow() {
            String json = NativeCore.trim(TRIM_WAIT_MS);
            Map<String, Object> r = JsonReader.parseObject(json);
            if (!"done".equals(r.get("status"))) {
                return "trim still running after " + TRIM_WAIT_MS + " ms; it will be in the next sample's trim events";
            }
            long released = num(r.get("released"));
            return String.format(Locale.ROOT, "released %s in %.1f ms (RSS %s -> %s) %s", ReportText.bytes(released),
                    num(r.get("duration_ns")) / 1e6, ReportText.bytes(num(r.get("rss_before"))),
                    ReportText.bytes(num(r.get("rss_after"))), json);
        }

        @Override
        public String setBaseline() {
            NativeCore.setBaseline();
            return "baseline set: growth is measured from the next sample";
        }

        @Override
        public String setTrimPolicy(String policy) {
            return "trim policy set: " + NativeCore.setTrimPolicy(policy);
        }
    };

    private static final long TRIM_WAIT_MS = 30_000;

    private static long num(Object o) {
        return o instanceof Number ? ((Number) o).longValue() : -1;
    }

    /** Held while the native call sites start or stop: an MBean call never meets the agent's start halfway. */
    private final Object nativeSitesLock = new Object();

    /**
     * Starts the native call sites at the configured rate; says the outcome in one line
     * ("native call sites on: ..." or "native call sites not started: why").
     */
    String startNativeSites() {
        synchronized (nativeSitesLock) {
            String why = nativeFailure != null ? "the native core is not loaded (" + nativeFailure + ")"
                    : NativeCore.nativeSitesStart(options.nativeSitesRate);
            return why == null ? "native call sites on: one sample per " + ReportText.wholeBytes(options.nativeSitesRate)
                    : NOT_STARTED + why;
        }
    }

    /** Stops the native call sites; says the outcome in one line ("native call sites off" or why not). */
    String stopNativeSites() {
        synchronized (nativeSitesLock) {
            String why = nativeFailure != null ? "the native core is not loaded (" + nativeFailure + ")"
                    : NativeCore.nativeSitesStop();
            return why == null ? "native call sites off: every interposed entry restored" : NOT_STOPPED + why;
        }
    }

    /** How a start or stop that did not happen begins: the attach command turns it into exit code 1. */
    static final String NOT_STARTED = "native call sites not started: ";
    static final String NOT_STOPPED = "native call sites not stopped: ";

    /** The native call sites now, as text (the report's part, from a fresh look rather than the last sample). */
    String nativeSitesReport() {
        String json = nativeFailure != null
                ? new Json().put("status", "unavailable").put("problem", "the native core is not loaded (" + nativeFailure + ")").end()
                : NativeCore.nativeSitesJson();
        Object part;
        try {
            part = JsonReader.parse(json);
        } catch (IllegalArgumentException e) {
            return "Native call sites unavailable: the native core's answer cannot be read (" + ReportText.oneLine(
                    String.valueOf(e.getMessage())) + ")" + System.lineSeparator();
        }
        return ReportText.nativeSites(part);
    }

    /** Whether the native core is loaded and answering. */
    public boolean nativeAvailable() {
        return nativeFailure == null;
    }

    private void openReport() {
        if (options.report == null) {
            return;
        }
        try {
            openReportFile();
        } catch (IOException | SecurityException | UnsupportedOperationException | java.nio.file.InvalidPathException e) {
            Log.warn("cannot open report file " + options.report + " (" + e.getMessage() + "); sampling without a report file");
        }
    }

    private synchronized void openReportFile() throws IOException {
        java.nio.file.Path p = java.nio.file.Paths.get(options.report);
        report = SafeFiles.openForAppend(p);
        try {
            reportBytes = java.nio.file.Files.readAttributes(p, java.nio.file.attribute.BasicFileAttributes.class,
                    java.nio.file.LinkOption.NOFOLLOW_LINKS).size();
        } catch (IOException e) {
            reportBytes = 0;
        }
    }

    private void runSampler() {
        try {
            setUp();
        } catch (Throwable t) {
            Log.warn("disabled itself after an internal error: " + t);
            return;
        }
        boolean first = true;
        while (!stopping) {
            takeSample();
            if (first) {
                first = false;
                publish();
            }
            synchronized (lock) {
                long deadline = System.nanoTime() + options.intervalMs * 1_000_000L;
                long left;
                while (!stopping && (left = deadline - System.nanoTime()) > 0) {
                    try {
                        lock.wait(Math.max(1, left / 1_000_000L));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    }
                }
            }
        }
    }

    /**
     * Starts the Prometheus endpoint (if asked) and registers the MBean on a thread of their own,
     * after the first sample: registering takes a few hundred milliseconds that neither the first
     * sample nor the sampling cadence should wait for. With {@code mbean=auto} the thread then
     * waits, looking five times a second, until something creates the platform MBeanServer.
     */
    private void publish() {
        Thread t = new Thread(new Runnable() {
            @Override
            public void run() {
                runPublisher();
            }
        }, "offheap-doctor-publish");
        t.setDaemon(true);
        t.start();
    }

    private void runPublisher() {
        if (options.prometheusHost != null) {
            PrometheusEndpoint.start(this, options);
        }
        if (options.mbean.equals("on")) {
            OffHeapDoctorBean.register(this);
            return;
        }
        while (options.mbean.equals("auto") && !stopping) {
            if (platformServerExists()) {
                OffHeapDoctorBean.register(this);
                return;
            }
            synchronized (lock) {
                try {
                    lock.wait(MBEAN_POLL_MS);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }

    /**
     * Whether the JVM's platform MBeanServer exists, found without creating it: it is made through
     * {@code MBeanServerFactory.createMBeanServer()}, which lists it, and it holds the platform
     * MXBeans ({@code java.lang:type=Runtime}) once {@code getPlatformMBeanServer()} has filled it.
     * Creating it costs 10 MiB of resident memory on JDK 17 and 22 MiB on JDK 25, which the
     * agent does not spend for a bean nobody may read. (Here, not in OffHeapDoctorBean: the bean's
     * classes load only once it is registered.)
     */
    static boolean platformServerExists() {
        try {
            ObjectName runtime = new ObjectName(ManagementFactory.RUNTIME_MXBEAN_NAME);
            for (MBeanServer server : MBeanServerFactory.findMBeanServer(null)) {
                if (server.isRegistered(runtime)) {
                    return true;
                }
            }
            return false;
        } catch (SecurityException e) {
            // Not allowed to look: register as the agent did before (creating the server).
            return true;
        } catch (Exception e) {
            return false;
        }
    }

    /** Takes one sample now and writes it to the report; returns the line (null on failure). */
    String takeSample() {
        synchronized (sampleLock) {
            return takeSampleLocked();
        }
    }

    private String takeSampleLocked() {
        String line;
        try {
            if (facts == null) {
                facts = new JvmFacts(options.zipCensus ? ZipCensus.create(inst) : null, options.zipIntervalMs);
            }
            String jvm = facts.collect();
            line = nativeFailure == null ? NativeCore.sample(jvm) : javaOnlySample(jvm);
        } catch (Throwable t) {
            String msg = "sample failed: " + t;
            if (!msg.equals(lastError)) {
                Log.warn(msg);
                lastError = msg;
            }
            return null;
        }
        logProblems(line);
        logNotices();
        Log.debug("sample " + line);
        writeLine(line);
        // Published last: whoever sees this sample (the MBean, a waiting caller) finds it in the report too.
        lastSample = line;
        return line;
    }

    /**
     * Says in one line which files the native core could not read (a missing or garbled smaps,
     * status, cgroup file...), when that set changes: the report carries the details per sample,
     * the operator's stderr only the news. The native core's absence is said at start already.
     */
    private void logProblems(String line) {
        if (nativeFailure != null) {
            return;
        }
        try {
            // The common case costs a search, not a parse of the whole line.
            Object problems = line.contains("\"problems\":[]") ? null : JsonReader.at(JsonReader.parse(line), "problems");
            StringBuilder sources = new StringBuilder();
            StringBuilder detail = new StringBuilder();
            if (problems instanceof java.util.List) {
                for (Object p : (java.util.List<?>) problems) {
                    Object source = JsonReader.at(p, "source");
                    sources.append(sources.length() == 0 ? "" : ",").append(source);
                    detail.append(detail.length() == 0 ? "" : "; ").append(source).append(": ")
                            .append(JsonReader.at(p, "message"));
                }
            }
            String now = sources.toString();
            if (!now.equals(lastProblemSources)) {
                if (!now.isEmpty()) {
                    Log.warn("sample incomplete, the report carries what could be read (" + detail + ")");
                } else {
                    Log.info("samples complete again");
                }
                lastProblemSources = now;
            }
        } catch (RuntimeException e) {
            Log.debug("cannot read the sample's problems: " + e);
        }
    }

    private synchronized void writeLine(String line) {
        if (report == null) {
            return;
        }
        byte[] bytes = (line + "\n").getBytes(StandardCharsets.UTF_8);
        // Rotated between samples, before the line that would take the file past its size: a
        // sample is never split, and a file holds whole lines only.
        if (reportBytes > 0 && reportBytes + bytes.length > options.reportMaxBytes) {
            closeReport();
            try {
                SafeFiles.rotate(java.nio.file.Paths.get(options.report), options.reportFiles);
                openReportFile();
            } catch (IOException | RuntimeException e) {
                Log.warn("cannot rotate report file " + options.report + " (" + e.getMessage() + "); report stopped");
                closeReport();
                return;
            }
        }
        try {
            report.write(bytes);
            report.flush();
            reportBytes += bytes.length;
        } catch (IOException e) {
            Log.warn("cannot write report file " + options.report + " (" + e.getMessage() + "); report stopped");
            closeReport();
        }
    }

    private synchronized void closeReport() {
        if (report != null) {
            try {
                report.close();
            } catch (IOException ignored) {
                // Nothing left to tell: the stream is gone either way.
            }
            report = null;
        }
    }

    private String javaOnlySample(String facts) {
        long now = System.currentTimeMillis();
        SimpleDateFormat f = new SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'");
        f.setTimeZone(TimeZone.getTimeZone("UTC"));
        String pid = ManagementFactory.getRuntimeMXBean().getName().split("@")[0];
        return new Json()
                .put("schema", 1)
                .put("kind", "sample")
                .put("seq", ++javaOnlySeq)
                .put("time", f.format(new Date(now)))
                .put("epoch_ms", now)
                .putRaw("pid", pid.matches("\\d+") ? pid : "null")
                .putRaw("totals", null)
                .putRaw("totals_source", null)
                .putRaw("threads", null)
                .putRaw("jvm", facts)
                .putRaw("problems", "[" + new Json().put("source", "native").put("message", nativeFailure).end() + "]")
                .end();
    }

    /**
     * Stops sampling; called from the shutdown hook. It does not wait for a sample in flight (the
     * JVM's exit must not wait on the agent); closing the report waits only for a line being
     * written, so the file never ends in half a line.
     */
    void stop() {
        stopping = true;
        synchronized (lock) {
            lock.notifyAll();
        }
        closeReport();
    }
}
