package io.offheapdoctor;

import java.lang.instrument.Instrumentation;

/**
 * Entry points of the agent jar. Neither may throw: a diagnostics agent that breaks its host is
 * worse than none, so any failure is one line on stderr and the agent stays off.
 */
public final class Agent {
    /** Set once the agent starts in a JVM: the attach commands read it with the JVM's properties. */
    static final String RUNNING_PROPERTY = "offheap.doctor.running";
    /** Prefix of the property that carries a command's answer back to the attach command. */
    static final String REPLY_PROPERTY = "offheap.doctor.reply.";
    /** How long a command loaded with the agent waits for the agent's first sample. */
    static final long FIRST_SAMPLE_TIMEOUT_MS = 20_000;
    /** How long an answer stays in the system properties for the command to read. */
    static final long REPLY_KEEP_MS = 60_000;

    private Agent() {}

    public static void premain(String args, Instrumentation inst) {
        launch(args, inst, false);
    }

    public static void premain(String args) {
        launch(args, null, false);
    }

    public static void agentmain(String args, Instrumentation inst) {
        launch(args, inst, true);
    }

    public static void agentmain(String args) {
        launch(args, null, true);
    }

    /** Whether the JVM's shutdown has begun: it then refuses new shutdown hooks. */
    static boolean shuttingDown() {
        Thread probe = new Thread("offheap-doctor-probe");
        try {
            Runtime.getRuntime().addShutdownHook(probe);
            Runtime.getRuntime().removeShutdownHook(probe);
            return false;
        } catch (IllegalStateException e) {
            return true;
        } catch (SecurityException e) {
            return false;
        }
    }

    private static void start(String args, Instrumentation inst, boolean attached) {
        ZipCensus.remember(inst);
        Doctor.start(args, inst, attached);
        try {
            System.setProperty(RUNNING_PROPERTY, "true");
        } catch (SecurityException e) {
            // The attach commands then find the agent over JMX, as they would anyway.
        }
    }

    /**
     * {@code @<command> <nonce> <options>} from an attach command that found no agent here: starts
     * the agent with the options, waits for its first sample and leaves the answer (report or
     * json) in the system property {@link #REPLY_PROPERTY}{@code <nonce>}, which the command reads
     * through the same attach connection. One attach round trip instead of this JVM's JMX
     * connector (RMI, the platform MBeanServer), which costs both JVMs several times the answer.
     * The answer is "0" then the text, or "1" then why it failed.
     */
    private static void answer(String request, Instrumentation inst) {
        String[] parts = request.split(" ", 3);
        if (parts.length < 2) {
            Log.warn("ignored a malformed request from an attach command");
            return;
        }
        String command = parts[0];
        String key = REPLY_PROPERTY + parts[1];
        // Answers of earlier commands were read right after they were set: none is kept.
        for (String k : System.getProperties().stringPropertyNames()) {
            if (k.startsWith(REPLY_PROPERTY)) {
                System.clearProperty(k);
            }
        }
        String reply;
        try {
            start(parts.length > 2 ? parts[2] : "", inst, true);
            reply = "0" + answerOf(command);
        } catch (RuntimeException e) {
            reply = "1" + (e.getMessage() == null ? e.toString() : e.getMessage());
        }
        System.setProperty(key, reply);
        forgetLater(key);
    }

    /**
     * Clears the answer once the command has surely read it (it does right after the load
     * returns); a command that comes later finds none and asks over JMX instead.
     */
    private static void forgetLater(final String key) {
        Thread t = new Thread(new Runnable() {
            @Override
            public void run() {
                try {
                    Thread.sleep(REPLY_KEEP_MS);
                } catch (InterruptedException e) {
                    // Clear it now.
                }
                System.clearProperty(key);
            }
        }, "offheap-doctor-reply");
        t.setDaemon(true);
        t.start();
    }

