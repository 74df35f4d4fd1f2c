package io.offheapdoctor;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * {@code /metrics} in the Prometheus text format 0.0.4, served only when the {@code prometheus}
 * option asks for it. Values come from the latest sample, so a scrape costs a parse, never a
 * sample; a value the sample does not hold is left out rather than written as -1. The server uses
 * the JDK's {@code com.sun.net.httpserver}; where a runtime lacks it (a jlinked image without
 * {@code jdk.httpserver}) the endpoint is off with one warning.
 */
final class PrometheusEndpoint {
    static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
    private static final String PREFIX = "offheap_doctor_";

    private final StringBuilder out = new StringBuilder(4096);

    private PrometheusEndpoint() {}

    /** Starts the endpoint if {@code options} ask for one; never throws. */
    static void start(Doctor doctor, Options options) {
        if (options.prometheusHost == null) {
            return;
        }
        String where = hostForUrl(options.prometheusHost) + ":" + options.prometheusPort;
        try {
            Class.forName("com.sun.net.httpserver.HttpServer", false, PrometheusEndpoint.class.getClassLoader());
        } catch (ClassNotFoundException | LinkageError e) {
            Log.warn("cannot serve Prometheus metrics on " + where + ": this Java runtime has no com.sun.net.httpserver"
                    + " (module jdk.httpserver); the endpoint stays off");
            return;
        }
        try {
            int port = Server.start(doctor, options.prometheusHost, options.prometheusPort);
            Log.info("Prometheus metrics at http://" + hostForUrl(options.prometheusHost) + ":" + port + "/metrics");
        } catch (IOException | RuntimeException | LinkageError e) {
            Log.warn("cannot serve Prometheus metrics on " + where + " (" + e + "); the endpoint stays off");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            Log.warn("cannot serve Prometheus metrics on " + where + ": interrupted while starting");
        }
    }

    private static String hostForUrl(String host) {
        return host.indexOf(':') >= 0 ? "[" + host + "]" : host;
    }

    /** The metrics of one sample in the text format; just a comment when there is no sample yet. */
    static String render(SampleView v) {
        PrometheusEndpoint p = new PrometheusEndpoint();
        p.build(v);
        return p.out.toString();
    }

