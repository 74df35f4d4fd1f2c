import java.lang.management.ManagementFactory;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/**
 * Reads the agent's MBean from inside the JVM it watches, the way a console does: through the
 * platform MBeanServer, by name, without the agent's classes. Prints the bean's shape, every
 * attribute, then the result of every operation, one line each ("text" spans lines up to "end").
 */
public class JmxSelf {
    public static void main(String[] args) throws Exception {
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        ObjectName name = new ObjectName(MBeanWalk.NAME);
        MBeanWalk.awaitFirstSample(server, name);
        String[] names = MBeanWalk.printShape(server, name);
        MBeanWalk.printAttributes(server, name, names);
        MBeanWalk.printReports(server, name);
        MBeanWalk.mutate(server, name);
        System.out.flush();
    }
}
