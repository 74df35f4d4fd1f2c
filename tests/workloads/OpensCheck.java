import java.lang.reflect.Field;

/**
 * Waits for the agent's first samples (its census included), then tries what an application on
 * the class path could do if the agent had opened JDK internals to it: call into
 * jdk.internal.ref and read a private field of java.util.zip. Prints "open" or "closed" for each.
 */
public class OpensCheck {
    public static void main(String[] args) throws Exception {
        Thread.sleep((long) (Double.parseDouble(args[0]) * 1000));
        String cleaner;
        try {
            Class.forName("jdk.internal.ref.CleanerFactory").getMethod("cleaner").invoke(null);
            cleaner = "open";
        } catch (IllegalAccessException e) {
            cleaner = "closed";
        }
        String zip;
        try {
            Field f = java.util.zip.Inflater.class.getDeclaredField("zsRef");
            f.setAccessible(true);
            zip = "open";
        } catch (RuntimeException e) {
            zip = "closed"; // InaccessibleObjectException (JDK 9+)
        }
        System.out.println("jdk.internal.ref " + cleaner + ", java.util.zip " + zip);
    }
}
