import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

/**
 * The soak's other process: {@code SoakJmxClient <port> <seconds>} reads the agent's MBean over
 * remote JMX (loopback) every 100 ms for that long: attributes each time, trimNow (not while
 * {@code Soak.trimQuiet}), reportText and sampleNow now and then. Prints "remote calls=<n> errors=<n> slowest_ms=<n>" and the first error;
 * exit code 0 when it connected.
 */
public final class SoakJmxClient {
    public static void main(String[] args) throws Exception {
        JMXServiceURL url = new JMXServiceURL("service:jmx:rmi:///jndi/rmi://127.0.0.1:" + args[0] + "/jmxrmi");
        long end = System.nanoTime() + Long.parseLong(args[1]) * 1_000_000_000L;
        long calls = 0;
        long errors = 0;
        long slowest = 0;
        String first = null;
        try (JMXConnector connector = JMXConnectorFactory.connect(url)) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            ObjectName name = new ObjectName("io.offheapdoctor:type=OffHeapDoctor");
            String[] attrs = {"Rss", "Pss", "MallocArenaRss", "MallocRetained", "TrimCount", "TrimReleasedBytes",
                "ZipDeflatersAlive", "ZipDeflatersPending", "NmtCommitted", "SampleCount"};
            for (long n = 0; System.nanoTime() < end; n++) {
                long t0 = System.nanoTime();
                try {
                    if (server.isRegistered(name)) {
                        server.getAttributes(name, attrs);
                        if (n % 5 == 0 && !Soak.trimQuiet(System.currentTimeMillis())) {
                            server.invoke(name, "trimNow", null, null);
                        }
                        if (n % 10 == 0) {
                            server.invoke(name, "reportText", null, null);
                        }
                        if (n % 30 == 0) {
                            server.invoke(name, "sampleNow", null, null);
                        }
                        calls++;
                    }
                } catch (Exception e) {
                    errors++;
                    if (first == null) {
                        first = String.valueOf(e);
                    }
                }
                slowest = Math.max(slowest, (System.nanoTime() - t0) / 1_000_000);
                Thread.sleep(100);
            }
        }
        System.out.println("remote calls=" + calls + " errors=" + errors + " slowest_ms=" + slowest);
        if (first != null) {
            System.out.println("first error " + first);
        }
    }
}
