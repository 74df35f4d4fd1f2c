package io.offheapdoctor;

/** The native core could not read a file it needed; the message names the file and the cause. */
public class NativeIoException extends NativeException {
    private static final long serialVersionUID = 1L;

    public NativeIoException(String message) {
        super(message);
    }
}
