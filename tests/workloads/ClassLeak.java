import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * A class loader leak: each class is built as bytes at run time (no compiler), defined in a
 * fresh class loader, and the loader is kept reachable, so its metaspace stays. A class has
 * {@link #METHODS} static methods of {@link #CODE_BYTES} bytes of bytecode each (nops and a
 * return), which the JVM keeps in metaspace, so a test knows how much metaspace it asked for.
 */
public class ClassLeak {
    static final int METHODS = 8;
    static final int CODE_BYTES = 32_000;
    static final List<ClassLoader> loaders = new ArrayList<>();
    static int made;

    static final class Loader extends ClassLoader {
        Loader() {
            super(ClassLeak.class.getClassLoader());
        }

        Class<?> define(String name, byte[] b) {
            return defineClass(name, b, 0, b.length);
        }
    }

    /** Loads {@code n} generated classes, one every {@code pauseMs}; returns the bytecode bytes defined. */
    static long load(int n, long pauseMs) throws Exception {
        long bytes = 0;
        for (int i = 0; i < n; i++) {
            String name = "Gen" + (made++);
            Loader l = new Loader();
            Class<?> c = l.define(name, classBytes(name));
            if (c.getDeclaredMethods().length != METHODS) {
                throw new IllegalStateException("generated class has " + c.getDeclaredMethods().length + " methods");
            }
            loaders.add(l);
            bytes += (long) METHODS * CODE_BYTES;
            Thread.sleep(pauseMs);
        }
        return bytes;
    }

    /** A Java 8 class file: public class {@code name} with METHODS static methods m0..mN of CODE_BYTES bytes. */
    static byte[] classBytes(String name) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream(METHODS * CODE_BYTES + 1024);
        DataOutputStream out = new DataOutputStream(buf);
        out.writeInt(0xCAFEBABE);
        out.writeShort(0);
        out.writeShort(52);
        out.writeShort(7 + METHODS); // constant pool count: entries 1..6+METHODS
        out.writeByte(1);
        out.writeUTF(name); // #1
        out.writeByte(7);
        out.writeShort(1); // #2 class name
        out.writeByte(1);
        out.writeUTF("java/lang/Object"); // #3
        out.writeByte(7);
        out.writeShort(3); // #4 super
        out.writeByte(1);
        out.writeUTF("()V"); // #5
        out.writeByte(1);
        out.writeUTF("Code"); // #6
        for (int m = 0; m < METHODS; m++) {
            out.writeByte(1);
            out.writeUTF("m" + m); // #7 + m
        }
        out.writeShort(0x0021); // public super
        out.writeShort(2);
        out.writeShort(4);
        out.writeShort(0); // interfaces
        out.writeShort(0); // fields
        out.writeShort(METHODS);
        for (int m = 0; m < METHODS; m++) {
            out.writeShort(0x0009); // public static
            out.writeShort(7 + m);
            out.writeShort(5);
            out.writeShort(1); // one attribute: Code
            out.writeShort(6);
            out.writeInt(12 + CODE_BYTES);
            out.writeShort(0); // max stack
            out.writeShort(0); // max locals
            out.writeInt(CODE_BYTES);
            for (int b = 0; b < CODE_BYTES - 1; b++) {
                out.writeByte(0x00); // nop
            }
            out.writeByte(0xB1); // return
            out.writeShort(0); // exception table
            out.writeShort(0); // code attributes
        }
        out.writeShort(0); // class attributes
        out.flush();
        return buf.toByteArray();
    }
}
