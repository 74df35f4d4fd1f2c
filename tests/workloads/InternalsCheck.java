package io.offheapdoctor;

import java.util.zip.Inflater;

/**
 * Drives Internals' native route directly, without an agent: reads of instance and static fields,
 * calls, and the misuses that must end as Java exceptions (a wrong target, a null target, a wrong
 * kind of read, a method that throws, a method shape the route does not take). One line each.
 */
public class InternalsCheck {
    public static void main(String[] args) throws Exception {
        Options o = Options.parse("", null);
        NativeLoader.configure(o);
        String failure = NativeLoader.load(o);
        if (failure != null) {
            throw new IllegalStateException(failure);
        }
        Inflater inf = new Inflater();
        Internals.FieldRef zsRef = Internals.FieldRef.of(Inflater.class, "zsRef", true);
        Object ref = zsRef.get(inf);
        Internals.FieldRef address = Internals.FieldRef.of(ref.getClass(), "address", true);
        System.out.println("address " + (address.getLong(ref) != 0));
        Internals.FieldRef lock = Internals.FieldRef.of(Class.forName("java.lang.ref.Finalizer"), "lock", true);
        System.out.println("static " + (lock.get(null) != null));
        try {
            zsRef.get("not an Inflater");
            System.out.println("wrong target: read");
        } catch (IllegalArgumentException e) {
            System.out.println("wrong target: IllegalArgumentException");
        }
        try {
            zsRef.get(null);
            System.out.println("null target: read");
        } catch (NullPointerException e) {
            System.out.println("null target: NullPointerException");
        }
        try {
            address.getInt(ref);
            System.out.println("wrong kind: read");
        } catch (IllegalArgumentException e) {
            System.out.println("wrong kind: IllegalArgumentException");
        }
        Internals.MethodRef valueOf = Internals.MethodRef.of(Long.class.getMethod("valueOf", String.class), true);
        System.out.println("call " + valueOf.invoke(null, "42"));
        try {
            valueOf.invoke(null, "x");
            System.out.println("thrown: nothing");
        } catch (NumberFormatException e) {
            System.out.println("thrown: NumberFormatException");
        }
        Internals.MethodRef isEmpty = Internals.MethodRef.of(String.class.getMethod("isEmpty"), true);
        System.out.println("boolean " + isEmpty.invoke("") + " " + isEmpty.invoke("x"));
        try {
            Internals.MethodRef.of(String.class.getMethod("length"), true);
            System.out.println("shape: taken");
        } catch (IllegalArgumentException e) {
            System.out.println("shape: IllegalArgumentException");
        }
        inf.end();
    }
}