    private void build(SampleView v) {
        if (!v.present()) {
            out.append("# offheap-doctor: ").append(v.line == null ? "no sample yet" : "the latest sample cannot be read")
                    .append('\n');
            return;
        }
        counter("samples_total", "Samples taken since the agent started.", v.number("seq"));
        long epochMs = v.number("epoch_ms");
        if (epochMs >= 0) {
            family("last_sample_timestamp_seconds", "gauge", "Time of the latest sample, seconds since the epoch.");
            sample("last_sample_timestamp_seconds", "", String.format(Locale.ROOT, "%.3f", epochMs / 1000.0));
        }
        gauge("rss_bytes", "Resident set size of the JVM process.", v.number("totals", "rss"));
        gauge("pss_bytes", "Proportional set size of the JVM process.", v.number("totals", "pss"));
        gauge("swap_bytes", "Swapped-out memory of the JVM process.", v.number("totals", "swap"));
        if (v.hasBreakdown()) {
            family("region_resident_bytes", "gauge", "Resident bytes of each region class; the classes add up to the RSS.");
            for (String cls : SampleView.BREAKDOWN_CLASSES) {
                long b = v.breakdownRss(cls);
                if (b >= 0) {
                    sample("region_resident_bytes", "class=\"" + cls + "\"", Long.toString(b));
                }
            }
        }
        String allocator = v.text("allocator", "kind");
        if (allocator != null) {
            String version = v.text("allocator", "version");
            family("allocator_info", "gauge",
                    "The malloc implementation of the process, by its kind and version; the value is always 1.");
            sample("allocator_info", "allocator=\"" + escape(allocator) + "\",version=\""
                    + escape(version == null ? "" : version) + "\"", "1");
        }
        gauge("malloc_retained_bytes", "Bytes glibc malloc holds free in its arenas, resident or not (an upper bound).",
                v.number("malloc", "retained"));
        gauge("malloc_retained_resident_bytes", "Free bytes in glibc malloc's arenas that are resident now.",
                v.number("malloc", "retained_resident"));
        gauge("malloc_in_use_bytes", "Bytes in use in malloc's arenas.", v.number("malloc", "in_use"));
        gauge("malloc_arenas", "glibc malloc arenas.", v.number("malloc", "arena_count"));
        gauge("nmt_committed_bytes", "Memory NMT counts as committed.", v.number("nmt", "committed"));
        double coverage = v.real("nmt", "growth", "coverage");
        if (!Double.isNaN(coverage)) {
            family("nmt_coverage_ratio", "gauge", "Share of RSS growth since the baseline that NMT explains.");
            sample("nmt_coverage_ratio", "", Double.toString(coverage));
        }
        zip(v);
        gauge("zip_estimated_native_bytes", "Native zlib memory the zip streams are estimated to hold.",
                v.number("zip", "estimated_native_bytes"));
        counter("trims_total", "malloc_trim calls made by the agent.", v.number("trim", "count"));
        String mode = v.text("trim", "policy", "mode", "mode");
        if (mode != null) {
            String spec = v.text("trim", "policy", "spec");
            family("trim_policy_info", "gauge", "The trim policy in force, by its mode and spec; the value is always 1.");
            sample("trim_policy_info", "mode=\"" + escape(mode) + "\",spec=\"" + escape(spec == null ? mode : spec)
                    + "\"", "1");
        }
        counter("trim_released_bytes_total", "Bytes malloc_trim returned to the OS.", v.number("trim", "released_total"));
        findings(v);
        gauge("cgroup_limit_bytes", "Memory limit of the container's cgroup.", v.number("cgroup", "limit"));
        gauge("cgroup_usage_bytes", "Memory charged to the container's cgroup.", v.number("cgroup", "usage"));
    }

    private void zip(SampleView v) {
        String[][] series = {
            {"inflater", "alive", "inflaters", "alive"},
            {"inflater", "pending", "inflaters", "pending_cleanup"},
            {"deflater", "alive", "deflaters", "alive"},
            {"deflater", "pending", "deflaters", "pending_cleanup"},
            {"inflater", "finalizable_alive", "inflaters", "finalizable_alive"},
            {"inflater", "finalizable_pending", "inflaters", "finalizable_pending"},
            {"deflater", "finalizable_alive", "deflaters", "finalizable_alive"},
            {"deflater", "finalizable_pending", "deflaters", "finalizable_pending"},
        };
        boolean any = false;
        for (String[] s : series) {
            long n = v.number("zip", s[2], s[3]);
            if (n < 0) {
                continue;
            }
            if (!any) {
                family("zip_streams", "gauge",
                        "Inflaters and Deflaters holding native memory: alive and unended, or pending their cleanup"
                        + " (finalizable_*: those a finalizer releases).");
                any = true;
            }
            sample("zip_streams", "kind=\"" + s[0] + "\",state=\"" + s[1] + "\"", Long.toString(n));
        }
    }

    private void findings(SampleView v) {
        List<Map<?, ?>> all = v.findings();
        if (all == null) {
            return;
        }
        family("findings", "gauge", "Current findings by severity.");
        for (String severity : SampleView.SEVERITIES) {
            int n = 0;
            for (Map<?, ?> f : all) {
                if (severity.equals(f.get("severity"))) {
                    n++;
                }
            }
            sample("findings", "severity=\"" + severity + "\"", Integer.toString(n));
        }
        if (all.isEmpty()) {
            return;
        }
        family("finding", "gauge", "1 for each current finding, by its id and severity.");
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (Map<?, ?> f : all) {
            Object id = f.get("id");
            Object severity = f.get("severity");
            String labels = "id=\"" + escape(id == null ? "unknown" : id.toString()) + "\",severity=\""
                    + escape(severity == null ? "unknown" : severity.toString()) + "\"";
            if (seen.add(labels)) {
                sample("finding", labels, "1");
            }
        }
    }

