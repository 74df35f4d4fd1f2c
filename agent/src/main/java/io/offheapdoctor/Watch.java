package io.offheapdoctor;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import javax.management.JMException;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;

/**
 * {@code <pid> watch [interval]}: a live view in the terminal. Every interval it takes a fresh
 * sample through the MBean's {@code sampleNow} and prints a compact block; it stops on Ctrl-C
 * (SIGINT), on end of input when reading a terminal, or when the target goes away.
 */
final class Watch {
    static final long DEFAULT_INTERVAL_MS = 2000;
    private static final int TOP_CLASSES = 4;

    private Watch() {}

    /** Milliseconds of "2s", "500ms", "1m" or a plain number of seconds; -1 when unreadable or under 100ms. */
    static long parseInterval(String s) {
        if (s.isEmpty()) {
            return DEFAULT_INTERVAL_MS;
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d+(?:\\.\\d+)?)(ms|s|m)?").matcher(s);
        if (!m.matches()) {
            return -1;
        }
        double n = Double.parseDouble(m.group(1));
        String unit = m.group(2) == null ? "s" : m.group(2);
        double ms = unit.equals("ms") ? n : unit.equals("s") ? n * 1000 : n * 60_000;
        return ms < 100 || ms > 86_400_000 ? -1 : (long) ms;
    }

    static int run(MBeanServerConnection server, ObjectName name, String pid, String interval)
            throws IOException, JMException {
        long every = parseInterval(interval);
        CountDownLatch stop = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(1);
        PrintStream out = System.out;
        Thread hook = new Thread(() -> {
            stop.countDown();
            try {
                done.await(2, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                // Exiting anyway.
            }
            out.println("offheap-doctor: watch of " + pid + " stopped");
            out.flush();
        }, "offheap-doctor-watch-stop");
        Runtime.getRuntime().addShutdownHook(hook);
        if (System.console() != null) {
            Thread eof = new Thread(() -> {
                try {
                    while (System.in.read() >= 0) {
                        // Input is ignored; only its end matters.
                    }
                } catch (IOException ignored) {
                    // Treated as the end.
                }
                stop.countDown();
            }, "offheap-doctor-watch-stdin");
            eof.setDaemon(true);
            eof.start();
        }
        try {
            out.println("offheap-doctor: watching " + pid + " every " + (every % 1000 == 0 ? every / 1000 + "s" : every + "ms")
                    + "; Ctrl-C to stop");
            while (stop.getCount() > 0) {
                String line;
                try {
                    line = String.valueOf(server.invoke(name, "sampleNow", new Object[0], new String[0]));
                } catch (IOException e) {
                    if (stop.getCount() == 0) {
                        break;
                    }
                    System.err.println("offheap-doctor: lost " + pid + ": " + RemoteCommand.printable(RemoteCommand.describe(e)));
                    return 1;
                }
                out.print(RemoteCommand.printable(block(SampleView.of(line))));
                out.flush();
                try {
                    stop.await(every, TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        } finally {
            done.countDown();
        }
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
            out.println("offheap-doctor: watch of " + pid + " stopped");
        } catch (IllegalStateException shuttingDown) {
            // The hook says it.
        }
        return 0;
    }

    /** One sample as a few lines, starting with a "--" line that carries the time. */
    static String block(SampleView v) {
        StringBuilder b = new StringBuilder(512);
        if (!v.present()) {
            return "-- cannot read the sample: " + (v.parseError == null ? "no sample" : v.parseError) + "\n";
        }
        String time = v.text("time");
        b.append("-- ").append(time == null ? "?" : time).append("  sample ").append(v.number("seq")).append('\n');
        b.append("RSS ").append(size(v.number("totals", "rss")))
                .append("  PSS ").append(size(v.number("totals", "pss")))
                .append("  swap ").append(size(v.number("totals", "swap"))).append('\n');
        if (v.hasBreakdown()) {
            List<String> classes = new ArrayList<>();
            Collections.addAll(classes, SampleView.BREAKDOWN_CLASSES);
            classes.sort((a, c) -> Long.compare(v.breakdownRss(c), v.breakdownRss(a)));
            b.append("top");
            for (int i = 0; i < Math.min(TOP_CLASSES, classes.size()); i++) {
                b.append(i == 0 ? " " : ", ").append(classes.get(i)).append(' ').append(size(v.breakdownRss(classes.get(i))));
            }
            b.append('\n');
        }
        long retained = v.number("malloc", "retained_resident");
        if (retained < 0) {
            retained = v.number("malloc", "retained");
        }
        long arenas = v.number("malloc", "arena_count");
        b.append("malloc retained ").append(size(retained)).append(" in ")
                .append(arenas < 0 ? "?" : Long.toString(arenas)).append(" arenas\n");
        b.append("zip inflaters ").append(count(v.number("zip", "inflaters", "alive"))).append(" alive/")
                .append(count(v.number("zip", "inflaters", "pending_cleanup"))).append(" pending, deflaters ")
                .append(count(v.number("zip", "deflaters", "alive"))).append(" alive/")
                .append(count(v.number("zip", "deflaters", "pending_cleanup"))).append(" pending\n");
        List<Map<?, ?>> findings = v.findings();
        b.append("findings ");
        if (findings == null) {
            b.append('?');
        } else if (findings.isEmpty()) {
            b.append("none");
        } else {
            for (int i = 0; i < findings.size(); i++) {
                Map<?, ?> f = findings.get(i);
                b.append(i == 0 ? "" : ", ").append(f.get("id")).append(" (").append(f.get("severity")).append(')');
            }
        }
        b.append('\n');
        return b.toString();
    }

    private static String size(long n) {
        return n < 0 ? "?" : ReportText.bytes(n);
    }

    private static String count(long n) {
        return n < 0 ? "?" : Long.toString(n);
    }
}
