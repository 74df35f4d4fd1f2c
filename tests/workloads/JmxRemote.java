import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
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
            ObjectName name = new ObjectName(MBeanWalk.NAME);
            MBeanWalk.awaitFirstSample(server, name);
            System.out.println("connected " + connector.getConnectionId());
            String[] names = MBeanWalk.printShape(server, name);
            MBeanWalk.printAttributes(server, name, names);
            for (String n : names) {
                System.out.println("single " + n + "=" + server.getAttribute(name, n));
            }
            MBeanWalk.printReports(server, name);
            MBeanWalk.mutate(server, name);
            MBeanWalk.operation(server, name, "writeTimeline", new Object[] {args[1]}, new String[] {"java.lang.String"});
            System.out.println("policy " + server.getAttribute(name, "TrimPolicy"));
        }
        System.out.flush();
    }
}
