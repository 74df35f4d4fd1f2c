package io.offheapdoctor;

import java.lang.instrument.Instrumentation;
import java.lang.management.ManagementFactory;
import java.util.HashMap;
import java.util.Map;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import com.sun.management.HotSpotDiagnosticMXBean;
import com.sun.management.VMOption;

/**
 * The JVM's diagnostic commands (what {@code jcmd} runs) called in-process through the
 * {@code DiagnosticCommand} MBean, and HotSpot VM options. Every call returns null instead of
 * throwing where the JVM does not offer it.
 *
 * <p>Commands go straight to the JVM's {@code DiagnosticCommandImpl} (JDK 9+, package
 * {@code com.sun.management.internal} of jdk.management): run by the native core, which knows the
 * three commands below by index ({@link NativeCore#diagnosticCommand}), or by reflection after
 * opening that package to the agent through its Instrumentation when the native core is not
 * loaded (see {@link Internals}). {@code ManagementFactory.getPlatformMBeanServer()} would create and introspect
 * every platform MXBean, 8 MiB of resident memory on JDK 17 and 20 MiB on JDK 25. Where that route
 * is closed (JDK 8, no Instrumentation, a JDK that renamed it) they go through the platform
 * MBeanServer as before.
 */
final class DiagnosticCommands {
    private static final String DCMD = "com.sun.management:type=DiagnosticCommand";
    private static final String[] ARGS_SIGNATURE = {String[].class.getName()};

    /** MBean operation names to the command lines the direct route runs. */
    private static final Map<String, String> COMMANDS = new HashMap<String, String>();
    /** MBean operation names to the native core's index of the same command. */
    private static final Map<String, Integer> NATIVE_COMMANDS = new HashMap<String, Integer>();

    static {
        COMMANDS.put("gcHeapInfo", "GC.heap_info");
        COMMANDS.put("vmNativeMemory", "VM.native_memory");
        COMMANDS.put("gcClassHistogram", "GC.class_histogram");
        NATIVE_COMMANDS.put("gcHeapInfo", NativeCore.DCMD_HEAP_INFO);
        NATIVE_COMMANDS.put("vmNativeMemory", NativeCore.DCMD_NATIVE_MEMORY);
        NATIVE_COMMANDS.put("gcClassHistogram", NativeCore.DCMD_CLASS_HISTOGRAM);
    }

    private static Instrumentation inst;
    private static boolean resolved;
    /** Whether the native core runs the commands: resolved with the rest, on first use. */
    private static boolean viaNative;
    private static Object direct;
    private static Internals.MethodRef execute;

    private DiagnosticCommands() {}

    /** The Instrumentation that opens the direct route; the route itself is resolved on first use. */
    static synchronized void setInstrumentation(Instrumentation instrumentation) {
        inst = instrumentation;
    }

    /**
     * The reflection route's DiagnosticCommandImpl.executeDiagnosticCommand, or null where
     * unavailable or where the native core runs the commands ({@link #viaNative}).
     */
    private static synchronized Internals.MethodRef direct() {
        if (!resolved) {
            resolved = true;
            try {
                // jdk.management's provider loads the native library the command needs: initialized
                // directly, or through ManagementFactory (which builds its whole registry).
                if (Internals.nativeRoute()) {
                    loadManagementExt();
                    viaNative = true;
                    return null;
                }
                ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
                Class<?> impl = Class.forName("com.sun.management.internal.DiagnosticCommandImpl");
                Modules.open(inst, impl, impl.getPackage().getName());
                Internals.MethodRef get = Internals.MethodRef.of(impl.getDeclaredMethod("getDiagnosticCommandMBean"));
                Internals.MethodRef exec = Internals.MethodRef.of(
                        impl.getDeclaredMethod("executeDiagnosticCommand", String.class));
                direct = get.invoke(null);
                execute = direct == null ? null : exec;
            } catch (Exception | LinkageError e) {
                Log.debug("diagnostic commands through the platform MBeanServer: " + e);
            }
        }
        return execute;
    }

    /**
     * Runs a diagnostic command by its MBean operation name ({@code gcHeapInfo} for
     * {@code GC.heap_info}, {@code vmNativeMemory} for {@code VM.native_memory}).
     */
    static String invoke(String operation, String... args) throws Exception {
        String command = COMMANDS.get(operation);
        Internals.MethodRef exec = command == null ? null : direct();
        if (command != null && (exec != null || viaNativeNow())) {
            StringBuilder line = new StringBuilder();
            for (String a : args) {
                line.append(line.length() == 0 ? "" : " ").append(a);
            }
            if (exec != null) {
                return (String) exec.invoke(direct, line.length() == 0 ? command : command + " " + line);
            }
            try {
                return NativeCore.diagnosticCommand(NATIVE_COMMANDS.get(operation), line.toString());
            } catch (UnsupportedOperationException e) {
                Log.debug("diagnostic command " + operation + " through the platform MBeanServer: " + e.getMessage());
            }
        }
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

    private static synchronized boolean viaNativeNow() {
        return viaNative;
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

    /** Loads jdk.management's native library, as its platform bean provider does when initialized. */
    private static void loadManagementExt() throws ClassNotFoundException {
        Class.forName("com.sun.management.internal.PlatformMBeanProviderImpl", true, ClassLoader.getSystemClassLoader());
    }

    /** A HotSpot VM option's value ({@code -XX:Name}), or null where the JVM has no such option. */
    static String vmOption(String name) {
        if (Internals.nativeRoute()) {
            try {
                // What HotSpotDiagnostic.getVMOption does, without ManagementFactory (see PlatformBeans).
                // Flag's natives are in management_ext: loaded first, or Flag's initialization
                // fails for good (and HotSpotDiagnostic with it).
                loadManagementExt();
                return NativeCore.vmOption(name);
            } catch (Exception | LinkageError e) {
                Log.debug("VM option " + name + " through ManagementFactory: " + ZipCensus.describe(e));
            }
        }
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
