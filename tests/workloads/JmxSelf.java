import java.lang.management.ManagementFactory;
import javax.management.Attribute;
import javax.management.AttributeList;
import javax.management.MBeanAttributeInfo;
import javax.management.MBeanInfo;
import javax.management.MBeanOperationInfo;
import javax.management.MBeanParameterInfo;
import javax.management.MBeanServer;
import javax.management.ObjectName;
import javax.management.RuntimeMBeanException;

/**
 * Reads the agent's MBean from inside the JVM it watches, the way a console does: through the
 * platform MBeanServer, by name, without the agent's classes. Prints the bean's shape, every
 * attribute, then the result of every operation, one line each ("text" spans lines up to "end").
 */
public class JmxSelf {
    public static void main(String[] args) throws Exception {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        ObjectName name = new ObjectName("io.offheapdoctor:type=OffHeapDoctor");
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!server.isRegistered(name) || ((Long) server.getAttribute(name, "SampleCount")) < 1) {
            if (System.nanoTime() > deadline) {
                System.out.println("timeout: registered=" + server.isRegistered(name));
                System.exit(3);
            }
            Thread.sleep(20);
        }
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
        // One call for all attributes: they come from one sample, as a console's refresh does.
        AttributeList values = server.getAttributes(name, names);
        for (Attribute a : values.asList()) {
            System.out.println("attr " + a.getName() + "=" + a.getValue());
        }
        System.out.println("json " + server.invoke(name, "reportJson", null, null));
        System.out.println("text");
        System.out.print(server.invoke(name, "reportText", null, null));
        System.out.println("end");
        System.out.println("sample " + server.invoke(name, "sampleNow", null, null));
        System.out.println("count " + server.getAttribute(name, "SampleCount"));
        operation(server, name, "trimNow", new Object[0], new String[0]);
        operation(server, name, "setBaseline", new Object[0], new String[0]);
        operation(server, name, "setTrimPolicy", new Object[] {"auto"}, new String[] {"java.lang.String"});
        operation(server, name, "setTrimPolicy", new Object[] {" "}, new String[] {"java.lang.String"});
        System.out.flush();
    }

    private static void operation(MBeanServer server, ObjectName name, String op, Object[] params, String[] sig) {
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
