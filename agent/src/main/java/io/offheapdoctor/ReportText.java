package io.offheapdoctor;

import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The latest sample as a report for people: sizes in binary units, one topic per line, then the
 * findings with their evidence and remedy. Parts the sample lacks are left out, or say why
 * (NMT off), rather than shown as -1.
 */
final class ReportText {
    private static final String[] UNITS = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

    private final SampleView v;
    private final StringBuilder out = new StringBuilder(2048);

    private ReportText(SampleView v) {
        this.v = v;
    }

    static String render(SampleView v) {
        return new ReportText(v).build();
    }

    /** {@code 1536} as {@code 1.5 KiB}; below 1 KiB in bytes; "n/a" for a negative (unknown) size. */
    static String bytes(long n) {
        if (n < 0) {
            return "n/a";
        }
        if (n < 1024) {
            return n + " B";
        }
        double d = n;
        int u = 0;
        while (d >= 1024 && u < UNITS.length - 1) {
            d /= 1024;
            u++;
        }
        return String.format(Locale.ROOT, "%.1f %s", d, UNITS[u]);
    }

    /** A signed change: {@code +1.5 KiB}, {@code -200 B}. */
    static String delta(long n) {
        if (n == Long.MIN_VALUE) {
            return "-" + bytes(Long.MAX_VALUE);
        }
        return (n < 0 ? "-" : "+") + bytes(Math.abs(n));
    }

    private static String percent(double part, double whole) {
        if (whole <= 0 || Double.isNaN(part) || Double.isNaN(whole)) {
            return "";
        }
        return String.format(Locale.ROOT, "%5.1f%%", 100.0 * part / whole);
    }

    private void line(String label, String text) {
        if (text.isEmpty()) {
            out.append(label).append(System.lineSeparator());
        } else {
            out.append(String.format(Locale.ROOT, "%-16s%s%n", label, text));
        }
    }

    private String build() {
        if (v.line == null) {
            return "offheap-doctor: no sample yet" + System.lineSeparator();
        }
        if (v.parseError != null) {
            return "offheap-doctor: the latest sample cannot be read (" + v.parseError + ")" + System.lineSeparator();
        }
        header();
        memory();
        breakdown();
        growth();
        allocator();
        nmt();
        zip();
        jvm();
        sites();
        out.append(nativeSites(v.at("native_sites")));
        trim();
        cgroup();
        findings();
        problems();
        return out.toString();
    }

    private void header() {
        String java = v.text("jvm", "java_version");
        String vm = v.text("jvm", "vm_name");
        out.append("offheap-doctor report: pid ").append(v.number("pid"))
                .append(", sample ").append(v.number("seq"))
                .append(" at ").append(v.text("time"));
        if (java != null) {
            out.append(" (Java ").append(java).append(vm != null ? ", " + vm : "").append(')');
        }
        out.append(System.lineSeparator()).append(System.lineSeparator());
    }

    private void memory() {
        long rss = v.number("totals", "rss");
        if (rss < 0) {
            line("RSS", "unknown (the native core is not available)");
            return;
        }
        line("RSS", bytes(rss) + "   PSS " + bytes(v.number("totals", "pss")) + ", swap "
                + bytes(v.number("totals", "swap")));
        line("", "anon " + bytes(v.number("totals", "anon")) + ", file " + bytes(v.number("totals", "file"))
                + ", shmem " + bytes(v.number("totals", "shmem")));
    }

    private void breakdown() {
        if (!v.hasBreakdown()) {
            return;
        }
        double rss = v.number("totals", "rss");
        line("Breakdown", "");
        for (String cls : SampleView.BREAKDOWN_CLASSES) {
            long b = v.breakdownRss(cls);
            if (b >= 0) {
                out.append(String.format(Locale.ROOT, "  %-16s%12s %s%n", cls, bytes(b), percent(b, rss)));
            }
        }
    }

