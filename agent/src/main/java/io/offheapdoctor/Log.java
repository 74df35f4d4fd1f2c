package io.offheapdoctor;

/**
 * The agent's only voice: one line per message on stderr, prefixed so operators can grep it.
 * Never stdout, which belongs to the application.
 */
final class Log {
    enum Level { QUIET, INFO, DEBUG }

    private static volatile Level level = Level.INFO;

    private Log() {}

    static void setLevel(Level l) {
        level = l;
    }

    static Level level() {
        return level;
    }

    /** Something the operator must see (a bad option, a disabled feature); printed even when quiet. */
    static void warn(String msg) {
        emit(msg);
    }

    static void info(String msg) {
        if (level != Level.QUIET) {
            emit(msg);
        }
    }

    static void debug(String msg) {
        if (level == Level.DEBUG) {
            emit(msg);
        }
    }

    private static void emit(String msg) {
        // One line, whatever the message carries.
        System.err.println("[offheap-doctor] " + msg.replace('\n', ' ').replace('\r', ' '));
    }
}
