package io.offheapdoctor;

import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;

/**
 * Reads JDK-internal fields and calls JDK-internal methods by core reflection, the route the zip
 * census, the diagnostic commands and the platform beans take when the native core is not loaded
 * (the caller has opened the package first, {@link Modules#open}). With the native core loaded
 * they take none of this: the core resolves the few members it needs itself and does each job
 * whole (see {@link NativeCore}).
 */
final class Internals {
    private Internals() {}

    /** Whether the native core does the reading (it is loaded). */
    static boolean nativeRoute() {
        return NativeLoader.isLoaded();
    }

    /** One field, read by reflection. */
    static final class FieldRef {
        private final Field field;

        private FieldRef(Field field) {
            this.field = field;
            field.setAccessible(true);
        }

        /** {@code c}'s declared field {@code name}. */
        static FieldRef of(Class<?> c, String name) throws NoSuchFieldException {
            return new FieldRef(c.getDeclaredField(name));
        }

        /** Like {@link #of}, null where {@code c} has no such field. */
        static FieldRef optional(Class<?> c, String name) {
            try {
                return of(c, name);
            } catch (NoSuchFieldException e) {
                return null;
            }
        }

        Class<?> getType() {
            return field.getType();
        }

        /** A reference field's value ({@code target} null for a static field). */
        Object get(Object target) throws IllegalAccessException {
            return field.get(target);
        }

        long getLong(Object target) throws IllegalAccessException {
            return field.getLong(target);
        }

        int getInt(Object target) throws IllegalAccessException {
            return field.getInt(target);
        }

        boolean getBoolean(Object target) throws IllegalAccessException {
            return field.getBoolean(target);
        }
    }

    /** One method, called by reflection. */
    static final class MethodRef {
        private final Method method;

        private MethodRef(Method method) {
            this.method = method;
            method.setAccessible(true);
        }

        static MethodRef of(Method method) {
            return new MethodRef(method);
        }

        /**
         * Calls the method ({@code target} null for a static one). What the method throws is
         * thrown as it is, not wrapped.
         */
        Object invoke(Object target, Object... args) throws Exception {
            try {
                return method.invoke(target, args);
            } catch (InvocationTargetException e) {
                Throwable cause = e.getCause();
                throw cause instanceof Exception ? (Exception) cause : e;
            }
        }
    }
}
