package io.offheapdoctor;

import java.lang.instrument.Instrumentation;

/**
 * Entry points of the agent jar. Neither may throw: a diagnostics agent that breaks its host is
 * worse than none, so any failure is one line on stderr and the agent stays off.
 */
public final class Agent {
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
            ZipCensus.remember(inst);
            Doctor.start(args, inst, attached);
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
