import java.util.ArrayList;
import java.util.List;
import javax.management.Attribute;
import javax.management.AttributeList;
import javax.management.MBeanAttributeInfo;
import javax.management.MBeanInfo;
import javax.management.MBeanOperationInfo;
import javax.management.MBeanParameterInfo;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.RuntimeMBeanException;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

/**
 * A second JVM reading the agent's MBean over a remote JMX connector, the way a remote console
 * does: {@code JmxRemote <port> <timeline.html>} connects to
 * service:jmx:rmi:///jndi/rmi://127.0.0.1:port/jmxrmi, prints the bean's shape, every attribute
 * (all at once, then each on its own), and the result of every operation, one line each.
 */
public class JmxRemote {
    public static void main(String[] args) throws Exception {
        JMXServiceURL url = new JMXServiceURL("service:jmx:rmi:///jndi/rmi://127.0.0.1:" + args[0] + "/jmxrmi");
        try (JMXConnector connector = JMXConnectorFactory.connect(url)) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            ObjectName name = new ObjectName("io.offheapdoctor:type=OffHeapDoctor");
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (!server.isRegistered(name) || ((Long) server.getAttribute(name, "SampleCount")) < 1) {
                if (System.nanoTime() > deadline) {
                    System.out.println("timeout: registered=" + server.isRegistered(name));
                    System.exit(3);
                }
                Thread.sleep(20);
            }
            System.out.println("connected " + connector.getConnectionId());
            MBeanInfo info = server.getMBeanInfo(name);
            String[] names = new String[info.getAttributes().length];
            for (int i = 0; i < names.length; i++) {
                MBeanAttributeInfo a = info.getAttributes()[i];
                names[i] = a.getName();
                System.out.println("type " + a.getName() + " " + a.getType() + (a.isWritable() ? " writable" : ""));
            }
            List<MBeanOperationInfo> ops = new ArrayList<>();
            for (MBeanOperationInfo o : info.getOperations()) {
                ops.add(o);
                StringBuilder sig = new StringBuilder();
                for (MBeanParameterInfo p : o.getSignature()) {
                    sig.append(sig.length() > 0 ? "," : "").append(p.getType());
                }
                System.out.println("operation " + o.getName() + "(" + sig + ") " + o.getReturnType());
            }
            AttributeList values = server.getAttributes(name, names);
            for (Attribute a : values.asList()) {
                System.out.println("attr " + a.getName() + "=" + a.getValue());
            }
            for (String n : names) {
                System.out.println("single " + n + "=" + server.getAttribute(name, n));
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
            operation(server, name, "writeTimeline", new Object[] {args[1]}, new String[] {"java.lang.String"});
            System.out.println("policy " + server.getAttribute(name, "TrimPolicy"));
        }
        System.out.flush();
    }

    private static void operation(MBeanServerConnection server, ObjectName name, String op, Object[] params,
            String[] sig) {
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