    /**
     * Each breakdown class's change since the baseline and its recent rate (the core's Theil-Sen
     * slope), RSS first; a rate the history cannot give yet (too few samples) shows as "-".
     */
    private void growth() {
        if (!(v.at("growth", "series") instanceof Map)) {
            return;
        }
        long base = v.number("growth", "baseline_ms");
        long latest = v.number("growth", "latest_ms");
        String since = base > 0 ? " (baseline " + java.time.Instant.ofEpochMilli(base)
                + (latest >= base ? ", " + span(latest - base) + " ago)" : ")") : "";
        line("Growth" + since, "");
        out.append(String.format(Locale.ROOT, "  %-16s%12s %14s %16s%n", "part", "now", "since baseline", "rate"));
        growthRow("rss", "rss");
        for (String cls : SampleView.BREAKDOWN_CLASSES) {
            growthRow(cls, "part." + cls);
        }
    }

    private void growthRow(String label, String series) {
        Object s = v.at("growth", "series", series);
        if (!(s instanceof Map)) {
            return;
        }
        Object now = JsonReader.at(s, "latest");
        Object d = JsonReader.at(s, "delta");
        Object rate = JsonReader.at(s, "rate_per_hour");
        out.append(String.format(Locale.ROOT, "  %-16s%12s %14s %16s%n", label,
                now instanceof Number ? bytes(((Number) now).longValue()) : "-",
                d instanceof Number ? delta(((Number) d).longValue()) : "-",
                rate instanceof Number ? delta(Math.round(((Number) rate).doubleValue())) + "/h" : "-"));
    }

    /** {@code 45 s}, {@code 12 min}, {@code 3 h 05 min}, {@code 2 d 4 h}. */
    static String span(long ms) {
        long s = ms / 1000;
        if (s < 60) {
            return s + " s";
        }
        if (s < 3600) {
            return s / 60 + " min";
        }
        if (s < 86_400) {
            return String.format(Locale.ROOT, "%d h %02d min", s / 3600, (s % 3600) / 60);
        }
        return s / 86_400 + " d " + (s % 86_400) / 3600 + " h";
    }

    private void allocator() {
        String a = v.allocator();
        if (a != null) {
            line("Allocator", a);
        }
        if (!(v.at("malloc") instanceof Map)) {
            return;
        }
        StringBuilder b = new StringBuilder();
        long arenas = v.number("malloc", "arena_count");
        if (arenas >= 0) {
            b.append(arenas).append(arenas == 1 ? " arena; " : " arenas; ");
        }
        b.append("in use ").append(bytes(v.number("malloc", "in_use")));
        long resident = v.number("malloc", "retained_resident");
        if (resident >= 0) {
            b.append(", free and resident ").append(bytes(resident));
            long trimmable = v.number("malloc", "trimmable_resident");
            if (trimmable >= 0) {
                b.append(" (a trim would release about ").append(bytes(trimmable)).append(')');
            }
            b.append(", free at most ").append(bytes(v.number("malloc", "retained")));
        } else {
            b.append(", retained free ").append(bytes(v.number("malloc", "retained")));
            long trimmable = v.number("malloc", "trimmable_max");
            if (trimmable >= 0) {
                b.append(" (trimmable at most ").append(bytes(trimmable)).append(')');
            }
        }
        long mmapped = v.number("malloc", "mmapped");
        if (mmapped >= 0) {
            b.append(", mmapped ").append(bytes(mmapped));
        }
        line("malloc", b.toString());
        String settings = mallocSettings(v);
        if (settings != null) {
            line("malloc settings", settings);
        }
        String note = v.text("tuning", "note");
        if (note != null) {
            line("", note);
        }
    }

