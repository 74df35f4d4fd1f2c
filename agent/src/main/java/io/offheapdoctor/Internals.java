package io.offheapdoctor;

import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;

/**
 * Reads JDK-internal fields and calls JDK-internal methods (the zip census's lists, the
 * diagnostic commands' direct route), by one of two routes chosen when a reference is made:
 * <ul>
 * <li>the native core, through JNI, when it is loaded: JNI checks no access, so no JDK package is
 *     opened to the agent, and nothing is generated. Core reflection on JDK 18+ is built on method
 *     handles and generates classes on each member's first use; on JDK 25 that, and the JIT
 *     compiling the class-file library behind it, left about 8 MiB of malloc'd memory behind in a
 *     JVM that uses no reflection itself;</li>
 * <li>core reflection otherwise, after the caller has opened the package ({@link Modules#open}).</li>
 * </ul>
 * The native route needs the kind of value and the shape of a method known up front: it is
 * checked here, where a reference is made, so that a wrong read cannot reach JNI.
 */
final class Internals {
    private Internals() {}

    /** Whether new references go through the native core (it is loaded). */
    static boolean nativeRoute() {
        return NativeLoader.isLoaded();
    }

    /** One field, read by either route. */
    static final class FieldRef {
        private static final int OBJECT = 0;
        private static final int LONG = 1;
        private static final int INT = 2;
        private static final int BOOLEAN = 3;

        private final Field field;
        private final Class<?> owner;
        private final boolean isStatic;
        private final int kind;
        /** The JNI field id; 0 on the reflection route. */
        private final long id;

        private FieldRef(Field field, boolean viaNative) {
            this.field = field;
            this.owner = field.getDeclaringClass();
            this.isStatic = Modifier.isStatic(field.getModifiers());
            Class<?> t = field.getType();
            this.kind = !t.isPrimitive() ? OBJECT : t == long.class ? LONG : t == int.class ? INT
                    : t == boolean.class ? BOOLEAN : -1;
            if (viaNative) {
                if (kind < 0) {
                    throw new IllegalArgumentException(field + ": the native route reads no " + t);
                }
                this.id = NativeCore.fieldId0(field);
            } else {
                field.setAccessible(true);
                this.id = 0;
            }
        }

        /** {@code c}'s declared field {@code name}. */
        static FieldRef of(Class<?> c, String name, boolean viaNative) throws NoSuchFieldException {
            return new FieldRef(c.getDeclaredField(name), viaNative);
        }

        /** Like {@link #of}, null where {@code c} has no such field. */
        static FieldRef optional(Class<?> c, String name, boolean viaNative) {
            try {
                return of(c, name, viaNative);
            } catch (NoSuchFieldException e) {
                return null;
            }
        }

        Class<?> getType() {
            return field.getType();
        }

        /** A reference field's value ({@code target} null for a static field). */
        Object get(Object target) throws IllegalAccessException {
            check(OBJECT, target);
            return id == 0 ? field.get(target) : NativeCore.getObject0(owner, target, id, isStatic);
        }

        long getLong(Object target) throws IllegalAccessException {
            check(LONG, target);
            return id == 0 ? field.getLong(target) : NativeCore.getPrimitive0(owner, target, id, isStatic, LONG);
        }

        int getInt(Object target) throws IllegalAccessException {
            check(INT, target);
            return id == 0 ? field.getInt(target) : (int) NativeCore.getPrimitive0(owner, target, id, isStatic, INT);
        }

        boolean getBoolean(Object target) throws IllegalAccessException {
            check(BOOLEAN, target);
            return id == 0 ? field.getBoolean(target)
                    : NativeCore.getPrimitive0(owner, target, id, isStatic, BOOLEAN) != 0;
        }

        private void check(int want, Object target) {
            if (kind != want) {
                throw new IllegalArgumentException(field + " is not read that way");
            }
            if (!isStatic && target == null) {
                throw new NullPointerException("no object to read " + field + " of");
            }
        }
    }

    /**
     * One method, called by either route. The native route takes methods with no parameter or
     * one reference parameter that return a reference or a boolean.
     */
    static final class MethodRef {
        private final Method method;
        private final Class<?> owner;
        private final boolean isStatic;
        private final boolean returnsBoolean;
        private final int argc;
        /** The JNI method id; 0 on the reflection route. */
        private final long id;

        private MethodRef(Method method, boolean viaNative) {
            this.method = method;
            this.owner = method.getDeclaringClass();
            this.isStatic = Modifier.isStatic(method.getModifiers());
            this.returnsBoolean = method.getReturnType() == boolean.class;
            Class<?>[] params = method.getParameterTypes();
            this.argc = params.length;
            if (viaNative) {
                boolean shape = (argc == 0 || (argc == 1 && !params[0].isPrimitive()))
                        && (returnsBoolean || !method.getReturnType().isPrimitive());
                if (!shape) {
                    throw new IllegalArgumentException(method + ": the native route calls no such method");
                }
                this.id = NativeCore.methodId0(method);
            } else {
                method.setAccessible(true);
                this.id = 0;
            }
        }

        static MethodRef of(Method method, boolean viaNative) {
            return new MethodRef(method, viaNative);
        }

        /**
         * Calls the method ({@code target} null for a static one) with {@code args} (as many as it
         * takes). What the method throws is thrown as it is, not wrapped.
         */
        Object invoke(Object target, Object... args) throws Exception {
            if (args.length != argc) {
                throw new IllegalArgumentException(method + " takes " + argc + " arguments, not " + args.length);
            }
            if (!isStatic && target == null) {
                throw new NullPointerException("no object to call " + method + " on");
            }
            if (id == 0) {
                try {
                    return method.invoke(target, args);
                } catch (InvocationTargetException e) {
                    Throwable cause = e.getCause();
                    throw cause instanceof Exception ? (Exception) cause : e;
                }
            }
            Object arg = argc == 0 ? null : args[0];
            if (returnsBoolean) {
                return NativeCore.callBoolean0(owner, target, id, isStatic, arg, argc);
            }
            return NativeCore.callObject0(owner, target, id, isStatic, arg, argc);
        }
    }
}
