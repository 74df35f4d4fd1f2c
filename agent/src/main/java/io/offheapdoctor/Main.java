package io.offheapdoctor;

import java.io.File;
import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;

/**
 * {@code java -jar offheap-doctor.jar ...}: attach the agent to a running JVM, run the demo
 * workload, or print the version.
 */
public final class Main {
    /** When {@link #main} began, for the phase timings of the attach commands. */
    static final long MAIN_ENTERED = System.nanoTime();

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
        if (cmd.equals("agentpath")) {
            System.exit(agentpath(rest(args)));
        }
        if (cmd.equals("html")) {
            System.exit(html(rest(args)));
        }
        if (cmd.matches("\\d+")) {
            System.exit(forPid(cmd, rest(args)));
        }
        System.err.println("offheap-doctor: unknown command '" + cmd + "'");
        usage();
        System.exit(2);
    }

    /** {@code html <report.jsonl> [-o out.html]}: the timeline page of a report file. */
    private static int html(String[] args) {
        String in = null;
        String out = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("-o") && i + 1 < args.length) {
                out = args[++i];
            } else if (in == null) {
                in = args[i];
            } else {
                System.err.println("offheap-doctor: html takes one report file and -o <out.html>");
                return 2;
            }
        }
        if (in == null) {
            System.err.println("offheap-doctor: usage: html <report.jsonl> [-o out.html]");
            return 2;
        }
        if (out == null) {
            out = in.replaceAll("\\.jsonl?$", "") + ".html";
        }
        Log.setLevel(Log.Level.QUIET);
        final String report = in;
        final String[] said = new String[1];
        try {
            // Written as the agent writes its files: a fresh file of ours renamed over the target,
            // so a link planted at -o is refused, never followed.
            java.nio.file.Path written = SafeFiles.replace(java.nio.file.Paths.get(out), new SafeFiles.Content() {
                @Override
                public void writeTo(java.nio.file.Path fresh) {
                    said[0] = NativeCore.renderTimeline(report, fresh.toString());
                }
            });
            System.out.println("offheap-doctor: " + said[0] + " -> " + written);
            return 0;
        } catch (IOException e) {
            System.err.println("offheap-doctor: cannot write " + out + ": " + e.getMessage());
            return 1;
        } catch (RuntimeException e) {
            System.err.println("offheap-doctor: " + e.getMessage());
            return 1;
        }
    }

    /**
     * {@code agentpath [dir] [arenaMax=2,...]}: extracts the native library and prints the
     * {@code -agentpath:} flag that applies the malloc settings before the JVM starts its threads.
     */
    private static int agentpath(String[] args) {
        String dir = null;
        String settings = null;
        for (String a : args) {
            if (a.contains("=") && settings == null) {
                settings = a;
            } else if (!a.contains("=") && dir == null) {
                dir = a;
            } else {
                System.err.println("offheap-doctor: usage: agentpath [dir] [arenaMax=2,mmapThreshold=128k,...]");
                return 2;
            }
        }
        if (settings != null) {
            // Checked as the agent checks them, each part on its own: one line per bad part.
            java.util.List<String> problems = new java.util.ArrayList<>();
            for (String part : settings.split(",")) {
                part = part.trim();
                String key = part.split("=", 2)[0].trim();
                if (part.isEmpty() || part.equals("tune=auto")) {
                    continue;
                }
                if (key.matches("arenaMax|mmapThreshold|trimThreshold|topPad")) {
                    // The option parser's lines end in "; ignored" (the agent goes on without
                    // them); here nothing is printed but the problem, so that ending is dropped.
                    for (String p : Options.parse(part, null).problems) {
                        problems.add(p.endsWith("; ignored") ? p.substring(0, p.length() - "; ignored".length()) : p);
                    }
                } else {
                    problems.add("'" + part + "': -agentpath takes only tune=auto, arenaMax, mmapThreshold,"
                            + " trimThreshold and topPad");
                }
            }
            if (!problems.isEmpty()) {
                for (String p : problems) {
                    System.err.println("offheap-doctor: " + p);
                }
                return 2;
            }
        }
        try {
            String path = NativeLoader.extractForAgentpath(dir);
            System.out.println("-agentpath:" + path + "=" + (settings == null ? "tune=auto" : settings));
            return 0;
        } catch (IOException | RuntimeException e) {
            System.err.println("offheap-doctor: cannot extract the native library: " + e.getMessage());
            return 1;
        }
    }

    private static String[] rest(String[] args) {
        String[] r = new String[args.length - 1];
        System.arraycopy(args, 1, r, 0, r.length);
        return r;
    }

    /** {@code <pid> [key=value,...]}, {@code <pid> start [key=value,...]} or {@code <pid> <command> [key=value,...]}. */
    private static int forPid(String pid, String[] args) {
        if (args.length == 0) {
            return attach(pid, "");
        }
        String what = args[0];
        boolean start = what.equals("start");
        boolean command = !start && RemoteCommand.isCommand(what);
        boolean legacy = !start && !command && what.contains("=");
        if (!start && !command && !legacy) {
            System.err.println("offheap-doctor: unknown command '" + what + "'; use report, json, sample, trim, baseline,"
                    + " policy <off|auto|interval>, watch [interval], html=<file>, sites <start|stop|report>, start,"
                    + " or key=value options");
            return 2;
        }
        if (what.equals("policy")) {
            // policy <value> [options]: the same as policy=<value>.
            if (args.length < 2 || args[1].isEmpty()) {
                System.err.println("offheap-doctor: policy needs a value: off, auto or an interval such as 30s");
                return 2;
            }
            if (args.length > 3) {
                System.err.println("offheap-doctor: too many arguments after 'policy " + args[1] + "'");
                return 2;
            }
            return RemoteCommand.run(pid, "policy " + args[1], args.length > 2 ? args[2] : "");
        }
        if (what.equals("sites")) {
            // sites start|stop|report [options]
            if (args.length < 2 || !args[1].matches("start|stop|report")) {
                System.err.println("offheap-doctor: sites needs start, stop or report");
                return 2;
            }
            if (args.length > 3) {
                System.err.println("offheap-doctor: too many arguments after 'sites " + args[1] + "'");
                return 2;
            }
            return RemoteCommand.run(pid, RemoteCommand.SITES + args[1], args.length > 2 ? args[2] : "");
        }
        if (what.equals("watch")) {
            // watch [interval] [options]
            String interval = "";
            int next = 1;
            if (args.length > 1 && !args[1].contains("=")) {
                interval = args[1];
                next = 2;
                if (Watch.parseInterval(interval) < 0) {
                    System.err.println("offheap-doctor: watch interval '" + interval
                            + "' is not a duration such as 2s, 500ms or 1m");
                    return 2;
                }
            }
            if (args.length > next + 1) {
                System.err.println("offheap-doctor: too many arguments after 'watch'; use watch [interval] [key=value,...]");
                return 2;
            }
            return RemoteCommand.run(pid, "watch=" + interval, args.length > next ? args[next] : "");
        }
        if (args.length > (legacy ? 1 : 2)) {
            System.err.println("offheap-doctor: too many arguments after '" + what + "'; options are one key=value,... argument");
            return 2;
        }
        if (legacy) {
            return attach(pid, what);
        }
        String options = args.length > 1 ? args[1] : "";
        return start ? attach(pid, options) : RemoteCommand.run(pid, what, options);
    }

    private static void usage() {
        System.out.println("usage: java -jar offheap-doctor.jar <pid> [start] [key=value,...]  load the agent into a running JVM");
        System.out.println("       java -jar offheap-doctor.jar <pid> <command> [key=value,...]  ask the agent (loading it first if needed):");
        System.out.println("           report   the latest sample as text      json      the latest sample as JSON");
        System.out.println("           sample   take a sample now (JSON)        trim      malloc_trim now");
        System.out.println("           baseline measure growth from now         policy <off|auto|interval>  set the trim policy");
        System.out.println("           html=<out.html>  write the timeline page of the JVM's samples so far");
        System.out.println("           watch [interval]  a live view, a fresh sample every interval (default 2s) until Ctrl-C");
        System.out.println("           sites start|stop|report  native call sites: sample the libraries' malloc calls (at");
        System.out.println("                    nativeSitesRate), stop and restore every entry, or show the top sites now");
        System.out.println("       java -jar offheap-doctor.jar agentpath [dir] [tune=auto|arenaMax=2,...]  extract the native library and print");
        System.out.println("           the -agentpath flag that applies malloc settings before the JVM starts its threads");
        System.out.println("       java -jar offheap-doctor.jar html <report.jsonl> [-o out.html]  the timeline page of a report");
        System.out.println("       java -jar offheap-doctor.jar demo [seconds]           run the demo workload (start it with -javaagent)");
        System.out.println("       java -jar offheap-doctor.jar version");
        System.out.println("options: " + Options.KEYS.keySet());
    }

    /** Loads this jar as an agent into {@code pid}; returns the process exit code. */
    static int attach(String pid, String options) {
        String jar = ownJar();
        if (jar == null) {
            return 1;
        }
        Class<?> vmClass = attachApiOrNull();
        if (vmClass == null) {
            return 1;
        }
        String notAttachable = RemoteCommand.notAttachable(pid);
        if (notAttachable != null) {
            System.err.println("offheap-doctor: cannot attach to " + pid + ": " + notAttachable);
            return 1;
        }
        RemoteCommand.warnIfRootAgainstOtherUser(pid);
        try {
            Object vm = RemoteCommand.attach(vmClass, pid);
            try {
                vmClass.getMethod("loadAgent", String.class, String.class).invoke(vm, jar, options);
            } finally {
                vmClass.getMethod("detach").invoke(vm);
            }
        } catch (InvocationTargetException e) {
            System.err.println("offheap-doctor: cannot attach to " + pid + ": "
                    + RemoteCommand.printable(RemoteCommand.attachFailure(e.getCause())));
            return 1;
        } catch (ReflectiveOperationException e) {
            System.err.println("offheap-doctor: cannot attach to " + pid + ": " + RemoteCommand.printable(e.toString()));
            return 1;
        }
        System.out.println("offheap-doctor loaded into " + pid + (options.isEmpty() ? "" : " with " + options));
        return 0;
    }

    /** The path of this jar; null, after saying why on stderr, when it cannot be found. */
    static String ownJar() {
        try {
            return new File(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getAbsolutePath();
        } catch (Exception e) {
            System.err.println("offheap-doctor: cannot locate my own jar: " + e);
            return null;
        }
    }

    /** The attach API's VirtualMachine class; null, after saying why on stderr, when this runtime lacks it. */
    static Class<?> attachApiOrNull() {
        try {
            return attachApi();
        } catch (Exception e) {
            System.err.println("offheap-doctor: the attach API is not available in this Java runtime"
                    + " (a JRE or a jlinked image without jdk.attach); run this command with a full JDK");
            return null;
        }
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