    /**
     * The malloc settings in force and who set them, e.g. {@code arenaMax=2 (-agentpath),
     * mmapThreshold=131072 (MALLOC_MMAP_THRESHOLD_)}; null when none is set.
     */
    static String mallocSettings(SampleView v) {
        Object inForce = v.at("tuning", "in_force");
        if (!(inForce instanceof java.util.List) || ((java.util.List<?>) inForce).isEmpty()) {
            return null;
        }
        StringBuilder b = new StringBuilder();
        for (Object o : (java.util.List<?>) inForce) {
            Object source = JsonReader.at(o, "source");
            Object variable = JsonReader.at(o, "variable");
            b.append(b.length() == 0 ? "" : ", ").append(JsonReader.at(o, "setting")).append('=')
                    .append(JsonReader.at(o, "value")).append(" (")
                    .append("environment".equals(source) ? variable : "agentpath".equals(source) ? "-agentpath" : source)
                    .append(')');
        }
        return b.toString();
    }

    private void nmt() {
        if (!(v.at("nmt") instanceof Map)) {
            String mode = v.text("jvm", "nmt_mode");
            if ("off".equals(mode)) {
                line("NMT", "off (start the JVM with -XX:NativeMemoryTracking=summary to see the JVM's own use)");
            }
            return;
        }
        StringBuilder b = new StringBuilder();
        String mode = v.text("nmt", "mode");
        b.append(mode != null ? mode : "on").append(": committed ").append(bytes(v.number("nmt", "committed")));
        if (v.at("nmt", "growth") instanceof Map) {
            Object rssDelta = v.at("nmt", "growth", "rss_delta");
            Object nmtDelta = v.at("nmt", "growth", "committed_delta");
            if (rssDelta instanceof Number && nmtDelta instanceof Number) {
                b.append("; since the baseline RSS ").append(delta(((Number) rssDelta).longValue()))
                        .append(", NMT ").append(delta(((Number) nmtDelta).longValue()));
            }
            double coverage = v.real("nmt", "growth", "coverage");
            if (!Double.isNaN(coverage)) {
                b.append(String.format(Locale.ROOT, ", NMT explains %.0f%% of the growth", coverage * 100));
            }
        }
        line("NMT", b.toString());
    }

    private void zip() {
        if (!(v.at("zip") instanceof Map)) {
            return;
        }
        if (!(v.at("zip", "inflaters") instanceof Map)) {
            String reason = v.text("zip", "reason");
            line("Zip streams", "not counted" + (reason != null ? " (" + reason + ")" : ""));
            return;
        }
        line("Zip streams", "inflaters " + v.number("zip", "inflaters", "alive") + " alive, "
                + v.number("zip", "inflaters", "pending_cleanup") + " awaiting cleanup; deflaters "
                + v.number("zip", "deflaters", "alive") + " alive, " + v.number("zip", "deflaters", "pending_cleanup")
                + " awaiting cleanup; about " + bytes(v.number("zip", "estimated_native_bytes")) + " native");
    }

    private void jvm() {
        if (v.at("jvm", "heap") instanceof Map) {
            line("Java heap", "used " + bytes(v.number("jvm", "heap", "used")) + ", committed "
                    + bytes(v.number("jvm", "heap", "committed")) + ", max " + bytes(v.number("jvm", "heap", "max")));
        }
        if (v.at("jvm", "non_heap") instanceof Map) {
            line("Non-heap", "used " + bytes(v.number("jvm", "non_heap", "used")) + ", committed "
                    + bytes(v.number("jvm", "non_heap", "committed")));
        }
        Object pools = v.at("jvm", "buffer_pools");
        if (pools instanceof List) {
            StringBuilder b = new StringBuilder();
            for (Object p : (List<?>) pools) {
                long count = SampleView.asLong(JsonReader.at(p, "count"));
                if (count <= 0) {
                    continue;
                }
                if (b.length() > 0) {
                    b.append("; ");
                }
                b.append(JsonReader.at(p, "name")).append(' ').append(count).append(count == 1 ? " buffer, " : " buffers, ")
                        .append(bytes(SampleView.asLong(JsonReader.at(p, "capacity"))));
            }
            if (b.length() > 0) {
                line("Buffers", b.toString());
            }
        }
        long os = v.number("threads");
        long java = v.number("jvm", "threads", "live");
        if (os >= 0 || java >= 0) {
            line("Threads", (os >= 0 ? os + " in the process" : "") + (os >= 0 && java >= 0 ? ", " : "")
                    + (java >= 0 ? java + " Java threads" : ""));
        }
    }

