import java.lang.management.BufferPoolMXBean;
import java.lang.management.PlatformManagedObject;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

/**
 * What class-path code with no --add-opens tries against the agent (started with -javaagent):
 * every method of NativeCore, natives included, called by reflection with every mix of bogus
 * and plausible arguments (unknown indices, null, objects of the wrong class); the reflection
 * helpers of Internals aimed at String.value, Thread.eetop and Unsafe.getUnsafe; the natives the
 * agent used to have; and a class of its own declared in io.offheapdoctor (argument: its name,
 * or "-"). Prints what came back by kind; "LEAK ..." for anything beyond counts, command output,
 * a VM option's value and the public management beans.
 */
public class InternalsAbuse {
    private static final String SECRET = "s3cr3t-" + System.nanoTime();
    private static final List<String> leaks = new ArrayList<String>();
    private static final TreeSet<String> thrown = new TreeSet<String>();
    private static int calls;

    public static void main(String[] args) throws Exception {
        // The agent loads its library on a thread of its own: the natives exist once it sampled.
        ZipWorkload.awaitFirstSample();
        Class<?> core = Class.forName("io.offheapdoctor.NativeCore");
        int natives = 0;
        for (Method m : core.getDeclaredMethods()) {
            if (m.getName().equals("selfTest0") || m.getName().equals("selfTest")) {
                continue; // throws on purpose, by name; not an internal
            }
            if (Modifier.isNative(m.getModifiers())) {
                natives++;
            }
            if (m.getName().equals("requireNonNull")) {
                continue; // hands back its own argument
            }
            if (m.getName().startsWith("init") || m.getName().startsWith("tune") || m.getName().startsWith("trim")
                    || m.getName().startsWith("setTrimPolicy") || m.getName().contains("imeline")) {
                continue; // the core's own configuration and files: not JDK internals
            }
            m.setAccessible(true);
            callAll(m, new Object[m.getParameterTypes().length], 0);
        }
        System.out.println("natives " + natives + ", calls " + calls);
        System.out.println("thrown " + thrown);
        oldRoute(core);
        try {
            internals();
        } catch (NoSuchMethodException e) {
            System.out.println("internals helpers absent: " + e.getMessage());
        }
        sneak(args.length > 0 ? args[0] : "-");
        System.out.println(leaks.isEmpty() ? "leaks none" : "leaks " + leaks);
        Thread.sleep(1200); // the agent samples on, its census included
        System.out.println("abuse done");
    }

    private static Object[] values(Class<?> t) {
        if (t == int.class) {
            return new Object[] {-1, 0, 1, 2, 3, 4, 7, 1000, Integer.MIN_VALUE, Integer.MAX_VALUE};
        }
        if (t == long.class) {
            return new Object[] {-1L, 0L, 1L, 5000L, Long.MAX_VALUE, Long.MIN_VALUE};
        }
        if (t == boolean.class) {
            return new Object[] {true, false};
        }
        if (t == String.class) {
            return new Object[] {null, "", "MaxHeapSize", "\nVM.version", "a\u0000b", "-all", SECRET};
        }
        return new Object[] {null, SECRET, new Object(), Thread.currentThread(), new byte[8], new long[16]};
    }

    private static void callAll(Method m, Object[] args, int i) {
        Class<?>[] types = m.getParameterTypes();
        if (i == types.length) {
            call(m, args.clone());
            return;
        }
        for (Object v : values(types[i])) {
            args[i] = v;
            callAll(m, args, i + 1);
        }
    }

    private static void call(Method m, Object[] args) {
        calls++;
        Object r;
        try {
            r = m.invoke(null, args);
        } catch (InvocationTargetException e) {
            thrown.add(e.getCause().getClass().getSimpleName());
            return;
        } catch (Exception e) {
            thrown.add(e.getClass().getSimpleName());
            return;
        }
        judge(m.getName(), r);
    }

