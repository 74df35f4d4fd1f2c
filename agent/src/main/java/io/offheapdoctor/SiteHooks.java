package io.offheapdoctor;

import org.objectweb.asm.ClassReader;
import org.objectweb.asm.ClassVisitor;
import org.objectweb.asm.ClassWriter;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.security.ProtectionDomain;
import java.util.ArrayList;
import java.util.List;

/**
 * Puts the call-site hooks into four JDK classes: Inflater and Deflater call
 * {@code io.offheapdoctor.hooks.Sites.zip} once their zlib stream exists, DirectByteBuffer calls
 * {@code direct} at the end of the constructor {@code allocateDirect} uses, and Thread's
 * {@code start} methods call {@code thread} first. The hook class is the native core's, defined in
 * the boot loader (the JDK's classes see no other); the natives behind it record the caller's
 * stack.
 *
 * <p>The classes are rewritten once, at the agent's start, by retransformation: only the bytes of
 * those four classes of the boot loader are ever touched, each edit is a few straight-line
 * instructions that leave the stack as they found it (so the existing stack map frames hold and
 * no class is loaded to recompute them), and the transformer is removed right after, so later
 * class loading never passes through it. A class whose edit fails stays as it was; each failure
 * is one line, and the agent goes on without those sites.
 */
final class SiteHooks {
    static final String HOOKS = "io/offheapdoctor/hooks/Sites";
    /** The kinds {@code Sites.zip} takes. */
    static final int ZIP_INFLATER = 1;
    static final int ZIP_DEFLATER = 2;

    private SiteHooks() {}

    /**
     * Installs the hooks; null when all four classes carry them, else why not (logged in one line
     * and handed to the native core for the report). Never throws.
     */
    static String install(Instrumentation inst) {
        long start = System.nanoTime();
        String why;
        try {
            why = installOrSayWhy(inst);
        } catch (Throwable t) {
            why = "internal error: " + t;
        }
        if (why != null) {
            Log.warn("call sites off: " + why);
            try {
                NativeCore.sitesFailed(why);
            } catch (Throwable t) {
                Log.debug("cannot tell the native core why call sites are off: " + t);
            }
        } else {
            Log.debug(String.format(java.util.Locale.ROOT, "call sites on: hooks put in %.1f ms",
                    (System.nanoTime() - start) / 1e6));
        }
        return why;
    }

    private static String installOrSayWhy(Instrumentation inst) {
        if (inst == null) {
            return "the JVM gave the agent no Instrumentation";
        }
        if (!inst.isRetransformClassesSupported()) {
            return "this JVM does not retransform classes";
        }
        String problem;
        try {
            problem = NativeCore.sitesInstall();
        } catch (Throwable t) {
            return "sites unavailable: " + t;
        }
        if (problem != null) {
            return problem;
        }
        Class<?>[] classes = {java.util.zip.Inflater.class, java.util.zip.Deflater.class,
            // The class of what allocateDirect returns: Class.forName with the boot loader would
            // need the getClassLoader permission under a security manager.
            java.nio.ByteBuffer.allocateDirect(0).getClass(), Thread.class};
        for (Class<?> c : classes) {
            if (!inst.isModifiableClass(c)) {
                return "this JVM does not let " + c.getName() + " be retransformed";
            }
        }
        Rewriter rewriter = new Rewriter(classes);
        inst.addTransformer(rewriter, true);
        try {
            // One class at a time: the JVM takes or refuses a call's classes together, and a
            // class it refuses should not cost the others their sites.
            for (Class<?> c : classes) {
                try {
                    inst.retransformClasses(c);
                } catch (Throwable t) {
                    rewriter.fail(c.getName() + " left as it was: " + t);
                }
            }
        } finally {
            inst.removeTransformer(rewriter);
        }
        return rewriter.outcome();
    }

    /**
     * The transformer: acts only on the four classes it was made for, only as the boot loader's
     * and only while they are retransformed (never at a class's first loading).
     */
    private static final class Rewriter implements ClassFileTransformer {
        private final Class<?>[] targets;
        private final boolean[] rewritten;
        private final List<String> failures = new ArrayList<>();

        Rewriter(Class<?>[] targets) {
            this.targets = targets;
            this.rewritten = new boolean[targets.length];
        }

        synchronized void fail(String why) {
            failures.add(why);
        }

        /** Null when every class took its hook, else what went wrong, one clause per class. */
        synchronized String outcome() {
            List<String> all = new ArrayList<>(failures);
            for (int i = 0; i < targets.length; i++) {
                String name = targets[i].getName();
                if (!rewritten[i] && !mentions(all, name)) {
                    all.add(name + " was not offered for rewriting");
                }
            }
            return all.isEmpty() ? null : String.join("; ", all);
        }

        private static boolean mentions(List<String> lines, String name) {
            for (String l : lines) {
                if (l.startsWith(name + " ")) {
                    return true;
                }
            }
            return false;
        }

        @Override
        public byte[] transform(ClassLoader loader, String className, Class<?> classBeingRedefined,
                ProtectionDomain protectionDomain, byte[] classfileBuffer) {
            if (loader != null || classBeingRedefined == null || className == null || classfileBuffer == null) {
                return null;
            }
            int which = -1;
            for (int i = 0; i < targets.length; i++) {
                if (targets[i] == classBeingRedefined) {
                    which = i;
                }
            }
            if (which < 0 || !className.equals(classBeingRedefined.getName().replace('.', '/'))) {
                return null;
            }
            try {
                byte[] out = rewrite(className, classfileBuffer);
                synchronized (this) {
                    rewritten[which] = true;
                }
                return out;
            } catch (Throwable t) {
                fail(className.replace('/', '.') + " left as it was: " + t);
                return null;
            }
        }
    }

