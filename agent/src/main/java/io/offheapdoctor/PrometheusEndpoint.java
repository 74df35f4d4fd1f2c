package io.offheapdoctor;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code /metrics} in the Prometheus text format 0.0.4, served only when the {@code prometheus}
 * option asks for it. Values come from the latest sample, so a scrape costs a parse, never a
 * sample; a value the sample does not hold is left out rather than written as -1. The server is
 * {@link Server}: a few threads on plain sockets, bounded in connections, time and request size.
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
            InetSocketAddress bound = Server.start(doctor, options.prometheusHost, options.prometheusPort);
            String url = "http://" + hostForUrl(options.prometheusHost) + ":" + bound.getPort() + "/metrics";
            if (bound.getAddress() != null && !bound.getAddress().isLoopbackAddress()) {
                // Said even when quiet: the metrics are readable by whoever reaches this address.
                Log.warn("Prometheus metrics at " + url + " listen beyond loopback (prometheus="
                        + hostForUrl(bound.getAddress().getHostAddress()) + ":" + bound.getPort()
                        + "): anyone who reaches this address can read them");
            } else {
                Log.info("Prometheus metrics at " + url);
            }
        } catch (IOException | RuntimeException | OutOfMemoryError e) {
            // OutOfMemoryError: no native thread for a worker.
            Log.warn("cannot serve Prometheus metrics on " + where + " (" + e + "); the endpoint stays off");
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
        timeToLimit(all);
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

    /**
     * The oom-risk finding's own estimate of the time left before the container's memory reaches
     * its limit at the current rate, so an alert needs no second extrapolation of its own; there
     * while that finding is raised with a rate.
     */
    private void timeToLimit(List<Map<?, ?>> all) {
        for (Map<?, ?> f : all) {
            if (!"oom-risk".equals(f.get("id")) || !(f.get("evidence") instanceof List)) {
                continue;
            }
            for (Object e : (List<?>) f.get("evidence")) {
                if (e instanceof Map && "time_to_limit".equals(((Map<?, ?>) e).get("key"))
                        && ((Map<?, ?>) e).get("raw") instanceof Number) {
                    double secs = ((Number) ((Map<?, ?>) e).get("raw")).doubleValue();
                    family("time_to_limit_seconds", "gauge", "Seconds until the container's memory reaches its"
                            + " limit at the current rate (the oom-risk finding's estimate, there while it is raised).");
                    sample("time_to_limit_seconds", "", String.format(Locale.ROOT, "%.0f", secs));
                    return;
                }
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
     * The HTTP side, in its own class so that its threads and socket exist only when the option
     * asks for them. A few workers each accept and answer one connection at a time, so the
     * process never holds more than {@link #WORKERS} connections: the rest wait in the kernel's
     * listen queue and cost the application no file descriptor. A connection has
     * {@link #HEAD_TIMEOUT_MS} in all to send its request head of at most
     * {@link #MAX_HEAD_BYTES}, and every answer closes it, so a silent or slow client holds one
     * worker for that long at most while the others keep answering. Hand-written rather than the
     * JDK's {@code com.sun.net.httpserver}: that server reads a request on its executor's threads
     * with no time limit and caps neither connections nor time but through system properties
     * ({@code sun.net.httpserver.*}) that would reconfigure the application's own servers too.
     */
    private static final class Server {
        static final int WORKERS = 4;
        static final int HEAD_TIMEOUT_MS = 3000;
        static final int MAX_HEAD_BYTES = 8192;
        /** Enough for a scraper that opens its next connection while one is being answered. */
        private static final int BACKLOG = 16;
        /** Workers only read a request head and write a few KiB: a small stack is plenty. */
        private static final long STACK_BYTES = 256 * 1024;

        private static volatile SampleView cached = SampleView.NONE;

        private final Doctor doctor;
        private final ServerSocket socket;

        private Server(Doctor doctor, ServerSocket socket) {
            this.doctor = doctor;
            this.socket = socket;
        }

        /** Binds and starts the workers; returns the bound address (the chosen port when asked for 0). */
        static InetSocketAddress start(Doctor doctor, String host, int port) throws IOException {
            ServerSocket socket = new ServerSocket();
            try {
                socket.setReuseAddress(true);
                socket.bind(new InetSocketAddress(host, port), BACKLOG);
            } catch (IOException | RuntimeException e) {
                socket.close();
                throw e;
            }
            Server server = new Server(doctor, socket);
            try {
                for (int i = 0; i < WORKERS; i++) {
                    Thread t = new Thread(null, server::serve, "offheap-doctor-prometheus-" + (i + 1), STACK_BYTES);
                    t.setDaemon(true);
                    t.start();
                }
            } catch (RuntimeException | OutOfMemoryError e) {
                // Workers already started end at the closed socket: the endpoint is off, not half on.
                socket.close();
                throw e;
            }
            return (InetSocketAddress) socket.getLocalSocketAddress();
        }

        private void serve() {
            while (!socket.isClosed()) {
                try (Socket s = socket.accept()) {
                    answer(s);
                } catch (IOException e) {
                    // A client that went away or sent garbage: its connection is closed, the next one waits.
                    Log.debug("Prometheus endpoint: " + e);
                } catch (RuntimeException e) {
                    Log.debug("Prometheus endpoint: internal error: " + e);
                }
            }
        }

        private void answer(Socket s) throws IOException {
            s.setTcpNoDelay(true);
            String head = readHead(s);
            OutputStream out = s.getOutputStream();
            if (head == null) {
                return;
            }
            if (head.length() > MAX_HEAD_BYTES) {
                reply(out, 431, "Request Header Fields Too Large", "text/plain; charset=utf-8",
                        "request head larger than " + MAX_HEAD_BYTES + " bytes\n", true, null);
                return;
            }
            int eol = head.indexOf('\n');
            String[] request = (eol < 0 ? head : head.substring(0, eol)).trim().split(" ");
            if (request.length != 3 || !request[2].startsWith("HTTP/1.")) {
                reply(out, 400, "Bad Request", "text/plain; charset=utf-8", "not an HTTP/1.x request\n", true, null);
                return;
            }
            String method = request[0];
            String target = request[1];
            int query = target.indexOf('?');
            String path = query < 0 ? target : target.substring(0, query);
            if (!path.equals("/metrics")) {
                reply(out, 404, "Not Found", "text/plain; charset=utf-8", "offheap-doctor serves /metrics only\n",
                        !method.equals("HEAD"), null);
                return;
            }
            if (!method.equals("GET") && !method.equals("HEAD")) {
                reply(out, 405, "Method Not Allowed", "text/plain; charset=utf-8", "use GET\n", true, "GET, HEAD");
                return;
            }
            String line = doctor.lastSample();
            SampleView v = cached;
            if (line != v.line) {
                v = SampleView.of(line);
                cached = v;
            }
            reply(out, 200, "OK", CONTENT_TYPE, render(v), method.equals("GET"), null);
        }

        /**
         * The request line and headers up to the empty line; null when the client closed or let
         * {@link #HEAD_TIMEOUT_MS} pass first; longer than {@link #MAX_HEAD_BYTES} when it sent
         * more than that without ending its head. The deadline covers the whole head, not each
         * read, so a client trickling a byte at a time holds the worker no longer than a silent one.
         */
        private static String readHead(Socket s) throws IOException {
            InputStream in = s.getInputStream();
            byte[] buf = new byte[MAX_HEAD_BYTES + 1];
            int n = 0;
            long deadline = System.nanoTime() + HEAD_TIMEOUT_MS * 1_000_000L;
            while (n < buf.length) {
                long left = (deadline - System.nanoTime()) / 1_000_000L;
                if (left <= 0) {
                    return null;
                }
                s.setSoTimeout((int) left);
                int r;
                try {
                    r = in.read(buf, n, buf.length - n);
                } catch (SocketTimeoutException e) {
                    return null;
                }
                if (r < 0) {
                    return null;
                }
                int from = Math.max(0, n - 3);
                n += r;
                for (int i = from; i < n; i++) {
                    if (buf[i] == '\n' && ((i >= 1 && buf[i - 1] == '\n')
                            || (i >= 3 && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r'))) {
                        return new String(buf, 0, i, StandardCharsets.ISO_8859_1);
                    }
                }
            }
            return new String(buf, 0, n, StandardCharsets.ISO_8859_1);
        }

        private static void reply(OutputStream out, int status, String reason, String type, String body,
                boolean withBody, String allow) throws IOException {
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            StringBuilder h = new StringBuilder(160);
            h.append("HTTP/1.1 ").append(status).append(' ').append(reason).append("\r\n")
                    .append("Content-Type: ").append(type).append("\r\n")
                    .append("Content-Length: ").append(bytes.length).append("\r\n")
                    .append("Connection: close\r\n");
            if (allow != null) {
                h.append("Allow: ").append(allow).append("\r\n");
            }
            h.append("\r\n");
            out.write(h.toString().getBytes(StandardCharsets.ISO_8859_1));
            if (withBody) {
                out.write(bytes);
            }
            out.flush();
        }
    }
}