    /** Sites shown per kind in the text report; the JSON keeps more. */
    static final int TEXT_SITES = 5;

    /**
     * Which code made the zip streams, direct buffers and threads alive now: up to
     * {@link #TEXT_SITES} sites per kind, the rest summed. Site, via and thread names are the
     * application's to choose, so each is shown on one line with its controls escaped.
     */
    private void sites() {
        Object sites = v.at("sites");
        if (!(sites instanceof Map)) {
            return;
        }
        String status = v.text("sites", "status");
        if ("off".equals(status)) {
            line("Call sites", "off");
            return;
        }
        if (!"on".equals(status)) {
            String problem = v.text("sites", "problem");
            line("Call sites", "unavailable" + (problem != null ? ": " + oneLine(problem) : ""));
            return;
        }
        line("Call sites", "");
        siteKind("zip streams", "", v.at("sites", "zip"));
        long every = v.number("sites", "direct_sample_bytes");
        siteKind("direct buffers", every > 0 ? " (sampled by bytes, one per " + bytes(every) + " on average)" : "",
                v.at("sites", "direct"));
        long untracked = v.number("sites", "threads_untracked");
        siteKind("threads", untracked > 0 ? " (and " + untracked + " started before the agent or by the JVM)" : "",
                v.at("sites", "threads"));
    }

    private void siteKind(String label, String note, Object list) {
        if (!(list instanceof List)) {
            return;
        }
        String nl = System.lineSeparator();
        List<?> rows = (List<?>) list;
        if (rows.isEmpty()) {
            out.append("  ").append(label).append(": none").append(note).append(nl);
            return;
        }
        out.append("  ").append(label).append(note).append(nl);
        int shown = 0;
        long hiddenSites = 0;
        // The sums of the sites not shown: alive (or live bytes) and pending.
        long hiddenSize = 0;
        long hiddenPending = 0;
        String size = label.startsWith("direct") ? "live_bytes" : "alive";
        for (Object row : rows) {
            if (!(row instanceof Map)) {
                continue;
            }
            boolean other = "other".equals(JsonReader.at(row, "site")) && JsonReader.at(row, "sites") != null;
            if (other || shown >= TEXT_SITES) {
                long n = other ? SampleView.asLong(JsonReader.at(row, "sites")) : 1;
                hiddenSites += Math.max(n, 0);
                hiddenSize += Math.max(SampleView.asLong(JsonReader.at(row, size)), 0);
                hiddenPending += Math.max(SampleView.asLong(JsonReader.at(row, "pending")), 0);
                continue;
            }
            shown++;
            out.append("    ").append(siteFigures(label, row)).append("  ").append(siteName(row)).append(nl);
        }
        if (hiddenSites > 0) {
            out.append("    and ").append(hiddenSites).append(hiddenSites == 1 ? " other site: " : " other sites: ")
                    .append(label.startsWith("zip") ? hiddenSize + " unended, " + hiddenPending + " pending"
                            : label.startsWith("direct") ? bytes(hiddenSize) + " live" : hiddenSize + " alive")
                    .append(nl);
        }
    }

