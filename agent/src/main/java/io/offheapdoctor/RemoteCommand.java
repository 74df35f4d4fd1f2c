package io.offheapdoctor;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.Properties;
import javax.management.JMException;
import javax.management.MBeanException;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.openmbean.CompositeData;
import javax.management.RuntimeMBeanException;
import javax.management.RuntimeOperationsException;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

/**
 * {@code java -jar offheap-doctor.jar <pid> <command>}: asks the agent in another JVM through
 * its MBean, loading the agent first when that JVM does not run it yet. The path: the attach
 * API connects to the target; the target's local JMX connector is started (or found) through
 * the same attach connection; the command is one MBean operation over that connector. Everything
 * the target answers goes to stdout; every failure is one line on stderr and exit code 1.
 */
final class RemoteCommand {
    static final String LOCAL_CONNECTOR_ADDRESS = "com.sun.management.jmxremote.localConnectorAddress";

    /** How long a freshly loaded agent may take to register its MBean (it loads its native core first). */
    static final long REGISTER_TIMEOUT_MS = 30_000;

    private RemoteCommand() {}

    /** Whether {@code arg} names a command (as opposed to agent options). */
    static boolean isCommand(String arg) {
        switch (arg) {
            case "report":
            case "json":
            case "sample":
            case "trim":
            case "baseline":
            case "policy":
            case "watch":
            case "sites":
                return true;
            default:
                return arg.startsWith("policy=") || arg.startsWith("html=");
        }
    }

    /** Runs {@code command} in {@code pid}; {@code options} apply only if the agent is loaded now. */
    static int run(String pid, String command, String options) {
        String jar = Main.ownJar();
        if (jar == null) {
            return 1;
        }
        Class<?> vmClass = Main.attachApiOrNull();
        if (vmClass == null) {
            return 1;
        }
        String notAttachable = notAttachable(pid);
        if (notAttachable != null) {
            return fail("cannot attach to " + pid + ": " + notAttachable);
        }
        warnIfRootAgainstOtherUser(pid);
        SerialFilter.install();
        Timing.phase("checks");
        Object vm;
        try {
            vm = attach(vmClass, pid);
            Timing.phase("attach");
        } catch (InvocationTargetException e) {
            return fail("cannot attach to " + pid + ": " + attachFailure(e.getCause()));
        } catch (ReflectiveOperationException e) {
            return fail("cannot attach to " + pid + ": " + describe(e));
        }
        try {
            if (command.equals("report") || command.equals("json") || command.startsWith(SITES)) {
                Integer done = withoutJmx(vmClass, vm, pid, jar, command, options);
                if (done != null) {
                    return done;
                }
            }
            String address;
            try {
                address = localConnector(vmClass, vm);
                Timing.phase("local JMX connector in the target");
            } catch (Exception e) {
                return fail("cannot start the JMX connector in " + pid + ": " + describe(unwrap(e)));
            }
            if (address == null) {
                return fail("cannot start the JMX connector in " + pid + ": the JVM published no local connector address");
            }
            try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(address))) {
                MBeanServerConnection server = connector.getMBeanServerConnection();
                ObjectName name = new ObjectName(OffHeapDoctorMXBean.OBJECT_NAME);
                Timing.phase("JMX connect");
                boolean registered = server.isRegistered(name);
                boolean runs = registered || agentRuns(server);
                Timing.phase("agent lookup");
                if (runs) {
                    // With mbean=auto a running agent registers once the connector's start made
                    // the platform MBeanServer; it looks five times a second.
                    if (!registered && !awaitRegistration(server, name)) {
                        return fail("the agent in " + pid + " runs but did not register " + OffHeapDoctorMXBean.OBJECT_NAME
                                + " within " + REGISTER_TIMEOUT_MS / 1000 + "s (started with mbean=off?)");
                    }
                    Timing.phase("MBean wait");
                    if (!options.isEmpty()) {
                        System.err.println("offheap-doctor: the agent already runs in " + pid + "; options ignored: " + options);
                    }
                } else {
                    try {
                        vmClass.getMethod("loadAgent", String.class, String.class).invoke(vm, jar, options);
                    } catch (InvocationTargetException e) {
                        return fail("cannot load the agent into " + pid + ": " + attachFailure(e.getCause()));
                    }
                    Timing.phase("load agent");
                    System.err.println("offheap-doctor: loaded the agent into " + pid
                            + (options.isEmpty() ? "" : " with " + options));
                    String release = dynamicAgentWarning(server);
                    if (release != null) {
                        System.err.println("offheap-doctor: note: Java " + release + " in " + pid + " printed a warning"
                                + " on its stderr about a dynamically loaded agent (JEP 451); start it with"
                                + " -XX:+EnableDynamicAgentLoading, or with -javaagent, to avoid it");
                    }
                    Timing.phase("JEP 451 check");
                    if (!awaitRegistration(server, name)) {
                        return fail("the agent in " + pid + " did not register " + OffHeapDoctorMXBean.OBJECT_NAME
                                + " within " + REGISTER_TIMEOUT_MS / 1000 + "s; its stderr says why");
                    }
                    Timing.phase("MBean wait");
                }
                if (command.startsWith("watch")) {
                    return Watch.run(server, name, pid, command.length() > "watch=".length()
                            ? command.substring("watch=".length()) : "");
                }
                Object answer = invoke(server, name, command);
                Timing.phase(command);
                if (notDone(answer)) {
                    return fail(String.valueOf(answer));
                }
                String text = printable(String.valueOf(answer));
                System.out.print(text.endsWith("\n") ? text : text + System.lineSeparator());
                System.out.flush();
                return 0;
            } catch (MBeanException | RuntimeMBeanException | RuntimeOperationsException e) {
                return fail(shown(command) + " failed in " + pid + ": " + describe(unwrap(e)));
            } catch (IOException e) {
                if (refusedByFilter(e)) {
                    return fail(pid + " answered " + command + " with an object of a class no JMX client needs;"
                            + " the deserialization filter refused it unread (" + describe(e.getCause()) + ")");
                }
                // Not the address: its stub part is the key to the connector, which stays up.
                return fail("cannot talk to the JMX connector of " + pid + ": " + withoutAddress(describe(e), address));
            } catch (JMException | RuntimeException e) {
                return fail(shown(command) + " failed in " + pid + ": " + describe(unwrap(e)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return fail("interrupted while waiting for the agent in " + pid);
            } catch (ReflectiveOperationException e) {
                return fail("cannot load the agent into " + pid + ": " + describe(e));
            }
        } finally {
            try {
                vmClass.getMethod("detach").invoke(vm);
            } catch (ReflectiveOperationException ignored) {
                // The target may have exited meanwhile; there is nothing left to release.
            }
            Timing.phase("close");
        }
    }

