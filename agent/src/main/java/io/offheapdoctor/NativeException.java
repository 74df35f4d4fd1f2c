package io.offheapdoctor;

/** The native core failed in a way that is neither a bad argument nor an unreadable file. */
public class NativeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public NativeException(String message) {
        super(message);
    }
}
