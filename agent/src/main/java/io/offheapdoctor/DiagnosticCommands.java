package io.offheapdoctor;

import java.lang.management.ManagementFactory;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import com.sun.management.HotSpotDiagnosticMXBean;
import com.sun.management.VMOption;

/**
 * The JVM's diagnostic commands (what {@code jcmd} runs) called in-process through the
 * {@code DiagnosticCommand} MBean, and HotSpot VM options. Every call returns null instead of
 * throwing where the JVM does not offer it.
 */
final class DiagnosticCommands {
    private static final String DCMD = "com.sun.management:type=DiagnosticCommand";
    private static final String[] ARGS_SIGNATURE = {String[].class.getName()};

    private DiagnosticCommands() {}

    /**
     * Runs a diagnostic command by its MBean operation name ({@code gcHeapInfo} for
     * {@code GC.heap_info}, {@code vmNativeMemory} for {@code VM.native_memory}).
     */
    static String invoke(String operation, String... args) throws Exception {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        ObjectName name = new ObjectName(DCMD);
        // Commands without arguments are exposed with an empty signature on some JDKs and with
        // String[] on others.
        try {
            return (String) server.invoke(name, operation, new Object[] {args}, ARGS_SIGNATURE);
        } catch (javax.management.ReflectionException e) {
            if (args.length == 0) {
                return (String) server.invoke(name, operation, new Object[0], new String[0]);
            }
            throw e;
        }
    }

    /** Like {@link #invoke} but null where the command fails or does not exist. */
    static String tryInvoke(String operation, String... args) {
        try {
            return invoke(operation, args);
        } catch (Exception | LinkageError e) {
            Log.debug("diagnostic command " + operation + " failed: " + e);
            return null;
        }
    }

    /** A HotSpot VM option's value ({@code -XX:Name}), or null where the JVM has no such option. */
    static String vmOption(String name) {
        try {
            HotSpotDiagnosticMXBean hs = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
            if (hs == null) {
                return null;
            }
            VMOption o = hs.getVMOption(name);
            return o == null ? null : o.getValue();
        } catch (IllegalArgumentException | LinkageError | SecurityException e) {
            return null;
        }
    }
}