    private static String answerOf(String command) {
        Doctor d = Doctor.get();
        if (d == null) {
            throw new IllegalStateException("the agent did not start; the JVM's stderr says why");
        }
        long deadline = System.nanoTime() + FIRST_SAMPLE_TIMEOUT_MS * 1_000_000L;
        while (d.lastSample() == null) {
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("no sample within " + FIRST_SAMPLE_TIMEOUT_MS / 1000
                        + "s; the JVM's stderr says why");
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for the first sample");
            }
        }
        OffHeapDoctorBean bean = new OffHeapDoctorBean(d);
        if (command.equals("json")) {
            return bean.reportJson();
        }
        if (command.equals("report")) {
            return bean.reportText();
        }
        String op = RemoteCommand.sitesOperation(command);
        if (op != null) {
            String a = op.equals("startNativeSites") ? bean.startNativeSites()
                    : op.equals("stopNativeSites") ? bean.stopNativeSites() : bean.nativeSitesReport();
            if (RemoteCommand.notDone(a)) {
                throw new IllegalStateException(a);
            }
            return a;
        }
        throw new IllegalArgumentException("unknown command '" + command + "'");
    }

    /**
     * Starts the agent on a daemon thread of its own, so that {@code premain} returns at once: the
     * agent's classes are read from the jar and verified, its options parsed and its shutdown hook
     * added off the application's start-up path, and a JVM that is done before then (a CLI tool,
     * a test fork) never waits for any of it. The thread carries the sampler's name and goes on
     * as the sampler, so the attach commands see a running agent from the first moment.
     */
    private static void startInBackground(final String args, final Instrumentation inst) {
        Thread t = new Thread(new Runnable() {
            @Override
            public void run() {
                try {
                    start(args, inst, false);
                } catch (Throwable e) {
                    try {
                        Log.warn("disabled itself after an internal error: " + e);
                    } catch (Throwable ignored) {
                        // stderr itself failed; stay silent rather than disturb the application.
                    }
                }
            }
        }, Doctor.THREAD_NAME);
        t.setDaemon(true);
        t.start();
    }

    /**
     * Whether the options ask for malloc settings, which must apply before {@code premain}
     * returns (the application's threads make their arenas after that). A plain word search of
     * the arguments and the environment variable, without the option parser's classes: a false
     * positive only costs the start on the caller's thread, as before.
     */
    static boolean mallocSettingsAsked(String args) {
        String env;
        try {
            env = System.getenv(Options.ENV_VAR);
        } catch (SecurityException e) {
            env = null;
        }
        for (String text : new String[] {args, env}) {
            if (text == null) {
                continue;
            }
            String t = text.toLowerCase(java.util.Locale.ROOT);
            if (t.contains("arenamax") || t.contains("mmapthreshold") || t.contains("trimthreshold")
                    || t.contains("toppad")) {
                return true;
            }
        }
        return false;
    }

    private static void awaitExit() {
        while (true) {
            try {
                Thread.sleep(Long.MAX_VALUE);
            } catch (InterruptedException e) {
                // Keep waiting: the exit is under way.
            }
        }
    }

    private static void launch(String args, Instrumentation inst, boolean attached) {
        try {
            if (attached && args != null && args.startsWith("@")) {
                answer(args.substring(1), inst);
                return;
            }
            if (attached || mallocSettingsAsked(args)) {
                start(args, inst, attached);
            } else {
                startInBackground(args, inst);
            }
            if (shuttingDown()) {
                // The JVM began to exit while the agent started (a SIGTERM or System.exit during
                // premain). Returning now would hand control back to the JDK's instrument library
                // while the VM dies, and it aborts the process ("processing of -javaagent failed")
                // instead of letting it exit with its own code. Waiting here lets the exit finish.
                awaitExit();
            }
        } catch (Throwable t) {
            try {
                Log.warn("disabled itself after an internal error: " + t);
            } catch (Throwable ignored) {
                // stderr itself failed; stay silent rather than disturb the application.
            }
        }
    }
}
