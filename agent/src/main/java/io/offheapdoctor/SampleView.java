package io.offheapdoctor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * One report line, parsed once and read by the MBean, the text report and the Prometheus
 * endpoint. Every part of the line is optional here (Java-only samples have no totals, NMT may be
 * off, newer parts may be absent), so readers answer -1, NaN or null for what the line does not
 * hold instead of failing.
 */
final class SampleView {
    /** The breakdown's region classes, in the order reports list them. */
    static final String[] BREAKDOWN_CLASSES = {
        "java_heap", "malloc_arena", "malloc_mmap", "thread_stack", "jvm_code", "jvm_metaspace",
        "jvm_gc", "jvm_other", "mapped_file", "other_anon", "kernel",
    };

    /** Severities from the most to the least severe. */
    static final String[] SEVERITIES = {"critical", "warning", "info"};

    static final SampleView NONE = new SampleView(null, Collections.<String, Object>emptyMap(), null);

    /** The line as the agent wrote it; null when there is no sample yet. */
    final String line;
    final Map<String, Object> root;
    /** Why the line could not be read, or null. */
    final String parseError;

    private SampleView(String line, Map<String, Object> root, String parseError) {
        this.line = line;
        this.root = root;
        this.parseError = parseError;
    }

    static SampleView of(String line) {
        if (line == null) {
            return NONE;
        }
        try {
            return new SampleView(line, JsonReader.parseObject(line), null);
        } catch (IllegalArgumentException e) {
            return new SampleView(line, Collections.<String, Object>emptyMap(), e.getMessage());
        }
    }

    boolean present() {
        return line != null && parseError == null;
    }

    Object at(String... path) {
        return JsonReader.at(root, path);
    }

    /** A whole number at {@code path}; -1 when absent, null or not a number. */
    long number(String... path) {
        return asLong(at(path));
    }

    static long asLong(Object v) {
        if (v instanceof Long) {
            return (Long) v;
        }
        if (v instanceof Double) {
            double d = (Double) v;
            return Double.isNaN(d) ? -1 : (long) d;
        }
        return -1;
    }

    /** A number at {@code path}; NaN when absent. */
    double real(String... path) {
        Object v = at(path);
        return v instanceof Number ? ((Number) v).doubleValue() : Double.NaN;
    }

    /** A string at {@code path}; null when absent or not a string. */
    String text(String... path) {
        Object v = at(path);
        return v instanceof String ? (String) v : null;
    }

    /** The resident bytes of one breakdown class; -1 when the sample has no breakdown. */
    long breakdownRss(String cls) {
        Object c = at("breakdown", "classes", cls);
        if (c instanceof Number) {
            return asLong(c);
        }
        return asLong(JsonReader.at(c, "rss"));
    }

    boolean hasBreakdown() {
        return at("breakdown", "classes") instanceof Map;
    }

    /** "glibc 2.36", "jemalloc", ...; null when the sample does not say. */
    String allocator() {
        String kind = text("allocator", "kind");
        if (kind == null) {
            return null;
        }
        String version = text("allocator", "version");
        return version == null ? kind : kind + " " + version;
    }

    /** The findings as objects; null when the sample carries no findings part at all. */
    List<Map<?, ?>> findings() {
        Object f = at("findings");
        if (!(f instanceof List)) {
            return null;
        }
        List<Map<?, ?>> out = new ArrayList<>();
        for (Object o : (List<?>) f) {
            if (o instanceof Map) {
                out.add((Map<?, ?>) o);
            }
        }
        return out;
    }

    /** Rank of a severity: 0 for critical, larger for milder, {@code SEVERITIES.length} if unknown. */
    static int rank(Object severity) {
        for (int i = 0; i < SEVERITIES.length; i++) {
            if (SEVERITIES[i].equals(severity)) {
                return i;
            }
        }
        return SEVERITIES.length;
    }

    /** The first of the most severe findings; null when there is none. */
    Map<?, ?> mostSevere() {
        List<Map<?, ?>> all = findings();
        Map<?, ?> best = null;
        if (all != null) {
            for (Map<?, ?> f : all) {
                if (best == null || rank(f.get("severity")) < rank(best.get("severity"))) {
                    best = f;
                }
            }
        }
        return best;
    }
}