    /** The class's bytes with its hook in; throws when it finds no place for it. */
    static byte[] rewrite(String className, byte[] bytes) {
        ClassReader reader = new ClassReader(bytes);
        // Given the reader, the writer copies the methods left alone as they are; COMPUTE_MAXS
        // only raises max_stack where a hook pushes more than the method did.
        ClassWriter writer = new ClassWriter(reader, ClassWriter.COMPUTE_MAXS);
        Editor editor = new Editor(writer, className);
        reader.accept(editor, 0);
        if (editor.edits == 0) {
            throw new IllegalStateException("no place for the hook in " + className.replace('/', '.') + " of this JDK");
        }
        return writer.toByteArray();
    }

    private static final class Editor extends ClassVisitor {
        private final String className;
        private String superName;
        int edits;

        Editor(ClassVisitor next, String className) {
            super(Opcodes.ASM9, next);
            this.className = className;
        }

        @Override
        public void visit(int version, int access, String name, String signature, String superName,
                String[] interfaces) {
            this.superName = superName;
            super.visit(version, access, name, signature, superName, interfaces);
        }

        @Override
        public MethodVisitor visitMethod(int access, String name, String descriptor, String signature,
                String[] exceptions) {
            MethodVisitor mv = super.visitMethod(access, name, descriptor, signature, exceptions);
            if (mv == null) {
                return null;
            }
            switch (className) {
                case "java/util/zip/Inflater":
                    return name.equals("<init>") ? new ZipHook(mv, ZIP_INFLATER) : mv;
                case "java/util/zip/Deflater":
                    return name.equals("<init>") ? new ZipHook(mv, ZIP_DEFLATER) : mv;
                case "java/nio/DirectByteBuffer":
                    // The constructor allocateDirect calls: (int) on every JDK so far; (long) in
                    // case a JDK makes it so.
                    return name.equals("<init>") && (descriptor.equals("(I)V") || descriptor.equals("(J)V"))
                            ? new DirectHook(mv, descriptor.equals("(J)V")) : mv;
                case "java/lang/Thread":
                    // JDK 19+ starts the platform threads of thread-per-task executors and
                    // structured scopes through start(ThreadContainer), which start() does not call.
                    return name.equals("start") && (access & Opcodes.ACC_STATIC) == 0
                            && (descriptor.equals("()V") || descriptor.equals("(Ljdk/internal/vm/ThreadContainer;)V"))
                            ? new ThreadHook(mv) : mv;
                default:
                    return mv;
            }
        }

        /**
         * After each store of {@code zsRef} in a constructor: whichever constructor of the chain
         * makes the stream, the hook runs once per object, with the stream's reference object.
         */
        private final class ZipHook extends MethodVisitor {
            private final int kind;
            /** Whether {@code this} is initialized: reading a field of it before then fails verification. */
            private boolean initialized;

            ZipHook(MethodVisitor next, int kind) {
                super(Opcodes.ASM9, next);
                this.kind = kind;
            }

            @Override
            public void visitMethodInsn(int opcode, String owner, String name, String descriptor, boolean isInterface) {
                super.visitMethodInsn(opcode, owner, name, descriptor, isInterface);
                if (opcode == Opcodes.INVOKESPECIAL && name.equals("<init>")
                        && (owner.equals(superName) || owner.equals(className))) {
                    initialized = true;
                }
            }

            @Override
            public void visitFieldInsn(int opcode, String owner, String name, String descriptor) {
                super.visitFieldInsn(opcode, owner, name, descriptor);
                if (opcode != Opcodes.PUTFIELD || !owner.equals(className) || !name.equals("zsRef")) {
                    return;
                }
                if (!initialized || !(descriptor.startsWith("L") || descriptor.startsWith("["))) {
                    throw new IllegalStateException("zsRef of " + className.replace('/', '.')
                            + " is stored in a way the hook does not expect (" + descriptor + ")");
                }
                super.visitVarInsn(Opcodes.ALOAD, 0);
                super.visitFieldInsn(Opcodes.GETFIELD, owner, name, descriptor);
                super.visitInsn(Opcodes.ICONST_0 + kind);
                super.visitMethodInsn(Opcodes.INVOKESTATIC, HOOKS, "zip", "(Ljava/lang/Object;I)V", false);
                edits++;
            }
        }

        /** Before each return of the constructor: the buffer is whole, its memory reserved. */
        private final class DirectHook extends MethodVisitor {
            private final boolean longCapacity;

            DirectHook(MethodVisitor next, boolean longCapacity) {
                super(Opcodes.ASM9, next);
                this.longCapacity = longCapacity;
            }

            @Override
            public void visitInsn(int opcode) {
                if (opcode == Opcodes.RETURN) {
                    super.visitVarInsn(Opcodes.ALOAD, 0);
                    if (longCapacity) {
                        super.visitVarInsn(Opcodes.LLOAD, 1);
                    } else {
                        super.visitVarInsn(Opcodes.ILOAD, 1);
                        super.visitInsn(Opcodes.I2L);
                    }
                    super.visitMethodInsn(Opcodes.INVOKESTATIC, HOOKS, "direct", "(Ljava/lang/Object;J)V", false);
                    edits++;
                }
                super.visitInsn(opcode);
            }
        }

        /** At the entry of {@code Thread.start}, on the starting thread, whose stack is the site. */
        private final class ThreadHook extends MethodVisitor {
            ThreadHook(MethodVisitor next) {
                super(Opcodes.ASM9, next);
            }

            @Override
            public void visitCode() {
                super.visitCode();
                super.visitVarInsn(Opcodes.ALOAD, 0);
                super.visitMethodInsn(Opcodes.INVOKESTATIC, HOOKS, "thread", "(Ljava/lang/Thread;)V", false);
                edits++;
            }
        }
    }
}