    /** Whether what a call returned is something the JDK hands class-path code anyway. */
    private static void judge(String name, Object r) {
        if (r == null || r instanceof Boolean || r instanceof Integer) {
            return;
        }
        if (r instanceof String) {
            if (((String) r).contains(SECRET)) {
                leaks.add(name + " returned the secret");
            }
            return;
        }
        if (r instanceof long[]) {
            for (long v : (long[]) r) {
                // Counts and lock times: never an address.
                if (v < 0 || v >= 1_000_000_000L) {
                    leaks.add(name + " returned " + v);
                }
            }
            return;
        }
        if (r instanceof Object[]) {
            for (Object o : (Object[]) r) {
                if (!(o instanceof BufferPoolMXBean)) {
                    leaks.add(name + " returned an array holding " + (o == null ? "null" : o.getClass().getName()));
                }
            }
            return;
        }
        if (r instanceof PlatformManagedObject) {
            return;
        }
        leaks.add(name + " returned " + r.getClass().getName());
    }

    /** The natives of earlier builds, which took raw ids from Java: String.value read through them. */
    private static void oldRoute(Class<?> core) throws Exception {
        Method fieldId;
        Method getObject;
        try {
            fieldId = core.getDeclaredMethod("fieldId0", java.lang.reflect.Field.class);
            getObject = core.getDeclaredMethod("getObject0", Class.class, Object.class, long.class, boolean.class);
        } catch (NoSuchMethodException e) {
            System.out.println("raw-id natives absent");
            return;
        }
        fieldId.setAccessible(true);
        getObject.setAccessible(true);
        long id = (Long) fieldId.invoke(null, String.class.getDeclaredField("value"));
        Object v = getObject.invoke(null, String.class, SECRET, id, false);
        String seen = v instanceof byte[] ? new String((byte[]) v, "ISO-8859-1") : String.valueOf(v);
        leaks.add("String.value through getObject0: " + (seen.contains(SECRET) ? "the secret" : seen));
    }

    /** The reflection helpers: they open nothing themselves, so class-path code gains nothing. */
    private static void internals() throws Exception {
        Class<?> fieldRef = Class.forName("io.offheapdoctor.Internals$FieldRef");
        Class<?> methodRef = Class.forName("io.offheapdoctor.Internals$MethodRef");
        Method of = fieldRef.getDeclaredMethod("of", Class.class, String.class);
        of.setAccessible(true);
        Method get = fieldRef.getDeclaredMethod("get", Object.class);
        get.setAccessible(true);
        Method getLong = fieldRef.getDeclaredMethod("getLong", Object.class);
        getLong.setAccessible(true);
        System.out.println("String.value " + attempt(() -> get.invoke(of.invoke(null, String.class, "value"), SECRET)));
        System.out.println("Thread.eetop " + attempt(() -> getLong.invoke(of.invoke(null, Thread.class, "eetop"),
                Thread.currentThread())));
        Method mof = methodRef.getDeclaredMethod("of", Method.class);
        mof.setAccessible(true);
        Method invoke = methodRef.getDeclaredMethod("invoke", Object.class, Object[].class);
        invoke.setAccessible(true);
        Method getUnsafe = Class.forName("jdk.internal.misc.Unsafe").getMethod("getUnsafe");
        System.out.println("Unsafe.getUnsafe " + attempt(() -> invoke.invoke(mof.invoke(null, getUnsafe), null, new Object[0])));
    }

    interface Attempt {
        Object run() throws Exception;
    }

    private static String attempt(Attempt a) {
        try {
            Object r = a.run();
            leaks.add("internals gave " + (r == null ? "null" : r.getClass().getName()));
            return "read";
        } catch (InvocationTargetException e) {
            Throwable t = e;
            while (t instanceof InvocationTargetException && t.getCause() != null) {
                t = t.getCause();
            }
            return t.getClass().getSimpleName();
        } catch (Exception e) {
            return e.getClass().getSimpleName();
        }
    }

    /** A class of the caller's own in io.offheapdoctor, which would reach package-private methods. */
    private static void sneak(String name) {
        if (name.equals("-")) {
            return;
        }
        try {
            Object r = Class.forName(name).getMethod("run").invoke(null);
            leaks.add("a class in io.offheapdoctor ran: " + r);
            System.out.println("sneak ran");
        } catch (InvocationTargetException e) {
            System.out.println("sneak " + e.getCause().getClass().getSimpleName());
        } catch (Throwable e) {
            System.out.println("sneak " + e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }
}
