import java.lang.management.ManagementFactory;
import javax.management.ObjectName;
import javax.management.StandardMBean;

/**
 * A hostile target: registers its own bean under the agent's MXBean name before any agent does,
 * so the attach commands talk to it. Its report carries terminal escape sequences and control
 * characters; its JSON answer is an object outside the classes a JMX client needs. Prints
 * "ready", then sleeps for the given seconds.
 */
public class FakeDoctor {
    public interface Fake {
        String reportText();

        Object reportJson();
    }

    /** An OSC title, a screen clear, colours, a carriage return, C1 CSI, a bidi override, BEL. */
    static final String HOSTILE = "title\u001b]0;pwned\u0007 clear\u001b[2J red\u001b[31mRED\u001b[0m"
            + " cr\rOVER c1\u009b31m bidi\u202eevil\u202c bell\u0007 del\u007f keep\ttab\nline2 caf\u00e9\n";

    public static void main(String[] args) throws Exception {
        Fake fake = new Fake() {
            @Override
            public String reportText() {
                return HOSTILE;
            }

            @Override
            public Object reportJson() {
                return new java.text.SimpleDateFormat("yyyy");
            }
        };
        ManagementFactory.getPlatformMBeanServer().registerMBean(new StandardMBean(fake, Fake.class),
                new ObjectName("io.offheapdoctor:type=OffHeapDoctor"));
        // Claims a running agent too, so the commands ask its bean instead of loading the agent.
        System.setProperty("offheap.doctor.running", "true");
        System.out.println("ready");
        System.out.flush();
        Thread.sleep((long) (Double.parseDouble(args.length > 0 ? args[0] : "60") * 1000));
    }
}
