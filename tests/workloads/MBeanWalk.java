import javax.management.Attribute;
import javax.management.AttributeList;
import javax.management.MBeanAttributeInfo;
import javax.management.MBeanInfo;
import javax.management.MBeanOperationInfo;
import javax.management.MBeanParameterInfo;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.RuntimeMBeanException;

/**
 * What JmxSelf and JmxRemote print of the agent's MBean, through any connection (the platform
 * MBeanServer in-process, or a remote connector), by name and without the agent's classes.
 */
final class MBeanWalk {
    static final String NAME = "io.offheapdoctor:type=OffHeapDoctor";

    private MBeanWalk() {}

    /**
     * Waits up to 30 s (or -Dmbeanwalk.timeoutSeconds) for the bean and its first sample; exits
     * with 3 if they do not come.
     */
    static void awaitFirstSample(MBeanServerConnection server, ObjectName name) throws Exception {
        long deadline = System.nanoTime() + Long.getLong("mbeanwalk.timeoutSeconds", 30) * 1_000_000_000L;
        while (!server.isRegistered(name) || ((Long) server.getAttribute(name, "SampleCount")) < 1) {
            if (System.nanoTime() > deadline) {
                System.out.println("timeout: registered=" + server.isRegistered(name));
                System.exit(3);
            }
            Thread.sleep(20);
        }
    }

    /** Prints a "type" line per attribute and an "operation" line per operation; returns the attribute names. */
    static String[] printShape(MBeanServerConnection server, ObjectName name) throws Exception {
        MBeanInfo info = server.getMBeanInfo(name);
        String[] names = new String[info.getAttributes().length];
        for (int i = 0; i < names.length; i++) {
            MBeanAttributeInfo a = info.getAttributes()[i];
            names[i] = a.getName();
            System.out.println("type " + a.getName() + " " + a.getType() + (a.isWritable() ? " writable" : ""));
        }
        for (MBeanOperationInfo o : info.getOperations()) {
            StringBuilder sig = new StringBuilder();
            for (MBeanParameterInfo p : o.getSignature()) {
                sig.append(sig.length() > 0 ? "," : "").append(p.getType());
            }
            System.out.println("operation " + o.getName() + "(" + sig + ") " + o.getReturnType());
        }
        return names;
    }

    /** All attributes in one call ("attr" lines): they come from one sample, as a console's refresh does. */
    static void printAttributes(MBeanServerConnection server, ObjectName name, String[] names) throws Exception {
        AttributeList values = server.getAttributes(name, names);
        for (Attribute a : values.asList()) {
            System.out.println("attr " + a.getName() + "=" + a.getValue());
        }
    }

    /**
     * The reports ("json", the call sites of each kind and of an unknown one, "text" up to
     * "end"), a fresh sample and the sample count.
     */
    static void printReports(MBeanServerConnection server, ObjectName name) throws Exception {
        System.out.println("json " + server.invoke(name, "reportJson", null, null));
        for (String kind : new String[] {"all", "zip", "direct", "threads", "heap"}) {
            operation(server, name, "topSites", new Object[] {kind}, new String[] {"java.lang.String"});
        }
        System.out.println("text");
        System.out.print(server.invoke(name, "reportText", null, null));
        System.out.println("end");
        System.out.println("sample " + server.invoke(name, "sampleNow", null, null));
        System.out.println("count " + server.getAttribute(name, "SampleCount"));
    }

    /**
     * The mutating operations both callers exercise: trim, baseline, a good and a bad trim policy,
     * the native call sites' report and a stop while they are off.
     */
    static void mutate(MBeanServerConnection server, ObjectName name) {
        operation(server, name, "trimNow", new Object[0], new String[0]);
        operation(server, name, "setBaseline", new Object[0], new String[0]);
        operation(server, name, "setTrimPolicy", new Object[] {"auto"}, new String[] {"java.lang.String"});
        operation(server, name, "setTrimPolicy", new Object[] {" "}, new String[] {"java.lang.String"});
        // The native call sites are off here: the report says so, a stop says why it did nothing.
        operation(server, name, "nativeSitesReport", new Object[0], new String[0]);
        operation(server, name, "stopNativeSites", new Object[0], new String[0]);
    }

    /** One "op" line: what the operation returned, threw, or why the call failed. */
    static void operation(MBeanServerConnection server, ObjectName name, String op, Object[] params, String[] sig) {
        try {
            Object r = server.invoke(name, op, params, sig);
            System.out.println("op " + op + " returned " + String.valueOf(r).replace('\n', ' '));
        } catch (RuntimeMBeanException e) {
            Throwable t = e.getTargetException();
            System.out.println("op " + op + " threw " + t.getClass().getName() + ": " + t.getMessage());
        } catch (Exception e) {
            System.out.println("op " + op + " failed " + e);
        }
    }
}