    /** The figures of one site, before its name: what a reader compares down the column. */
    private static String siteFigures(String label, Object row) {
        long alive = SampleView.asLong(JsonReader.at(row, "alive"));
        if (label.startsWith("zip")) {
            Object kind = JsonReader.at(row, "kind");
            return String.format(Locale.ROOT, "%-8s %8d unended, %6d pending", kind instanceof String ? oneLine((String) kind) : "?",
                    Math.max(alive, 0), Math.max(SampleView.asLong(JsonReader.at(row, "pending")), 0));
        }
        if (label.startsWith("direct")) {
            Object growth = JsonReader.at(row, "growth_bytes");
            return String.format(Locale.ROOT, "%10s live, %11s", bytes(SampleView.asLong(JsonReader.at(row, "live_bytes"))),
                    growth instanceof Number ? delta(((Number) growth).longValue()) : "-");
        }
        Object growth = JsonReader.at(row, "growth");
        String g = growth instanceof Number ? String.format(Locale.ROOT, "%+d", ((Number) growth).longValue()) : "-";
        Object names = JsonReader.at(row, "names");
        Object top = names instanceof List && !((List<?>) names).isEmpty() ? ((List<?>) names).get(0) : null;
        Object pattern = JsonReader.at(top, "pattern");
        return String.format(Locale.ROOT, "%6d alive, %6s", Math.max(alive, 0), g)
                + (pattern instanceof String ? ", " + quoted((String) pattern) : "");
    }

    /** {@code com.acme.Ingest.read(Ingest.java:88) (via java.util.zip.GZIPInputStream.<init>)}. */
    private static String siteName(Object row) {
        Object site = JsonReader.at(row, "site");
        Object via = JsonReader.at(row, "via");
        StringBuilder b = new StringBuilder(site instanceof String ? oneLine((String) site) : "?");
        if (via instanceof String && !((String) via).isEmpty()) {
            b.append(" (via ").append(oneLine((String) via)).append(')');
        }
        if (Boolean.TRUE.equals(JsonReader.at(row, "jdk_only"))) {
            b.append(" [JDK only]");
        }
        return b.toString();
    }

    /** {@code 524288} as {@code 512 KiB}: a size that is a whole number of its unit, as options write it. */
    static String wholeBytes(long n) {
        for (int u = UNITS.length - 1; u > 0; u--) {
            long unit = 1L << (10 * u);
            if (n >= unit && n % unit == 0) {
                return n / unit + " " + UNITS[u];
            }
        }
        return bytes(n);
    }

