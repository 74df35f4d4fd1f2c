package io.offheapdoctor;

/**
 * The native core hit a bug (a Rust panic). The panic was caught before it could reach the JVM;
 * the message carries the panic's text and source location.
 */
public class NativePanicException extends NativeException {
    private static final long serialVersionUID = 1L;

    public NativePanicException(String message) {
        super(message);
    }
}
