package io.offheapdoctor;

import java.io.File;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;

/**
 * {@code java -jar offheap-doctor.jar ...}: attach the agent to a running JVM, run the demo
 * workload, or print the version.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 0 || args[0].equals("help") || args[0].equals("--help") || args[0].equals("-h")) {
            usage();
            return;
        }
        String cmd = args[0];
        if (cmd.equals("version") || cmd.equals("--version")) {
            System.out.println("offheap-doctor " + Main.class.getPackage().getImplementationVersion());
            return;
        }
        if (cmd.equals("demo")) {
            io.offheapdoctor.demo.Demo.main(rest(args));
            return;
        }
        if (cmd.matches("\\d+")) {
            String options = args.length > 1 ? args[1] : "";
            System.exit(attach(cmd, options));
        }
        System.err.println("offheap-doctor: unknown command '" + cmd + "'");
        usage();
        System.exit(2);
    }

    private static String[] rest(String[] args) {
        String[] r = new String[args.length - 1];
        System.arraycopy(args, 1, r, 0, r.length);
        return r;
    }

    private static void usage() {
        System.out.println("usage: java -jar offheap-doctor.jar <pid> [key=value,...]   load the agent into a running JVM");
        System.out.println("       java -jar offheap-doctor.jar demo [seconds]           run the demo workload (start it with -javaagent)");
        System.out.println("       java -jar offheap-doctor.jar version");
        System.out.println("options: " + Options.KEYS.keySet());
    }

    /** Loads this jar as an agent into {@code pid}; returns the process exit code. */
    static int attach(String pid, String options) {
        String jar;
        try {
            jar = new File(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getAbsolutePath();
        } catch (Exception e) {
            System.err.println("offheap-doctor: cannot locate my own jar: " + e);
            return 1;
        }
        Class<?> vmClass;
        try {
            vmClass = attachApi();
        } catch (Exception e) {
            System.err.println("offheap-doctor: the attach API is not available in this Java runtime"
                    + " (a JRE or a jlinked image without jdk.attach); run this command with a full JDK");
            return 1;
        }
        try {
            Object vm = vmClass.getMethod("attach", String.class).invoke(null, pid);
            try {
                vmClass.getMethod("loadAgent", String.class, String.class).invoke(vm, jar, options);
            } finally {
                vmClass.getMethod("detach").invoke(vm);
            }
        } catch (InvocationTargetException e) {
            System.err.println("offheap-doctor: cannot attach to " + pid + ": " + e.getCause());
            return 1;
        } catch (ReflectiveOperationException e) {
            System.err.println("offheap-doctor: cannot attach to " + pid + ": " + e);
            return 1;
        }
        System.out.println("offheap-doctor loaded into " + pid + (options.isEmpty() ? "" : " with " + options));
        return 0;
    }

    private static Class<?> attachApi() throws Exception {
        try {
            return Class.forName("com.sun.tools.attach.VirtualMachine");
        } catch (ClassNotFoundException e) {
            // JDK 8 keeps the attach API in lib/tools.jar, outside the class path.
            File tools = new File(System.getProperty("java.home"), "../lib/tools.jar");
            if (!tools.isFile()) {
                throw e;
            }
            URLClassLoader cl = new URLClassLoader(new URL[] {tools.toURI().toURL()}, Main.class.getClassLoader());
            Method m = Class.class.getMethod("forName", String.class, boolean.class, ClassLoader.class);
            return (Class<?>) m.invoke(null, "com.sun.tools.attach.VirtualMachine", true, cl);
        }
    }
}