    /**
     * The {@code native_sites} part as text: its status, and when on the sampling rate, the live
     * estimate and its growth, then up to {@link #TEXT_SITES} sites (live, growth, label, thread,
     * the innermost Java frame), the rest summed. Empty when the sample has no such part (an
     * agent or core without it). Labels, frames and thread names come from the application's
     * libraries and threads, so each is kept to one line.
     */
    static String nativeSites(Object part) {
        if (!(part instanceof Map)) {
            return "";
        }
        String nl = System.lineSeparator();
        StringBuilder b = new StringBuilder("Native call sites ");
        Object status = JsonReader.at(part, "status");
        if ("off".equals(status)) {
            return b.append("off").append(nl).toString();
        }
        if (!"on".equals(status)) {
            Object problem = JsonReader.at(part, "problem");
            return b.append("unavailable").append(problem instanceof String ? ": " + oneLine((String) problem) : "")
                    .append(nl).toString();
        }
        long every = SampleView.asLong(JsonReader.at(part, "sample_bytes"));
        long live = SampleView.asLong(JsonReader.at(part, "live_bytes"));
        Object growth = JsonReader.at(part, "growth_bytes");
        b.append("on: ").append(every > 0 ? "one sample per " + wholeBytes(every) + " allocated on average" : "sampled by bytes")
                .append("; about ").append(bytes(live)).append(" live");
        if (growth instanceof Number) {
            b.append(", ").append(delta(((Number) growth).longValue())).append(" since the baseline");
        }
        b.append(nl);
        long sampled = SampleView.asLong(JsonReader.at(part, "sampled"));
        long slots = SampleView.asLong(JsonReader.at(part, "slots"));
        long libraries = SampleView.asLong(JsonReader.at(part, "libraries"));
        long dropped = SampleView.asLong(JsonReader.at(part, "dropped"));
        if (sampled >= 0 && slots >= 0 && libraries >= 0) {
            b.append("  ").append(sampled).append(sampled == 1 ? " sample" : " samples").append(" through ").append(slots)
                    .append(slots == 1 ? " entry" : " entries").append(" of ").append(libraries)
                    .append(libraries == 1 ? " library" : " libraries")
                    .append(dropped > 0 ? "; " + dropped + " dropped (the sampler was full or busy)" : "").append(nl);
        }
        if (Boolean.FALSE.equals(JsonReader.at(part, "java_frames"))) {
            Object why = JsonReader.at(part, "java_problem");
            b.append("  no Java frames").append(why instanceof String ? ": " + oneLine((String) why) : "").append(nl);
        }
        Object sites = JsonReader.at(part, "sites");
        if (!(sites instanceof List) || ((List<?>) sites).isEmpty()) {
            return b.append("  no sampled allocation is live").append(nl).toString();
        }
        int shown = 0;
        long hiddenSites = 0;
        long hiddenLive = 0;
        long hiddenGrowth = 0;
        for (Object row : (List<?>) sites) {
            if (!(row instanceof Map)) {
                continue;
            }
            boolean other = "other".equals(JsonReader.at(row, "site")) && JsonReader.at(row, "sites") != null;
            if (other || shown >= TEXT_SITES) {
                hiddenSites += other ? Math.max(SampleView.asLong(JsonReader.at(row, "sites")), 0) : 1;
                hiddenLive += Math.max(SampleView.asLong(JsonReader.at(row, "live_bytes")), 0);
                Object g = JsonReader.at(row, "growth_bytes");
                hiddenGrowth += g instanceof Number ? ((Number) g).longValue() : 0;
                continue;
            }
            shown++;
            Object label = JsonReader.at(row, "label");
            Object g = JsonReader.at(row, "growth_bytes");
            Object thread = JsonReader.at(row, "thread");
            b.append(String.format(Locale.ROOT, "    %10s live, %11s  ", bytes(SampleView.asLong(JsonReader.at(row, "live_bytes"))),
                    g instanceof Number ? delta(((Number) g).longValue()) : "-"))
                    .append(label instanceof String ? oneLine((String) label) : "?")
                    .append(thread instanceof String ? ", thread " + quoted((String) thread) : "").append(nl);
            Object java = JsonReader.at(row, "java");
            if (java instanceof List) {
                // The JNI method itself, then the Java code that called it.
                int lines = 0;
                for (Object f : (List<?>) java) {
                    if (!(f instanceof String) || lines == 3) {
                        break;
                    }
                    b.append("        at ").append(oneLine((String) f)).append(nl);
                    lines++;
                    if (!((String) f).endsWith("(Native Method)")) {
                        break;
                    }
                }
            }
        }
        if (hiddenSites > 0) {
            b.append("    and ").append(hiddenSites).append(hiddenSites == 1 ? " other site: " : " other sites: ")
                    .append(bytes(hiddenLive)).append(" live, ").append(delta(hiddenGrowth)).append(nl);
        }
        return b.toString();
    }

    /** A thread name pattern in quotes, so that spaces and an empty name stay visible. */
    private static String quoted(String s) {
        return '"' + oneLine(s) + '"';
    }

