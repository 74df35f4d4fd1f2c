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

    private static void launch(String args, Instrumentation inst, boolean attached) {
        try {
            ZipCensus.remember(inst);
            Doctor.start(args, inst, attached);
        } catch (Throwable t) {
            try {
                Log.warn("disabled itself after an internal error: " + t);
            } catch (Throwable ignored) {
                // stderr itself failed; stay silent rather than disturb the application.
            }
        }
    }
}
