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

    /** Every key the agent knows, with a one-line description used in messages and the README. */
    static final Map<String, String> KEYS;

    static {
        Map<String, String> k = new LinkedHashMap<>();
        k.put("interval", "time between samples: <n>ms, <n>s, <n>m or <n>h (default 10s, at least 100ms)");
        k.put("report", "file that receives one JSON object per sample (JSON lines); default none");
        k.put("log", "quiet|info|debug (default info)");
        k.put("extractDir", "directory for the extracted native library (default <java.io.tmpdir>/offheap-doctor-<user>)");
        k.put("library", "path of a native library to load instead of the bundled one (also -D" + LIBRARY_PROPERTY + ")");
        k.put("zipCensus", "on|off: count Inflaters/Deflaters holding native zlib memory (default on)");
        k.put("procRoot", "directory read instead of /proc/self (for tests)");
        k.put("prometheus", "<port> or <host>:<port>: serve Prometheus metrics at http://<host>:<port>/metrics"
                + " (default host 127.0.0.1; default off: no port is opened)");
        KEYS = Collections.unmodifiableMap(k);
    }

    long intervalMs = DEFAULT_INTERVAL_MS;
    String report;
    Log.Level log = Log.Level.INFO;
    String extractDir;
    String library;
    String procRoot;
    boolean zipCensus = true;
    /** Where the Prometheus endpoint listens; null when it is off. */
    String prometheusHost;
    int prometheusPort = -1;

    /** Problems found while parsing, each one line; the caller prints them. */
    final List<String> problems = new ArrayList<>();

    static Options parse(String agentArgs, String envValue) {
        Options o = new Options();
        Map<String, String> merged = new LinkedHashMap<>();
        o.split(envValue, ENV_VAR, merged);
        o.split(agentArgs, "-javaagent", merged);
        for (Map.Entry<String, String> e : merged.entrySet()) {
            o.apply(e.getKey(), e.getValue());
        }
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
                    problems.add("interval='" + value + "' is not a duration; use <n>ms, <n>s, <n>m or <n>h; keeping "
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
            case "zipCensus":
                Boolean on = parseSwitch(value);
                if (on == null) {
                    problems.add("zipCensus='" + value + "' is not valid; choose on or off; keeping on");
                } else {
                    zipCensus = on;
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

    /** Milliseconds of a duration like {@code 500ms}, {@code 10s}, {@code 1m}, {@code 2h}; -1 if malformed. */
    static long parseDuration(String s) {
        if (s == null) {
            return -1;
        }
        String t = s.trim().toLowerCase(Locale.ROOT);
        long unit;
        String num;
        if (t.endsWith("ms")) {
            unit = 1;
            num = t.substring(0, t.length() - 2);
        } else if (t.endsWith("s")) {
            unit = 1000;
            num = t.substring(0, t.length() - 1);
        } else if (t.endsWith("m")) {
            unit = 60_000;
            num = t.substring(0, t.length() - 1);
        } else if (t.endsWith("h")) {
            unit = 3_600_000;
            num = t.substring(0, t.length() - 1);
        } else {
            return -1;
        }
        if (num.isEmpty() || num.length() > 12) {
            return -1;
        }
        for (int i = 0; i < num.length(); i++) {
            if (!Character.isDigit(num.charAt(i))) {
                return -1;
            }
        }
        return Long.parseLong(num) * unit;
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

    /** The library override: the system property wins over the option. */
    String libraryOverride() {
        String p = System.getProperty(LIBRARY_PROPERTY);
        return p != null && !p.isEmpty() ? p : library;
    }
}
