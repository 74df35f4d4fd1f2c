package io.offheapdoctor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Agent options: {@code key=value,key=value} from the {@code -javaagent} argument and from the
 * environment variable {@value #ENV_VAR}; the command line wins. A bad key or value is reported in
 * one line naming the valid choices, and the default is kept: the application always starts.
 */
final class Options {
    static final String ENV_VAR = "OFFHEAP_DOCTOR_OPTS";
    static final String LIBRARY_PROPERTY = "offheap.doctor.library";

    static final long DEFAULT_INTERVAL_MS = 10_000;
    static final long MIN_INTERVAL_MS = 100;

    // The bounds and grammar of sizes, durations and percentages are the native core's
    // (native/src/units.rs, which names these constants): a value one side takes and the other
    // refuses would reach the core and cost the option its default there, not here.
    /** The largest size any option takes: 1 PiB ({@code MAX_SIZE_BYTES} in units.rs). */
    static final long MAX_SIZE_BYTES = 1L << 50;
    /** The longest duration any option takes: 365 days ({@code MAX_DURATION_MS} in units.rs). */
    static final long MAX_DURATION_MS = 365L * 24 * 3_600_000;
    /** mallopt takes an int ({@code i32::MAX} in tuning.rs). */
    static final long MALLOPT_MAX = Integer.MAX_VALUE;
    /** glibc's ceiling for M_MMAP_THRESHOLD on 64-bit ({@code MMAP_THRESHOLD_MAX} in tuning.rs). */
    static final long MMAP_THRESHOLD_MAX = 32L << 20;
    /** {@code maxBackoff} in trim_policy.rs. */
    static final int MAX_BACKOFF_MAX = 1024;
    /** The smallest report file before rotation ({@code MIN_REPORT_FILE_BYTES} in units.rs). */
    static final long MIN_REPORT_FILE_BYTES = 16L << 10;
    /** The most report files kept ({@code MAX_REPORT_FILES} in units.rs, which reads the set back). */
    static final int MAX_REPORT_FILES = 1000;
    /** The fewest bytes between two native call site samples ({@code MIN_NATIVE_SAMPLE_BYTES} in units.rs). */
    static final long MIN_NATIVE_SAMPLE_BYTES = 4L << 10;
    /** The most bytes between two native call site samples ({@code MAX_NATIVE_SAMPLE_BYTES} in units.rs). */
    static final long MAX_NATIVE_SAMPLE_BYTES = 1L << 30;
    static final long DEFAULT_NATIVE_SAMPLE_BYTES = 512L << 10;
    static final long DEFAULT_REPORT_MAX_BYTES = 64L << 20;
    static final int DEFAULT_REPORT_FILES = 4;
    private static final String SIZE_FORM = "a size of at most 1024t (bytes or <n>k, <n>m, <n>g, <n>t)";
    private static final String DURATION_FORM = "a duration of at most 8760h (<n>ms, <n>s, <n>m or <n>min, <n>h)";

    /** Every key the agent knows, with a one-line description used in messages and the README. */
    static final Map<String, String> KEYS;

    static {
        Map<String, String> k = new LinkedHashMap<>();
        k.put("interval", "time between samples: <n>ms, <n>s, <n>m or <n>h (default 10s, at least 100ms, at most 8760h)");
        k.put("report", "file that receives one JSON object per sample (JSON lines); default none");
        k.put("reportMaxSize", "size of one report file: the line that would take it past this size starts a new one,"
                + " the old one becomes <report>.1 (default 64m, at least 16k)");
        k.put("reportFiles", "report files kept, the current one included: <report>, <report>.1, ... (default 4, at most "
                + MAX_REPORT_FILES + ")");
        k.put("log", "quiet|info|debug (default info)");
        k.put("extractDir", "directory for the extracted native library (default <java.io.tmpdir>/offheap-doctor-<user>)");
        k.put("library", "path of a native library to load instead of the bundled one (also -D" + LIBRARY_PROPERTY + ")");
        k.put("trim", "off|auto|<interval>: when to give glibc's free memory back to the kernel (default off)");
        k.put("trimRetained", "auto: trim when glibc retains at least this many bytes, e.g. 64m (default 32m)");
        k.put("trimRetainedRss", "auto: ... and at least this share of RSS, e.g. 10% (default 5%)");
        k.put("trimMinInterval", "auto: at least this long between trims, e.g. 10s (default 2s)");
        k.put("trimMaxBackoff", "auto: the most the minimum interval is multiplied by after trims that release little or whose pages come back (default 16)");
        k.put("trimRegainWindow", "auto: a trim whose pages come back within this long backs off, e.g. 3s (default 3s)");
        k.put("trimQuietWait", "auto: the longest a due trim waits for the process to be quiet, e.g. 10s; 0 never waits (default 10s)");
        k.put("arenaMax", "glibc: cap the number of malloc arenas (mallopt M_ARENA_MAX); from -javaagent only arenas not yet made, fully from -agentpath");
        k.put("mmapThreshold", "glibc: serve allocations at least this big with mmap (M_MMAP_THRESHOLD), e.g. 128k");
        k.put("trimThreshold", "glibc: free top-of-heap memory above this to the kernel (M_TRIM_THRESHOLD), e.g. 16m");
        k.put("topPad", "glibc: extra bytes obtained per heap growth (M_TOP_PAD), e.g. 1m");
        k.put("zipInterval", "time between zip census scans, <n>ms, <n>s, <n>m; samples in between reuse the last scan (default 0: every sample while a scan is cheap, spaced by its measured cost)");
        k.put("zipCensus", "on|off: count Inflaters/Deflaters holding native zlib memory (default on)");
        k.put("sites", "on|off: record the code that creates Inflaters/Deflaters, direct buffers and threads"
                + " (rewrites those JDK classes at start; default off)");
        k.put("nativeSites", "on|off: sample the native code's malloc calls by bytes and name the call sites of what"
                + " stays allocated (interposes the allocation functions of the loaded libraries; default off;"
                + " also started and stopped on a running JVM with <pid> sites start|stop)");
        k.put("nativeSitesRate", "native call sites: mean bytes allocated between two samples, from 4k to 1g"
                + " (default 512k; lower is more precise and costs more)");
        k.put("mbean", "auto|on|off: register the MXBean in the platform MBeanServer once something creates that"
                + " server (auto, the default: JConsole, jcmd ManagementAgent.start, -Dcom.sun.management.jmxremote,"
                + " the attach commands, the application), create the server for it (on), or none (off)");
        k.put("procRoot", "directory read instead of /proc/self (for tests)");
        k.put("prometheus", "<port> or <host>:<port>: serve Prometheus metrics at http://<host>:<port>/metrics"
                + " (default host 127.0.0.1; default off: no port is opened)");
        k.put("threshold.<name>", "override one of the findings' thresholds, e.g. threshold.threadGrowthMin=50"
                + " (the names and defaults are in the README)");
        KEYS = Collections.unmodifiableMap(k);
    }

    /** Prefix of the per-threshold keys: {@code threshold.retentionMin=128m}. */
    static final String THRESHOLD_PREFIX = "threshold.";

    /** How a threshold's value is written: the unit it converts to for the native core. */
    enum Kind {
        SIZE("a size such as 128m (bytes or <n>k, <n>m, <n>g, <n>t; at most 1024t)"),
        SHARE("a percentage such as 10%"),
        COUNT("a whole number"),
        DURATION("a duration such as 30s, 10m or 2h (at most 8760h)"),
        SIZE_RATE("a size per hour such as 64m/h (at most 1024t/h)"),
        COUNT_RATE("a number per hour such as 20/h");

        final String form;

        Kind(String form) {
            this.form = form;
        }
    }

    /** The rules' thresholds by option name (the native core's names too), with their kind. */
    static final Map<String, Kind> THRESHOLDS;

    static {
        Map<String, Kind> t = new LinkedHashMap<>();
        t.put("retentionMin", Kind.SIZE);
        t.put("retentionMinRss", Kind.SHARE);
        t.put("retentionCritical", Kind.SIZE);
        t.put("retentionCriticalRss", Kind.SHARE);
        t.put("arenaSprawlMin", Kind.COUNT);
        t.put("arenaSprawlRetainedMin", Kind.SIZE);
        t.put("nativeGrowthMin", Kind.SIZE);
        t.put("nmtCoverageMin", Kind.SHARE);
        t.put("zipUnendedMin", Kind.COUNT);
        t.put("zipNativeMin", Kind.SIZE);
        t.put("zipNativeCritical", Kind.SIZE);
        t.put("zipPendingMin", Kind.COUNT);
        t.put("zipGrowthMin", Kind.COUNT_RATE);
        t.put("zipNativeRateMin", Kind.SIZE_RATE);
        t.put("directMin", Kind.SIZE);
        t.put("directMinRss", Kind.SHARE);
        t.put("directRateMin", Kind.SIZE_RATE);
        t.put("threadGrowthMin", Kind.COUNT);
        t.put("threadRateMin", Kind.COUNT_RATE);
        t.put("metaspaceGrowthMin", Kind.SIZE);
        t.put("metaspaceRateMin", Kind.SIZE_RATE);
        t.put("oomRiskWarning", Kind.DURATION);
        t.put("oomRiskCritical", Kind.DURATION);
        t.put("oomRiskUsage", Kind.SHARE);
        t.put("headroomMinFree", Kind.SHARE);
        t.put("heapNotProblemMinGrowth", Kind.SIZE);
        t.put("heapNotProblemMaxShare", Kind.SHARE);
        t.put("clearAfter", Kind.COUNT);
        t.put("rateWindow", Kind.DURATION);
        t.put("rateMinSpan", Kind.DURATION);
        THRESHOLDS = Collections.unmodifiableMap(t);
    }

    long intervalMs = DEFAULT_INTERVAL_MS;
    String report;
    long reportMaxBytes = DEFAULT_REPORT_MAX_BYTES;
    int reportFiles = DEFAULT_REPORT_FILES;
    Log.Level log = Log.Level.INFO;
    String extractDir;
    String library;
    String procRoot;
    boolean zipCensus = true;
    boolean sites = false;
    boolean nativeSites = false;
    long nativeSitesRate = DEFAULT_NATIVE_SAMPLE_BYTES;
    /** auto, on or off: see {@link #KEYS}. */
    String mbean = "auto";
    long zipIntervalMs = 0;
    String trim = "off";
    /** auto-trim settings, as the native policy's keys (trimRetained=64m, ...), in order given. */
    final Map<String, String> trimAuto = new LinkedHashMap<>();
    /** glibc malloc settings for mallopt (arenaMax=2, ...), in order given. */
    final Map<String, String> malloc = new LinkedHashMap<>();
    /** Where the Prometheus endpoint listens; null when it is off. */
    String prometheusHost;
    int prometheusPort = -1;

    /** Threshold overrides in the native core's units (bytes, ratios, per hour, milliseconds), in order given. */
    final Map<String, Number> thresholds = new LinkedHashMap<>();

    /** Problems found while parsing, each one line; the caller prints them. */
    final List<String> problems = new ArrayList<>();

    static Options parse(String agentArgs, String envValue) {
        Options o = new Options();
        Map<String, String> merged = new LinkedHashMap<>();
        o.split(envValue, ENV_VAR, merged);
        o.split(agentArgs, "-javaagent", merged);
        for (Map.Entry<String, String> e : merged.entrySet()) {
            if (e.getKey().startsWith(THRESHOLD_PREFIX)) {
                o.applyThreshold(e.getKey().substring(THRESHOLD_PREFIX.length()), e.getValue());
            } else {
                o.apply(e.getKey(), e.getValue());
            }
        }
        o.checkRateWindow();
        return o;
    }

    private void split(String text, String origin, Map<String, String> into) {
        if (text == null || text.trim().isEmpty()) {
            return;
        }
        for (String part : text.split(",")) {
            String p = part.trim();
            if (p.isEmpty()) {
                continue;
            }
            int eq = p.indexOf('=');
            if (eq <= 0) {
                problems.add("option '" + p + "' from " + origin + " is not key=value; valid keys: " + KEYS.keySet());
                continue;
            }
            into.put(p.substring(0, eq).trim(), p.substring(eq + 1).trim());
        }
    }

    private void apply(String key, String value) {
        switch (key) {
            case "interval":
                long ms = parseDuration(value);
                if (ms < 0) {
                    problems.add("interval='" + value + "' is not " + DURATION_FORM + "; keeping "
                            + formatDuration(intervalMs));
                } else if (ms < MIN_INTERVAL_MS) {
                    problems.add("interval='" + value + "' is below the minimum of 100ms; using 100ms");
                    intervalMs = MIN_INTERVAL_MS;
                } else {
                    intervalMs = ms;
                }
                break;
            case "report":
                report = value.isEmpty() ? null : value;
                break;
            case "reportMaxSize":
                long rs = parseReportMaxSize(value);
                if (rs < 0) {
                    problems.add("reportMaxSize='" + value + "' is not a size from 16k to 1024t (bytes or <n>k, <n>m,"
                            + " <n>g, <n>t); keeping 64m");
                } else {
                    reportMaxBytes = rs;
                }
                break;
            case "reportFiles":
                int rf = parseReportFiles(value);
                if (rf < 0) {
                    problems.add("reportFiles='" + value + "' is not a whole number from 1 to " + MAX_REPORT_FILES
                            + "; keeping " + DEFAULT_REPORT_FILES);
                } else {
                    reportFiles = rf;
                }
                break;
            case "log":
                try {
                    log = Log.Level.valueOf(value.toUpperCase(Locale.ROOT));
                } catch (IllegalArgumentException e) {
                    problems.add("log='" + value + "' is not valid; choose quiet, info or debug; keeping info");
                }
                break;
            case "extractDir":
                extractDir = value.isEmpty() ? null : value;
                break;
            case "library":
                library = value.isEmpty() ? null : value;
                break;
            case "zipInterval":
                long zms = parseDuration(value);
                if (zms < MIN_INTERVAL_MS) {
                    problems.add("zipInterval='" + value + "' is not " + DURATION_FORM + " and at least 100ms; keeping "
                            + formatDuration(zipIntervalMs));
                } else {
                    zipIntervalMs = zms;
                }
                break;
            case "zipCensus":
                Boolean on = parseSwitch(value);
                if (on == null) {
                    problems.add("zipCensus='" + value + "' is not valid; choose on or off; keeping on");
                } else {
                    zipCensus = on;
                }
                break;
            case "sites":
                Boolean sitesOn = parseSwitch(value);
                if (sitesOn == null) {
                    problems.add("sites='" + value + "' is not valid; choose on or off; keeping " + (sites ? "on" : "off"));
                } else {
                    sites = sitesOn;
                }
                break;
            case "nativeSites":
                Boolean nativeOn = parseSwitch(value);
                if (nativeOn == null) {
                    problems.add("nativeSites='" + value + "' is not valid; choose on or off; keeping "
                            + (nativeSites ? "on" : "off"));
                } else {
                    nativeSites = nativeOn;
                }
                break;
            case "nativeSitesRate":
                long rate = parseNativeSitesRate(value);
                if (rate < 0) {
                    problems.add("nativeSitesRate='" + value + "' is not a size from 4k to 1g (bytes or <n>k, <n>m,"
                            + " <n>g); keeping " + formatSize(nativeSitesRate));
                } else {
                    nativeSitesRate = rate;
                }
                break;
            case "mbean":
                String m = value.toLowerCase(Locale.ROOT);
                if (m.equals("auto") || m.equals("on") || m.equals("off")) {
                    mbean = m;
                } else {
                    problems.add("mbean='" + value + "' is not valid; choose auto, on or off; keeping " + mbean);
                }
                break;
            case "trim":
                String t = value.toLowerCase(Locale.ROOT);
                if (t.equals("off") || t.equals("auto") || parseDuration(t) >= MIN_INTERVAL_MS) {
                    trim = t;
                } else {
                    problems.add("trim='" + value + "' is not valid; choose off, auto or an interval such as 30s"
                            + " (at least 100ms, at most 8760h); keeping " + trim);
                }
                break;
            case "trimRetained":
                if (parseSize(value) != null) {
                    trimAuto.put(key, value);
                } else {
                    problems.add(key + "='" + value + "' is not " + SIZE_FORM + "; keeping the default");
                }
                break;
            case "mmapThreshold":
            case "trimThreshold":
            case "topPad":
                long limit = key.equals("mmapThreshold") ? MMAP_THRESHOLD_MAX : MALLOPT_MAX;
                Long size = parseSize(value);
                if (size != null && size <= limit) {
                    malloc.put(key, value);
                } else {
                    problems.add(key + "='" + value + "' is not a size of at most "
                            + (limit == MMAP_THRESHOLD_MAX ? "32m" : limit + " bytes (2g - 1)")
                            + " (bytes or <n>k, <n>m, <n>g); ignored");
                }
                break;
            case "trimRetainedRss":
                if (parsePercent(value) > 0) {
                    trimAuto.put(key, value);
                } else {
                    problems.add(key + "='" + value + "' is not a percentage above 0 and at most 100, such as 10%;"
                            + " keeping the default");
                }
                break;
            case "trimMinInterval":
                if (parseDuration(value) >= MIN_INTERVAL_MS) {
                    trimAuto.put(key, value);
                } else {
                    problems.add(key + "='" + value + "' is not " + DURATION_FORM + " and at least 100ms;"
                            + " keeping the default");
                }
                break;
            case "trimRegainWindow":
            case "trimQuietWait":
                if (parseDuration(value) >= 0) {
                    trimAuto.put(key, value);
                } else {
                    problems.add(key + "='" + value + "' is not a duration such as 3s; ignored");
                }
                break;
            case "trimMaxBackoff":
            case "arenaMax":
                long max = key.equals("arenaMax") ? MALLOPT_MAX : MAX_BACKOFF_MAX;
                long count = parseCount(value);
                if (count >= 1 && count <= max) {
                    (key.equals("arenaMax") ? malloc : trimAuto).put(key, value);
                } else {
                    problems.add(key + "='" + value + "' is not a whole number from 1 to " + max
                            + (key.equals("arenaMax") ? "; ignored" : "; keeping the default"));
                }
                break;
            case "procRoot":
                procRoot = value.isEmpty() ? null : value;
                break;
            case "prometheus":
                parsePrometheus(value);
                break;
            default:
                problems.add("unknown option '" + key + "'; valid keys: " + KEYS.keySet());
        }
    }

    /** One {@code threshold.<name>=<value>}: a known name and a value of its kind, else one line and the default. */
    private void applyThreshold(String name, String value) {
        Kind kind = THRESHOLDS.get(name);
        if (kind == null) {
            problems.add("unknown threshold '" + THRESHOLD_PREFIX + name + "'; valid names: " + THRESHOLDS.keySet());
            return;
        }
        Number n = parseThreshold(kind, value.trim().toLowerCase(Locale.ROOT));
        if (n == null || (name.equals("clearAfter") && n.longValue() < 1)) {
            problems.add(THRESHOLD_PREFIX + name + "='" + value + "' is not " + kind.form
                    + (name.equals("clearAfter") ? " of at least 1" : "") + "; keeping the default");
            return;
        }
        thresholds.put(name, n);
    }

    /** The value in the core's unit, or null when it is not of the kind. */
    static Number parseThreshold(Kind kind, String v) {
        switch (kind) {
            case SIZE:
                return parseSize(v);
            case SIZE_RATE:
                Long perHour = parseSize(v.endsWith("/h") ? v.substring(0, v.length() - 2) : v);
                return perHour == null ? null : (Number) perHour.doubleValue();
            case SHARE:
                double pct = parsePercent(v);
                return pct >= 0 ? (Number) (pct / 100) : null;
            case COUNT:
                return v.matches("\\d{1,9}") ? (Number) Long.parseLong(v) : null;
            case COUNT_RATE:
                String c = v.endsWith("/h") ? v.substring(0, v.length() - 2) : v;
                return c.matches("\\d{1,9}(\\.\\d{1,6})?") ? (Number) Double.parseDouble(c) : null;
            case DURATION:
                long ms = parseDuration(v);
                return ms > 0 ? (Number) ms : null;
            default:
                return null;
        }
    }

    /**
     * Bytes of {@code 4096}, {@code 64k}, {@code 128M}, {@code 1g}, {@code 1t}, with an optional
     * trailing {@code b} ({@code 16MB}); null if malformed or above {@link #MAX_SIZE_BYTES}.
     * The grammar of {@code parse_bytes} in units.rs.
     */
    static Long parseSize(String value) {
        String v = value.trim().toLowerCase(Locale.ROOT);
        if (v.endsWith("b")) {
            v = v.substring(0, v.length() - 1);
        }
        if (v.isEmpty()) {
            return null;
        }
        char last = v.charAt(v.length() - 1);
        int shift = last == 'k' ? 10 : last == 'm' ? 20 : last == 'g' ? 30 : last == 't' ? 40 : 0;
        long n = parseCount(shift == 0 ? v : v.substring(0, v.length() - 1));
        return n < 0 || n > (MAX_SIZE_BYTES >> shift) ? null : n << shift;
    }

    /** Bytes of a {@code reportMaxSize} value; -1 unless a size of at least {@link #MIN_REPORT_FILE_BYTES}. */
    static long parseReportMaxSize(String value) {
        Long n = parseSize(value);
        return n == null || n < MIN_REPORT_FILE_BYTES ? -1 : n;
    }

    /**
     * Bytes of a {@code nativeSitesRate} value; -1 unless a size from {@link #MIN_NATIVE_SAMPLE_BYTES}
     * to {@link #MAX_NATIVE_SAMPLE_BYTES}.
     */
    static long parseNativeSitesRate(String value) {
        Long n = parseSize(value);
        return n == null || n < MIN_NATIVE_SAMPLE_BYTES || n > MAX_NATIVE_SAMPLE_BYTES ? -1 : n;
    }

    /** A {@code reportFiles} value; -1 unless a whole number from 1 to {@link #MAX_REPORT_FILES}. */
    static int parseReportFiles(String value) {
        long n = parseCount(value.trim());
        return n < 1 || n > MAX_REPORT_FILES ? -1 : (int) n;
    }

    /**
     * A run of ASCII digits as a number; -1 when it is anything else or has more than 18 digits
     * (no sign, no spaces: {@code Long.parseLong} alone would take "+5" and non-ASCII digits).
     */
    static long parseCount(String v) {
        if (v.isEmpty() || v.length() > 18) {
            return -1;
        }
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            if (c < '0' || c > '9') {
                return -1;
            }
        }
        return Long.parseLong(v);
    }

    /**
     * A percentage from 0 to 100 of {@code 10%}, {@code 2.5%} or {@code 10} (up to three digits,
     * up to six decimals, the sign optional); -1 if malformed or above 100. The grammar of
     * {@code parse_percent} in units.rs, which refuses 0 where a share must be above it.
     */
    static double parsePercent(String value) {
        String v = value.trim();
        if (v.endsWith("%")) {
            v = v.substring(0, v.length() - 1).trim();
        }
        if (!v.matches("[0-9]{1,3}(\\.[0-9]{1,6})?")) {
            return -1;
        }
        double pct = Double.parseDouble(v);
        return pct <= 100 ? pct : -1;
    }

    /** A rate window shorter than the span a rate needs gives no rate at all: refuse both overrides. */
    private void checkRateWindow() {
        long window = thresholds.containsKey("rateWindow") ? thresholds.get("rateWindow").longValue() : 30 * 60_000L;
        long span = thresholds.containsKey("rateMinSpan") ? thresholds.get("rateMinSpan").longValue() : 60_000L;
        if (window < span) {
            problems.add(THRESHOLD_PREFIX + "rateWindow (" + formatDuration(window) + ") is shorter than "
                    + THRESHOLD_PREFIX + "rateMinSpan (" + formatDuration(span) + "); keeping the defaults of both");
            thresholds.remove("rateWindow");
            thresholds.remove("rateMinSpan");
        }
    }

    /** The threshold overrides as the native core's JSON object ({@code {"retentionMin":134217728}}). */
    String thresholdsJson() {
        StringBuilder b = new StringBuilder("{");
        for (Map.Entry<String, Number> e : thresholds.entrySet()) {
            b.append(b.length() == 1 ? "" : ",").append(Json.quote(e.getKey())).append(':').append(e.getValue());
        }
        return b.append('}').toString();
    }

    /** {@code <port>}, {@code <host>:<port>} or {@code [<ipv6>]:<port>}; off when empty or "off". */
    private void parsePrometheus(String value) {
        prometheusHost = null;
        prometheusPort = -1;
        if (value.isEmpty() || value.equalsIgnoreCase("off")) {
            return;
        }
        String host = "127.0.0.1";
        String port = value;
        int colon = value.lastIndexOf(':');
        if (colon >= 0) {
            host = value.substring(0, colon);
            port = value.substring(colon + 1);
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
        }
        int p = -1;
        if (port.matches("\\d{1,5}")) {
            p = Integer.parseInt(port);
        }
        if (host.isEmpty() || p < 0 || p > 65535) {
            problems.add("prometheus='" + value + "' is not <port> or <host>:<port> (port 0-65535); the endpoint stays off");
            return;
        }
        prometheusHost = host;
        prometheusPort = p;
    }

    /** on/true/yes or off/false/no; null for anything else. */
    static Boolean parseSwitch(String v) {
        String t = v.trim().toLowerCase(Locale.ROOT);
        if (t.equals("on") || t.equals("true") || t.equals("yes")) {
            return Boolean.TRUE;
        }
        if (t.equals("off") || t.equals("false") || t.equals("no")) {
            return Boolean.FALSE;
        }
        return null;
    }

    /**
     * Milliseconds of a duration like {@code 500ms}, {@code 10s}, {@code 1m} or {@code 1min},
     * {@code 2h}; -1 if malformed or above {@link #MAX_DURATION_MS}. The grammar of
     * {@code parse_duration_ms} in units.rs: a unit is required.
     */
    static long parseDuration(String s) {
        if (s == null) {
            return -1;
        }
        String t = s.trim().toLowerCase(Locale.ROOT);
        int split = 0;
        while (split < t.length() && t.charAt(split) >= '0' && t.charAt(split) <= '9') {
            split++;
        }
        long unit;
        switch (t.substring(split)) {
            case "ms":
                unit = 1;
                break;
            case "s":
                unit = 1000;
                break;
            case "m":
            case "min":
                unit = 60_000;
                break;
            case "h":
                unit = 3_600_000;
                break;
            default:
                return -1;
        }
        long n = parseCount(t.substring(0, split));
        return n < 0 || n > MAX_DURATION_MS / unit ? -1 : n * unit;
    }

    /** {@code 524288} as {@code 512k}: a size as an option takes it. */
    static String formatSize(long bytes) {
        String[] units = {"t", "g", "m", "k"};
        for (int i = 0; i < units.length; i++) {
            long unit = 1L << (10 * (units.length - i));
            if (bytes > 0 && bytes % unit == 0) {
                return bytes / unit + units[i];
            }
        }
        return Long.toString(bytes);
    }

    static String formatDuration(long ms) {
        if (ms % 3_600_000 == 0) {
            return ms / 3_600_000 + "h";
        }
        if (ms % 60_000 == 0) {
            return ms / 60_000 + "m";
        }
        if (ms % 1000 == 0) {
            return ms / 1000 + "s";
        }
        return ms + "ms";
    }

    /** The trim policy in the native core's syntax: off, an interval, or auto with its keys. */
    String trimSpec() {
        if (!trim.equals("auto")) {
            if (!trimAuto.isEmpty()) {
                problems.add("options " + trimAuto.keySet() + " apply to trim=auto only; ignored with trim=" + trim);
            }
            return trim;
        }
        StringBuilder sb = new StringBuilder("auto");
        for (Map.Entry<String, String> e : trimAuto.entrySet()) {
            sb.append(',').append(e.getKey()).append('=').append(e.getValue());
        }
        return sb.toString();
    }

    /** glibc settings in the native core's syntax ({@code arenaMax=2,mmapThreshold=128k}), or null. */
    String mallocSpec() {
        if (malloc.isEmpty()) {
            return null;
        }
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, String> e : malloc.entrySet()) {
            sb.append(sb.length() == 0 ? "" : ",").append(e.getKey()).append('=').append(e.getValue());
        }
        return sb.toString();
    }

    /** The library override: the system property wins over the option. */
    String libraryOverride() {
        String p = System.getProperty(LIBRARY_PROPERTY);
        return p != null && !p.isEmpty() ? p : library;
    }
}
