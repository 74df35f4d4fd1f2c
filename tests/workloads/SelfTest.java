import io.offheapdoctor.NativeCore;

/**
 * Drives every error kind of the native core's error policy from Java and prints what arrived,
 * one line per case; then proves the JVM and the core still work.
 */
public class SelfTest {
    public static void main(String[] args) {
        String[] cases = {"ok", "io", "argument", "unsupported", "panic", "panic", "nonsense", "ok"};
        for (String c : cases) {
            try {
                System.out.println(c + " -> returned " + NativeCore.selfTest(c));
            } catch (Throwable t) {
                System.out.println(c + " -> " + t.getClass().getName() + ": " + t.getMessage());
            }
        }
        try {
            NativeCore.selfTest(null);
        } catch (IllegalArgumentException e) {
            System.out.println("null -> " + e.getClass().getName() + ": " + e.getMessage());
        }
        System.out.println("version " + NativeCore.version());
        System.out.println("alive");
    }
}