    /**
     * {@code s} kept to one line of plain text: line breaks, tabs, C0 and C1 controls, DEL and
     * the Unicode controls that reorder text are written as a Java escape (backslash, u, four
     * hex digits). A name the
     * application chose (a class, a thread) could otherwise start a line of its own that reads
     * like a finding, or steer a terminal.
     */
    static String oneLine(String s) {
        StringBuilder b = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean bad = c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x202a && c <= 0x202e)
                    || (c >= 0x2066 && c <= 0x2069) || c == 0x2028 || c == 0x2029;
            if (bad) {
                if (b == null) {
                    b = new StringBuilder(s.length() + 16).append(s, 0, i);
                }
                b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
            } else if (b != null) {
                b.append(c);
            }
        }
        return b == null ? s : b.toString();
    }

    private void trim() {
        if (!(v.at("trim") instanceof Map)) {
            return;
        }
        StringBuilder b = new StringBuilder("policy ").append(v.text("trim", "policy", "spec"));
        long count = v.number("trim", "count");
        if (count >= 0) {
            b.append("; ").append(count).append(count == 1 ? " trim released " : " trims released ")
                    .append(bytes(v.number("trim", "released_total")));
        }
        if (v.at("trim", "last") instanceof Map) {
            long ns = v.number("trim", "last", "duration_ns");
            b.append("; the last released ").append(bytes(v.number("trim", "last", "released")));
            if (ns >= 0) {
                b.append(String.format(Locale.ROOT, " in %.1f ms", ns / 1e6));
            }
        }
        line("Trim", b.toString());
    }

    private void cgroup() {
        if (!(v.at("cgroup") instanceof Map)) {
            return;
        }
        long limit = v.number("cgroup", "limit");
        long oom = v.number("cgroup", "oom_kills");
        line("cgroup", "limit " + (limit < 0 ? "none" : bytes(limit)) + ", usage " + bytes(v.number("cgroup", "usage"))
                + (oom >= 0 ? ", OOM kills " + oom : ""));
    }

    private void findings() {
        List<Map<?, ?>> all = v.findings();
        if (all == null) {
            return;
        }
        out.append(System.lineSeparator());
        if (all.isEmpty()) {
            out.append("Findings: none").append(System.lineSeparator());
            return;
        }
        out.append("Findings (").append(all.size()).append(')').append(System.lineSeparator());
        for (String severity : SampleView.SEVERITIES) {
            for (Map<?, ?> f : all) {
                if (severity.equals(f.get("severity"))) {
                    finding(f);
                }
            }
        }
        for (Map<?, ?> f : all) {
            if (SampleView.rank(f.get("severity")) == SampleView.SEVERITIES.length) {
                finding(f);
            }
        }
    }

    private void finding(Map<?, ?> f) {
        String nl = System.lineSeparator();
        Object severity = f.get("severity");
        out.append("  [").append(severity == null ? "?" : severity.toString().toUpperCase(Locale.ROOT)).append("] ")
                .append(f.get("id")).append(": ").append(f.get("title")).append(nl);
        Object evidence = f.get("evidence");
        if (evidence instanceof List) {
            for (Object e : (List<?>) evidence) {
                // The core's evidence is {key, value, raw}: show "key: value", the exact number aside.
                if (e instanceof Map && ((Map<?, ?>) e).containsKey("key") && ((Map<?, ?>) e).containsKey("value")) {
                    Map<?, ?> m = (Map<?, ?>) e;
                    out.append("      - ").append(m.get("key")).append(": ").append(m.get("value")).append(nl);
                } else {
                    out.append("      - ").append(plain(e)).append(nl);
                }
            }
        } else if (evidence != null) {
            out.append("      - ").append(plain(evidence)).append(nl);
        }
        Object remedy = f.get("remedy");
        if (remedy != null) {
            out.append("      remedy: ").append(plain(remedy)).append(nl);
        }
    }

    /** Evidence as the native core wrote it: text as is, an object as {@code key value} pairs. */
    private static String plain(Object o) {
        if (o instanceof Map) {
            StringBuilder b = new StringBuilder();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                if (b.length() > 0) {
                    b.append(", ");
                }
                b.append(e.getKey()).append(' ').append(plain(e.getValue()));
            }
            return b.toString();
        }
        return String.valueOf(o);
    }

    private void problems() {
        Object problems = v.at("problems");
        if (!(problems instanceof List) || ((List<?>) problems).isEmpty()) {
            return;
        }
        out.append(System.lineSeparator()).append("Problems").append(System.lineSeparator());
        for (Object p : (List<?>) problems) {
            Object source = JsonReader.at(p, "source");
            Object message = JsonReader.at(p, "message");
            out.append("  ").append(source != null ? source + ": " : "").append(message != null ? message : plain(p))
                    .append(System.lineSeparator());
        }
    }
}
