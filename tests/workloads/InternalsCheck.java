import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.RuntimeMXBean;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * Drives the native core's JDK-internal jobs directly, without an agent: the zip census of new
 * streams, a diagnostic command, a VM option, the platform beans; and the misuses that must end
 * as Java exceptions (an unknown index, a null argument, a line break that would start a second
 * command). One line each. The agent's package is sealed: it calls in by reflection.
 */
public class InternalsCheck {
    public static void main(String[] args) throws Exception {
        Object o = call("Options", "parse", "", null);
        call("NativeLoader", "configure", o);
        Object failure = call("NativeLoader", "load", o);
        if (failure != null) {
            throw new IllegalStateException(failure.toString());
        }
        long[] before = (long[]) call("NativeCore", "zipCensus", 1, Long.MAX_VALUE, 100_000_000L);
        Inflater inf = new Inflater();
        Deflater def = new Deflater();
        long[] during = (long[]) call("NativeCore", "zipCensus", 1, Long.MAX_VALUE, 100_000_000L);
        inf.end();
        def.end();
        long[] after = (long[]) call("NativeCore", "zipCensus", 1, Long.MAX_VALUE, 100_000_000L);
        System.out.println("census " + (during[1] - before[1]) + " " + (during[3] - before[3]) + " "
                + (after[1] - before[1]) + " " + (after[3] - before[3]));
        String heap = (String) call("NativeCore", "diagnosticCommand", 0, "");
        System.out.println("command " + (heap.contains("heap") || heap.contains("Heap")));
        System.out.println("option " + call("NativeCore", "vmOption", "MaxHeapSize").equals(
                String.valueOf(ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getMax()))
                + " " + call("NativeCore", "vmOption", "NoSuchOptionAnywhere"));
        RuntimeMXBean rt = (RuntimeMXBean) call("NativeCore", "platformBean", 0);
        System.out.println("bean " + (rt == ManagementFactory.getRuntimeMXBean()));
        Object[] pools = (Object[]) call("NativeCore", "bufferPoolBeans");
        boolean direct = false;
        for (Object p : pools) {
            direct |= "direct".equals(((BufferPoolMXBean) p).getName());
        }
        System.out.println("pools " + direct);
        misuse("unknown command", () -> call("NativeCore", "diagnosticCommand", 7, ""));
        misuse("second command", () -> call("NativeCore", "diagnosticCommand", 0, "\nVM.version"));
        misuse("null option", () -> call("NativeCore", "vmOption", (Object) null));
        misuse("unknown bean", () -> call("NativeCore", "platformBean", 3));
        misuse("unknown part", () -> call("NativeCore", "zipCensus", 4, 1L, 1L));
    }

    /** Calls the agent's static method {@code name} of class {@code cls} taking as many arguments. */
    static Object call(String cls, String name, Object... args) throws Exception {
        for (Method m : Class.forName("io.offheapdoctor." + cls).getDeclaredMethods()) {
            if (m.getName().equals(name) && m.getParameterTypes().length == args.length) {
                m.setAccessible(true);
                try {
                    return m.invoke(null, args);
                } catch (InvocationTargetException e) {
                    throw (Exception) e.getCause();
                }
            }
        }
        throw new NoSuchMethodException(cls + "." + name);
    }

    interface Call {
        Object run() throws Exception;
    }

    private static void misuse(String what, Call c) {
        try {
            System.out.println(what + ": returned " + c.run());
        } catch (Exception e) {
            System.out.println(what + ": " + e.getClass().getSimpleName());
        }
    }
}