    /**
     * Phase timings of a command on stderr, with {@code OFFHEAP_DOCTOR_TIMING=1}: where an attach
     * spends its time (this JVM's own start, the attach, the target's JMX connector, the agent's
     * start and first sample, the call), to tell a slow target from a slow machine.
     */
    static final class Timing {
        static final boolean ON = "1".equals(System.getenv("OFFHEAP_DOCTOR_TIMING"));
        private static long last = -1;

        private Timing() {}

        static void phase(String what) {
            if (!ON) {
                return;
            }
            long now = System.nanoTime();
            if (last < 0) {
                long sinceStart = sinceProcessStartMs();
                System.err.println("offheap-doctor: timing: JVM start to main "
                        + (sinceStart < 0 ? "unknown" : sinceStart + " ms"));
                last = Main.MAIN_ENTERED;
            }
            System.err.println("offheap-doctor: timing: " + what + " " + (now - last) / 1_000_000 + " ms");
            last = now;
        }

        /** Milliseconds from this process's start to {@link Main}'s first line, from /proc (10 ms steps). */
        private static long sinceProcessStartMs() {
            long startTicks = startTicks("self");
            if (startTicks < 0) {
                return -1;
            }
            try {
                String up = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get("/proc/uptime")),
                        java.nio.charset.StandardCharsets.US_ASCII);
                double uptime = Double.parseDouble(up.split(" ")[0]);
                long mainAt = (long) (uptime * 1000) - (System.nanoTime() - Main.MAIN_ENTERED) / 1_000_000;
                return mainAt - startTicks * 10;
            } catch (IOException | RuntimeException e) {
                return -1;
            }
        }
    }

    /**
     * {@code report} or {@code json} into a JVM that does not run the agent yet, without JMX: the
     * agent is loaded with the command, takes its first sample and leaves the answer in a system
     * property that the attach connection reads back. The exit code; null when the agent runs
     * already (its MBean answers, and loading it again would make a Java 21 or later JVM print
     * JEP 451's warning again) or when no answer came back (then the JMX path asks the agent,
     * which is loaded by now).
     */
    private static Integer withoutJmx(Class<?> vmClass, Object vm, String pid, String jar, String command,
            String options) {
        Properties props;
        try {
            props = (Properties) vmClass.getMethod("getSystemProperties").invoke(vm);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;
        }
        if (props.getProperty(Agent.RUNNING_PROPERTY) != null) {
            return null;
        }
        String nonce = Long.toHexString(System.nanoTime()) + Long.toHexString(Double.doubleToLongBits(Math.random()));
        try {
            vmClass.getMethod("loadAgent", String.class, String.class).invoke(vm, jar, "@" + command + " " + nonce + " " + options);
        } catch (InvocationTargetException e) {
            return fail("cannot load the agent into " + pid + ": " + attachFailure(e.getCause()));
        } catch (ReflectiveOperationException e) {
            return fail("cannot load the agent into " + pid + ": " + describe(e));
        }
        Timing.phase("load agent and " + command);
        System.err.println("offheap-doctor: loaded the agent into " + pid + (options.isEmpty() ? "" : " with " + options));
        String release = dynamicAgentWarning(vmClass, vm, props);
        if (release != null) {
            System.err.println("offheap-doctor: note: Java " + release + " in " + pid + " printed a warning"
                    + " on its stderr about a dynamically loaded agent (JEP 451); start it with"
                    + " -XX:+EnableDynamicAgentLoading, or with -javaagent, to avoid it");
        }
        String reply;
        try {
            reply = ((Properties) vmClass.getMethod("getSystemProperties").invoke(vm))
                    .getProperty(Agent.REPLY_PROPERTY + nonce);
        } catch (ReflectiveOperationException | RuntimeException e) {
            reply = null;
        }
        Timing.phase("answer");
        if (reply == null || reply.isEmpty()) {
            return null;
        }
        if (reply.charAt(0) != '0') {
            return fail(shown(command) + " failed in " + pid + ": " + reply.substring(1));
        }
        String text = printable(reply.substring(1));
        System.out.print(text.endsWith("\n") ? text : text + System.lineSeparator());
        System.out.flush();
        return 0;
    }

    /**
     * As {@link #dynamicAgentWarning(MBeanServerConnection)}, from what the attach connection
     * tells: Java 21 or later, and no {@code EnableDynamicAgentLoading} among the JVM's options
     * (its command line, JAVA_TOOL_OPTIONS included, or its flags file).
     */
    static String dynamicAgentWarning(Class<?> vmClass, Object vm, Properties props) {
        String release = props.getProperty("java.specification.version", "");
        if (!release.matches("\\d+") || Integer.parseInt(release) < 21) {
            return null;
        }
        try {
            Properties agent = (Properties) vmClass.getMethod("getAgentProperties").invoke(vm);
            String options = agent.getProperty("sun.jvm.args", "") + " " + agent.getProperty("sun.jvm.flags", "");
            return options.contains("EnableDynamicAgentLoading") ? null : release;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return release;
        }
    }

    /**
     * Why {@code pid} cannot be attached to, found before trying: no such process, or a process
     * without a JVM in it (the attach API would send it a SIGQUIT, which kills most programs).
     * Null when it looks like a JVM, or when /proc does not say (another user's process).
     */
    static String notAttachable(String pid) {
        File proc = new File("/proc/" + pid);
        if (!new File("/proc/self").exists()) {
            return null;
        }
        if (!proc.exists()) {
            return "no such process";
        }
        String otherUser = otherUser(pid, proc);
        if (otherUser != null) {
            return otherUser;
        }
        byte[] maps;
        try {
            maps = java.nio.file.Files.readAllBytes(new File(proc, "maps").toPath());
        } catch (IOException | RuntimeException e) {
            return null;
        }
        if (maps.length == 0) {
            return null;
        }
        String text = new String(maps, java.nio.charset.StandardCharsets.ISO_8859_1);
        if (text.contains("/libjvm.so")) {
            return null;
        }
        String name = "";
        try {
            name = new String(java.nio.file.Files.readAllBytes(new File(proc, "comm").toPath()),
                    java.nio.charset.StandardCharsets.UTF_8).trim();
        } catch (IOException | RuntimeException ignored) {
            // The name is only for the message.
        }
        return "not a Java process" + (name.isEmpty() ? "" : " (" + name + ")") + ": it has no libjvm.so mapped";
    }

    /**
     * Who the target and this command run as, when HotSpot would refuse the attach for it: this
     * command neither root nor of the target's effective uid. Null otherwise, or when /proc does
     * not say.
     */
    static String otherUser(String pid, File proc) {
        long mine = effectiveUid(new File("/proc/self/status"));
        long theirs = effectiveUid(new File(proc, "status"));
        if (mine < 0 || theirs < 0 || mine == 0 || mine == theirs) {
            return null;
        }
        String user = userName(theirs);
        return "it runs as " + who(user, theirs) + " and this command as " + who(userName(mine), mine)
                + "; a JVM accepts only its own user or root: run the command as that user (sudo -u "
                + (user == null ? "'#" + theirs + "'" : user) + " java -jar offheap-doctor.jar " + pid + " ...)";
    }

    private static String who(String name, long uid) {
        return name == null ? "uid " + uid : name + " (uid " + uid + ")";
    }

    /** The effective uid in a /proc status file; -1 when it cannot be read. */
    private static long effectiveUid(File status) {
        try {
            for (String line : java.nio.file.Files.readAllLines(status.toPath(),
                    java.nio.charset.StandardCharsets.UTF_8)) {
                if (line.startsWith("Uid:")) {
                    String[] ids = line.substring(4).trim().split("\\s+");
                    return ids.length > 1 ? Long.parseLong(ids[1]) : -1;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    /** The name /etc/passwd gives {@code uid}; null when it has none. */
    private static String userName(long uid) {
        try {
            for (String line : java.nio.file.Files.readAllLines(new File("/etc/passwd").toPath(),
                    java.nio.charset.StandardCharsets.UTF_8)) {
                String[] f = line.split(":", -1);
                if (f.length > 2 && f[2].equals(Long.toString(uid)) && !f[0].isEmpty()) {
                    return f[0];
                }
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
        return null;
    }

    /**
     * The target's Java feature release when it printed JEP 451's warning about a dynamically
     * loaded agent: Java 21 or later, with {@code EnableDynamicAgentLoading} left at its default.
     * Null otherwise, or when the target does not say.
     */
    static String dynamicAgentWarning(MBeanServerConnection server) {
        try {
            String release = String.valueOf(
                    server.getAttribute(new ObjectName("java.lang:type=Runtime"), "SpecVersion"));
            if (!release.matches("\\d+") || Integer.parseInt(release) < 21) {
                return null;
            }
            Object option = server.invoke(new ObjectName("com.sun.management:type=HotSpotDiagnostic"), "getVMOption",
                    new Object[] {"EnableDynamicAgentLoading"}, new String[] {String.class.getName()});
            if (option instanceof CompositeData
                    && "DEFAULT".equals(String.valueOf(((CompositeData) option).get("origin")))) {
                return release;
            }
        } catch (JMException | IOException | RuntimeException e) {
            // Not HotSpot, or no such option: no warning to explain.
        }
        return null;
    }

    /**
     * {@code VirtualMachine.attach(pid)}, once more after removing a stale attach socket. A JVM
     * killed with SIGKILL leaves its {@code .java_pid<pid>} socket behind; a later process with
     * the same pid (pids wrap at 32768 on many hosts) then looks attachable, the JDK's client
     * connects to the dead socket without signalling the target and fails with "Connection
     * refused". Where the target would have to replace the file itself it often cannot (the
     * sticky /tmp keeps another user's file). A socket older than the process cannot be its own.
     */
    static Object attach(Class<?> vmClass, String pid) throws ReflectiveOperationException {
        Method attach = vmClass.getMethod("attach", String.class);
        try {
            return attach.invoke(null, pid);
        } catch (InvocationTargetException e) {
            String msg = e.getCause() == null ? null : e.getCause().getMessage();
            if (msg == null || !msg.contains("Connection refused") || !removeStaleSocket(pid)) {
                throw e;
            }
            return attach.invoke(null, pid);
        }
    }

    /** Removes the target's attach socket when it predates the process; whether it did. */
    static boolean removeStaleSocket(String pid) {
        long started = startMillis(pid);
        if (started <= 0) {
            return false;
        }
        java.util.List<java.nio.file.Path> candidates = new java.util.ArrayList<java.nio.file.Path>();
        String nsPid = namespacePid(pid);
        candidates.add(java.nio.file.Paths.get("/proc", pid, "root", "tmp", ".java_pid" + nsPid));
        candidates.add(java.nio.file.Paths.get("/tmp", ".java_pid" + pid));
        for (java.nio.file.Path socket : candidates) {
            try {
                java.nio.file.attribute.BasicFileAttributes a = java.nio.file.Files.readAttributes(socket,
                        java.nio.file.attribute.BasicFileAttributes.class, java.nio.file.LinkOption.NOFOLLOW_LINKS);
                // A socket is "other": neither a file, a directory nor a link.
                if (!a.isOther() || a.lastModifiedTime().toMillis() >= started) {
                    continue;
                }
                java.nio.file.Files.delete(socket);
                System.err.println("offheap-doctor: removed " + printable(socket.toString())
                        + ", a stale attach socket left by an earlier process with pid " + pid);
                return true;
            } catch (IOException | RuntimeException e) {
                // Absent, or not ours to remove: the attach's own error stands.
            }
        }
        return false;
    }

    /** When the process started, in milliseconds since the epoch, from /proc; 0 if unknown. */
    static long startMillis(String pid) {
        long ticks = startTicks(pid);
        if (ticks < 0) {
            return 0;
        }
        try {
            long bootSeconds = 0;
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Paths.get("/proc/stat"),
                    java.nio.charset.StandardCharsets.ISO_8859_1)) {
                if (line.startsWith("btime ")) {
                    bootSeconds = Long.parseLong(line.substring(6).trim());
                }
            }
            // USER_HZ is 100 on every Linux ABI the agent ships for; a second's slack for btime's rounding.
            return bootSeconds <= 0 ? 0 : bootSeconds * 1000 + ticks * 10 - 1000;
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /**
     * When a process ({@code self} or a pid) started, in clock ticks since boot (USER_HZ, 100 on
     * every Linux ABI the agent ships for), from /proc; -1 if unknown.
     */
    static long startTicks(String pid) {
        try {
            String stat = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get("/proc", pid, "stat")),
                    java.nio.charset.StandardCharsets.ISO_8859_1);
            // Fields after the command name, which may hold spaces and parentheses: starttime is
            // the 22nd field, the 20th after the closing parenthesis.
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
            return Long.parseLong(f[19]);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** The target's pid inside its own pid namespace (the name of its socket there). */
    private static String namespacePid(String pid) {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Paths.get("/proc", pid, "status"),
                    java.nio.charset.StandardCharsets.ISO_8859_1)) {
                if (line.startsWith("NSpid:")) {
                    String[] f = line.substring(6).trim().split("\\s+");
                    return f[f.length - 1];
                }
            }
        } catch (IOException | RuntimeException e) {
            // No namespaces to speak of.
        }
        return pid;
    }

    /** The attach API's failure in words, naming the usual causes. */
    static String attachFailure(Throwable t) {
        String msg = t == null ? null : t.getMessage();
        if (msg != null && msg.contains("Dynamic agent loading is not enabled")) {
            return "that JVM refuses dynamically loaded agents (it was started with -XX:-EnableDynamicAgentLoading);"
                    + " start it with -XX:+EnableDynamicAgentLoading, or with -javaagent";
        }
        if (msg != null && msg.contains("does not support the attach mechanism")) {
            return "attach is disabled in that JVM (it was started with -XX:+DisableAttachMechanism);"
                    + " start it with -javaagent instead";
        }
        if (msg != null && (msg.contains("Permission denied") || msg.contains("file owner")
                || msg.contains("Operation not permitted"))) {
            return describe(t) + " (attach as the user the JVM runs as)";
        }
        return describe(t);
    }

    /** The internal form of {@code sites start|stop|report}: one word, as the attach request wants. */
    static final String SITES = "sites=";

    /** A command as the user wrote it. */
    static String shown(String command) {
        return command.startsWith(SITES) ? "sites " + command.substring(SITES.length()) : command;
    }

    /** Whether {@code answer} says the native call sites did not start or stop: exit code 1, on stderr. */
    static boolean notDone(Object answer) {
        String a = String.valueOf(answer);
        return a.startsWith(Doctor.NOT_STARTED) || a.startsWith(Doctor.NOT_STOPPED);
    }

    /** The MBean operation of {@code sites=<what>}, or null for another word. */
    static String sitesOperation(String command) {
        switch (command) {
            case SITES + "start":
                return "startNativeSites";
            case SITES + "stop":
                return "stopNativeSites";
            case SITES + "report":
                return "nativeSitesReport";
            default:
                return null;
        }
    }

    private static Object invoke(MBeanServerConnection server, ObjectName name, String command)
            throws JMException, IOException {
        String op;
        Object[] params = new Object[0];
        String[] signature = new String[0];
        switch (command) {
            case "report":
                op = "reportText";
                break;
            case "json":
                op = "reportJson";
                break;
            case "sample":
                op = "sampleNow";
                break;
            case "trim":
                op = "trimNow";
                break;
            case "baseline":
                op = "setBaseline";
                break;
            default:
                if (sitesOperation(command) != null) {
                    op = sitesOperation(command);
                    break;
                }
                if (command.startsWith("html=")) {
                    op = "writeTimeline";
                    params = new Object[] {new java.io.File(command.substring("html=".length())).getAbsolutePath()};
                } else if (command.startsWith("policy ")) {
                    op = "setTrimPolicy";
                    params = new Object[] {command.substring("policy ".length())};
                } else {
                    op = "setTrimPolicy";
                    params = new Object[] {command.substring("policy=".length())};
                }
                signature = new String[] {String.class.getName()};
        }
        return server.invoke(name, op, params, signature);
    }

    /**
     * Whether the target runs the agent already (its sampler thread is alive), whether or not the
     * MBean is registered yet.
     */
    static boolean agentRuns(MBeanServerConnection server) {
        // Plain attribute and operation calls, not an MXBean proxy: building the proxy (its
        // interface's introspection, a dynamic proxy class) cost this short-lived JVM more than
        // the question itself.
        try {
            ObjectName threading = new ObjectName(ManagementFactory.THREAD_MXBEAN_NAME);
            Object ids = server.getAttribute(threading, "AllThreadIds");
            Object infos = server.invoke(threading, "getThreadInfo", new Object[] {ids}, new String[] {"[J"});
            if (infos instanceof CompositeData[]) {
                for (CompositeData t : (CompositeData[]) infos) {
                    if (t != null && Doctor.THREAD_NAME.equals(t.get("threadName"))) {
                        return true;
                    }
                }
            }
        } catch (IOException | JMException | RuntimeException e) {
            // Unknown: load the agent, which says so if it runs already.
        }
        return false;
    }

    private static boolean awaitRegistration(MBeanServerConnection server, ObjectName name)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + REGISTER_TIMEOUT_MS * 1_000_000L;
        while (!server.isRegistered(name)) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            Thread.sleep(50);
        }
        return true;
    }

    /**
     * The target's local JMX connector address. {@code startLocalManagementAgent} (JDK 8 and
     * later) starts the connector if needed and returns it; a client without that method reads the
     * address the target publishes as an agent property, loading the JDK's management agent
     * first when the target has none yet (the JDK 8 and earlier way).
     */
    private static String localConnector(Class<?> vmClass, Object vm) throws Exception {
        Method start;
        try {
            start = vmClass.getMethod("startLocalManagementAgent");
        } catch (NoSuchMethodException e) {
            start = null;
        }
        if (start != null) {
            return (String) start.invoke(vm);
        }
        String address = agentProperty(vmClass, vm);
        if (address == null) {
            File agent = new File(System.getProperty("java.home"), "lib" + File.separator + "management-agent.jar");
            vmClass.getMethod("loadAgent", String.class, String.class).invoke(vm, agent.getPath(), "com.sun.management.jmxremote");
            address = agentProperty(vmClass, vm);
        }
        return address;
    }

    private static String agentProperty(Class<?> vmClass, Object vm) throws ReflectiveOperationException {
        Properties p = (Properties) vmClass.getMethod("getAgentProperties").invoke(vm);
        return p.getProperty(LOCAL_CONNECTOR_ADDRESS);
    }

    /** The exception that says what went wrong, under the reflection and JMX wrappers. */
    static Throwable unwrap(Throwable t) {
        Throwable e = t;
        for (int i = 0; i < 10 && e != null; i++) {
            Throwable next;
            if (e instanceof InvocationTargetException) {
                next = ((InvocationTargetException) e).getCause();
            } else if (e instanceof MBeanException) {
                next = ((MBeanException) e).getTargetException();
            } else if (e instanceof RuntimeMBeanException) {
                next = ((RuntimeMBeanException) e).getTargetException();
            } else if (e instanceof RuntimeOperationsException) {
                next = ((RuntimeOperationsException) e).getTargetException();
            } else {
                break;
            }
            if (next == null) {
                break;
            }
            e = next;
        }
        return e;
    }

    /** "message" for the exceptions whose class says nothing more, "Class: message" otherwise. */
    static String describe(Throwable t) {
        if (t == null) {
            return "unknown error";
        }
        String msg = t.getMessage();
        if (msg == null || msg.isEmpty()) {
            return t.getClass().getName();
        }
        msg = msg.replace('\n', ' ').replace('\r', ' ');
        if (t instanceof UnsupportedOperationException || t instanceof IllegalArgumentException
                || t instanceof IllegalStateException) {
            return msg;
        }
        return t.getClass().getSimpleName() + ": " + msg;
    }

    private static int fail(String message) {
        System.err.println("offheap-doctor: " + printable(message));
        return 1;
    }

    /** Whether {@code e} comes from {@link SerialFilter} refusing a class. */
    private static boolean refusedByFilter(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof java.io.InvalidClassException && String.valueOf(t.getMessage()).contains("REJECTED")) {
                return true;
            }
        }
        return false;
    }

    /**
     * {@code text} with the connector's address, and any RMI stub in the form a JMX service URL
     * carries it, taken out: a message must not hand out what connects to the target.
     */
    static String withoutAddress(String text, String address) {
        String t = address == null || address.isEmpty() ? text : text.replace(address, "<local connector>");
        return t.replaceAll("/stub/[A-Za-z0-9+/=_-]+", "/stub/...");
    }

    /**
     * {@code text} as it may reach a terminal: without C0 controls other than newline and tab,
     * without DEL and C1 controls, without escape sequences (CSI, OSC, DCS and two-byte ones,
     * each removed whole) and without the Unicode controls that reorder what is shown
     * (bidirectional overrides and isolates). Every string the target JVM chooses goes through
     * this before it is printed: a JVM of another user, or code in it, could otherwise move the
     * cursor, rewrite earlier lines or set the terminal's title.
     */
    static String printable(String text) {
        if (text == null) {
            return "null";
        }
        StringBuilder b = null;
        int n = text.length();
        for (int i = 0; i < n; i++) {
            char c = text.charAt(i);
            boolean keep = c == '\n' || c == '\t'
                    || (c >= 0x20 && c < 0x7f)
                    || (c > 0x9f && !(c >= 0x202a && c <= 0x202e) && !(c >= 0x2066 && c <= 0x2069));
            if (keep) {
                if (b != null) {
                    b.append(c);
                }
                continue;
            }
            if (b == null) {
                b = new StringBuilder(n).append(text, 0, i);
            }
            i = escapeEnd(text, i);
        }
        return b == null ? text : b.toString();
    }

    /**
     * The index of the last char of the control sequence that starts at {@code start}: with ESC,
     * or with its one-char C1 form (CSI 0x9b, OSC 0x9d, DCS 0x90, SOS 0x98, PM 0x9e, APC 0x9f).
     */
    private static int escapeEnd(String text, int start) {
        int n = text.length();
        char first = text.charAt(start);
        char kind;
        int body;
        if (first == 0x1b) {
            if (start + 1 >= n) {
                return start;
            }
            kind = text.charAt(start + 1);
            body = start + 2;
        } else {
            kind = first == 0x9b ? '[' : first == 0x9d ? ']' : first == 0x90 ? 'P' : first == 0x98 ? 'X'
                    : first == 0x9e ? '^' : first == 0x9f ? '_' : 0;
            if (kind == 0) {
                return start;
            }
            body = start + 1;
        }
        if (kind == '[') {
            // CSI: parameter and intermediate bytes, then one final byte.
            int i = body;
            while (i < n && text.charAt(i) >= 0x20 && text.charAt(i) <= 0x3f) {
                i++;
            }
            return i < n && text.charAt(i) >= 0x40 && text.charAt(i) <= 0x7e ? i : i - 1;
        }
        if (kind == ']' || kind == 'P' || kind == 'X' || kind == '^' || kind == '_') {
            // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \\ or 0x9c).
            for (int i = body; i < n; i++) {
                char c = text.charAt(i);
                if (c == 0x07 || c == 0x9c) {
                    return i;
                }
                if (c == 0x1b) {
                    return i + 1 < n && text.charAt(i + 1) == '\\' ? i + 1 : i - 1;
                }
            }
            return n - 1;
        }
        // A two-byte sequence (ESC c, ESC 7, ...), or ESC with intermediates then a final byte.
        int i = start + 1;
        while (i < n && text.charAt(i) >= 0x20 && text.charAt(i) <= 0x2f) {
            i++;
        }
        return i < n && text.charAt(i) >= 0x30 && text.charAt(i) <= 0x7e ? i : i - 1;
    }

    /**
     * Says so when root runs the command against a JVM of another user: what that JVM answers,
     * and the attach socket it listens on, are that user's to shape. The answers are printed
     * with control characters removed and deserialized through {@link SerialFilter}, but
     * running as the JVM's own user ({@code sudo -u}) trusts that user with nothing of root's.
     */
    static void warnIfRootAgainstOtherUser(String pid) {
        long mine = effectiveUid(new File("/proc/self/status"));
        long theirs = effectiveUid(new File("/proc/" + pid + "/status"));
        if (mine != 0 || theirs <= 0) {
            return;
        }
        String user = userName(theirs);
        System.err.println("offheap-doctor: warning: running as root against " + pid + ", a JVM of "
                + printable(who(user, theirs)) + ": what it answers is that user's to choose; prefer sudo -u "
                + (user == null ? "'#" + theirs + "'" : printable(user)) + " java -jar offheap-doctor.jar " + pid + " ...");
    }

    /**
     * A process-wide deserialization filter for this command's JVM, which reads what the
     * target's JMX connector sends. The JMX RMI client takes no filter of its own (its
     * environment's filter keys are the server's), so the filter is the JVM's: this command's
     * process is ours, and it deserializes nothing else. It admits the JMX, RMI and open-type
     * classes and the JDK's plain value and exception classes, with bounds on depth, references,
     * arrays and bytes; anything else fails the command with "REJECTED" instead of running that
     * class's deserialization code. {@code java.io.ObjectInputFilter} on JDK 9 and later,
     * {@code sun.misc.ObjectInputFilter} on 8u121 and later; older runtimes have none. A filter
     * set with {@code -Djdk.serialFilter} stays in force.
     */
    static final class SerialFilter {
        static final String PATTERN = "maxdepth=32;maxrefs=200000;maxarray=4000000;maxbytes=67108864;"
                + "java.lang.*;java.util.*;java.util.concurrent.*;java.io.*;java.nio.file.*;java.net.*;java.math.*;"
                + "java.rmi.**;sun.rmi.**;javax.management.**;com.sun.management.*;io.offheapdoctor.*;!*";

        private SerialFilter() {}

        /** Whether a filter is in force after the call. */
        static boolean install() {
            for (String api : new String[] {"java.io.ObjectInputFilter", "sun.misc.ObjectInputFilter"}) {
                try {
                    Class<?> filter = Class.forName(api);
                    Class<?> config = Class.forName(api + "$Config");
                    if (config.getMethod("getSerialFilter").invoke(null) != null) {
                        return true;
                    }
                    Object f = config.getMethod("createFilter", String.class).invoke(null, PATTERN);
                    config.getMethod("setSerialFilter", filter).invoke(null, f);
                    return true;
                } catch (ClassNotFoundException e) {
                    // Not this runtime's API; try the next.
                } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
                    System.err.println("offheap-doctor: note: no deserialization filter on the JMX connection ("
                            + describe(unwrap(e)) + ")");
                    return false;
                }
            }
            return false;
        }
    }
}