    /** A label value as the text format wants it: backslash, quote and newline escaped. */
    private static String escape(String value) {
        return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
    }

    private void gauge(String name, String help, long value) {
        if (value >= 0) {
            family(name, "gauge", help);
            sample(name, "", Long.toString(value));
        }
    }

    private void counter(String name, String help, long value) {
        if (value >= 0) {
            family(name, "counter", help);
            sample(name, "", Long.toString(value));
        }
    }

    private void family(String name, String type, String help) {
        out.append("# HELP ").append(PREFIX).append(name).append(' ').append(help).append('\n');
        out.append("# TYPE ").append(PREFIX).append(name).append(' ').append(type).append('\n');
    }

    private void sample(String name, String labels, String value) {
        out.append(PREFIX).append(name);
        if (!labels.isEmpty()) {
            out.append('{').append(labels).append('}');
        }
        out.append(' ').append(value).append('\n');
    }

    /**
     * The HTTP side, in its own class so that a runtime without {@code com.sun.net.httpserver}
     * fails only here, where {@link #start} expects it.
     */
    private static final class Server {
        private static volatile SampleView cached = SampleView.NONE;

        /** Binds and starts; returns the port (the chosen one when asked for 0). */
        static int start(Doctor doctor, String host, int port) throws IOException, InterruptedException {
            ExecutorService executor = Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "offheap-doctor-prometheus");
                t.setDaemon(true);
                return t;
            });
            com.sun.net.httpserver.HttpServer server =
                    com.sun.net.httpserver.HttpServer.create(new InetSocketAddress(host, port), 0);
            server.createContext("/", exchange -> {
                try {
                    handle(doctor, exchange);
                } finally {
                    exchange.close();
                }
            });
            server.setExecutor(executor);
            // The server's dispatcher thread inherits daemon status from the thread that starts it:
            // start it from a daemon thread so the endpoint never keeps the JVM alive.
            Throwable[] failure = new Throwable[1];
            Thread starter = new Thread(() -> {
                try {
                    server.start();
                } catch (Throwable t) {
                    failure[0] = t;
                }
            }, "offheap-doctor-prometheus-start");
            starter.setDaemon(true);
            starter.start();
            starter.join();
            if (failure[0] != null) {
                executor.shutdownNow();
                server.stop(0);
                throw new IOException("the HTTP server did not start: " + failure[0], failure[0]);
            }
            return server.getAddress().getPort();
        }

        private static void handle(Doctor doctor, com.sun.net.httpserver.HttpExchange exchange) throws IOException {
            String method = exchange.getRequestMethod();
            String path = exchange.getRequestURI().getPath();
            if (!path.equals("/metrics")) {
                reply(exchange, 404, "text/plain; charset=utf-8", "offheap-doctor serves /metrics only\n", true);
                return;
            }
            if (!method.equals("GET") && !method.equals("HEAD")) {
                exchange.getResponseHeaders().set("Allow", "GET, HEAD");
                reply(exchange, 405, "text/plain; charset=utf-8", "use GET\n", true);
                return;
            }
            String line = doctor.lastSample();
            SampleView v = cached;
            if (line != v.line) {
                v = SampleView.of(line);
                cached = v;
            }
            reply(exchange, 200, CONTENT_TYPE, render(v), !method.equals("HEAD"));
        }

        private static void reply(com.sun.net.httpserver.HttpExchange exchange, int status, String type, String body,
                boolean withBody) throws IOException {
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", type);
            exchange.sendResponseHeaders(status, withBody ? bytes.length : -1);
            if (withBody) {
                try (OutputStream os = exchange.getResponseBody()) {
                    os.write(bytes);
                }
            }
        }
    }
}
