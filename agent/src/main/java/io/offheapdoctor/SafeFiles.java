package io.offheapdoctor;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * The one rule for every file the agent writes or loads, run as another local user would attack
 * it: nothing is followed or written that a user other than this process's own (or root) can
 * swap. A path qualifies when every directory on the way to it is owned by this process's uid or
 * root and is writable by nobody else, or is sticky (like {@code /tmp}) and the entry in it is
 * ours or root's; a symbolic link on the way must belong to us or root too. The file itself must
 * be a regular file of our own. Owners are compared as numbers, so a uid without a passwd entry
 * (common in containers) is as good as any. Since nobody else can replace an entry on such a
 * path, what is checked is what gets opened.
 */
final class SafeFiles {
    private static final int S_IFMT = 0170000;
    private static final int S_IFREG = 0100000;
    private static final int S_IFDIR = 0040000;
    private static final int S_IFLNK = 0120000;
    private static final int S_IFIFO = 0010000;
    private static final int S_IFSOCK = 0140000;
    private static final int S_ISVTX = 01000;
    /** Group- or other-writable. */
    private static final int SHARED_WRITE = 0022;

    static final FileAttribute<Set<PosixFilePermission>> OWNER_ONLY_FILE =
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"));
    static final FileAttribute<Set<PosixFilePermission>> OWNER_ONLY_DIR =
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------"));

    private static volatile Integer uid;

    private SafeFiles() {}

    /** A content writer that fills a fresh file of ours (see {@link #replace}). */
    interface Content {
        void writeTo(Path fresh) throws IOException;
    }

    /**
     * The uid this process creates files as: the filesystem uid of {@code /proc/self/status}
     * (the owner of {@code /proc/self} is root in a process that is not dumpable), else the owner
     * of a file it creates.
     */
    static int processUid() throws IOException {
        Integer u = uid;
        if (u != null) {
            return u;
        }
        u = uidFromStatus();
        if (u == null) {
            Path probe = Files.createTempFile("offheap-doctor-uid", ".tmp", OWNER_ONLY_FILE);
            try {
                u = (Integer) Files.getAttribute(probe, "unix:uid", LinkOption.NOFOLLOW_LINKS);
            } finally {
                Files.deleteIfExists(probe);
            }
        }
        uid = u;
        return u;
    }

    private static Integer uidFromStatus() {
        try (BufferedReader r = Files.newBufferedReader(Paths.get("/proc/self/status"), StandardCharsets.UTF_8)) {
            for (String line; (line = r.readLine()) != null; ) {
                if (line.startsWith("Uid:")) {
                    String[] ids = line.substring(4).trim().split("\\s+");
                    // real, effective, saved, filesystem: files are created as the last.
                    return Integer.valueOf(ids[ids.length >= 4 ? 3 : ids.length - 1]);
                }
            }
        } catch (IOException | RuntimeException e) {
            Log.debug("cannot read the uid from /proc/self/status: " + e);
        }
        return null;
    }

    /**
     * Throws, with the reason, unless every entry on {@code path} (made absolute), the last one
     * included, is one only this process's user or root can replace. A path through a symbolic
     * link is checked once more by its real path.
     */
    static void checkPath(Path path) throws IOException {
        Path p = path.toAbsolutePath().normalize();
        boolean linked = walk(p);
        if (linked) {
            walk(p.toRealPath());
        }
    }

    private static boolean walk(Path p) throws IOException {
        int me = processUid();
        Path dir = p.getRoot();
        boolean linked = false;
        for (Path name : p) {
            Path entry = dir.resolve(name);
            Map<String, Object> d = Files.readAttributes(dir, "unix:uid,mode");
            Map<String, Object> e;
            try {
                e = Files.readAttributes(entry, "unix:uid,mode", LinkOption.NOFOLLOW_LINKS);
            } catch (NoSuchFileException x) {
                throw new NoSuchFileException(entry.toString(), null, "no such file or directory");
            }
            int dirUid = (Integer) d.get("uid");
            int dirMode = (Integer) d.get("mode");
            int entryUid = (Integer) e.get("uid");
            boolean trustedEntry = entryUid == me || entryUid == 0;
            if (dirUid != me && dirUid != 0) {
                throw new IOException(entry + " lies in " + dir + ", which uid " + dirUid + " owns and can change");
            }
            if (((Integer) e.get("mode") & S_IFMT) == S_IFLNK) {
                if (!trustedEntry) {
                    throw new IOException(entry + " is a symbolic link of uid " + entryUid);
                }
                linked = true;
            }
            if ((dirMode & SHARED_WRITE) != 0 && !((dirMode & S_ISVTX) != 0 && trustedEntry)) {
                throw new IOException(entry + " lies in " + dir + ", where other users can replace it");
            }
            dir = entry;
        }
        return linked;
    }

    /**
     * Throws unless {@code dir} is a directory itself (not a link to one) owned by this process's
     * uid, writable by nobody else, on a path nobody else can change.
     */
    static void checkPrivateDirectory(Path dir) throws IOException {
        Path p = dir.toAbsolutePath().normalize();
        Map<String, Object> a = Files.readAttributes(p, "unix:uid,mode", LinkOption.NOFOLLOW_LINKS);
        int mode = (Integer) a.get("mode");
        int owner = (Integer) a.get("uid");
        if ((mode & S_IFMT) != S_IFDIR) {
            throw new IOException(p + " is " + kind(mode) + ", not a directory");
        }
        if (owner != processUid()) {
            throw new IOException(p + " belongs to uid " + owner + ", not to this process's uid " + processUid());
        }
        if ((mode & SHARED_WRITE) != 0) {
            throw new IOException(p + " is writable by other users (mode " + Integer.toOctalString(mode & 07777) + ")");
        }
        checkPath(p);
    }

    /**
     * Throws unless {@code file} is a regular file (not a link, FIFO or device) that this
     * process's uid owns. With {@code singleLink}, also unless it has no other name: a hard link
     * that someone else made to a file of ours would receive what is appended.
     */
    static void checkOwnFile(Path file, boolean singleLink) throws IOException {
        Map<String, Object> a = Files.readAttributes(file, "unix:uid,mode,nlink", LinkOption.NOFOLLOW_LINKS);
        int mode = (Integer) a.get("mode");
        int owner = (Integer) a.get("uid");
        if ((mode & S_IFMT) != S_IFREG) {
            throw new IOException(file + " is " + kind(mode) + "; the agent writes only regular files of its own");
        }
        if (owner != processUid()) {
            throw new IOException(file + " belongs to uid " + owner + "; the agent writes only files of its own uid "
                    + processUid());
        }
        if (singleLink && (Integer) a.get("nlink") != 1) {
            throw new IOException(file + " has " + a.get("nlink") + " hard links; the agent appends only to a file with one");
        }
    }

    /**
     * Throws unless {@code file} (a library named by the operator) is a regular file of this
     * process's uid or root that nobody else can write, on a path nobody else can change.
     */
    static void checkLoadable(Path file) throws IOException {
        Path p = file.toAbsolutePath().normalize();
        checkPath(p);
        Path real = p.toRealPath();
        Map<String, Object> a = Files.readAttributes(real, "unix:uid,mode", LinkOption.NOFOLLOW_LINKS);
        int mode = (Integer) a.get("mode");
        int owner = (Integer) a.get("uid");
        if ((mode & S_IFMT) != S_IFREG) {
            throw new IOException(real + " is " + kind(mode) + ", not a library file");
        }
        if (owner != processUid() && owner != 0) {
            throw new IOException(real + " belongs to uid " + owner + ", neither this process's uid nor root");
        }
        if ((mode & SHARED_WRITE) != 0) {
            throw new IOException(real + " is writable by other users (mode " + Integer.toOctalString(mode & 07777) + ")");
        }
    }

    /** Whether {@code file} is a regular file of ours that nobody else can write. */
    static boolean isOwnSealedFile(Path file) throws IOException {
        Map<String, Object> a = Files.readAttributes(file, "unix:uid,mode", LinkOption.NOFOLLOW_LINKS);
        int mode = (Integer) a.get("mode");
        return (mode & S_IFMT) == S_IFREG && (Integer) a.get("uid") == processUid() && (mode & SHARED_WRITE) == 0;
    }

    /**
     * Opens {@code file} for appending: created 0600 if new (with {@code O_EXCL}, so no link or
     * FIFO is ever opened by it), else only a regular file of ours with one name, on a path
     * nobody else can change.
     */
    static OutputStream openForAppend(Path file) throws IOException {
        Path p = file.toAbsolutePath().normalize();
        checkParent(p);
        Set<OpenOption> create = new HashSet<OpenOption>(Arrays.asList(StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE, StandardOpenOption.APPEND, LinkOption.NOFOLLOW_LINKS));
        Set<OpenOption> existing = new HashSet<OpenOption>(Arrays.asList(
                StandardOpenOption.WRITE, StandardOpenOption.APPEND, LinkOption.NOFOLLOW_LINKS));
        for (int attempt = 0; ; attempt++) {
            try {
                return Channels.newOutputStream(FileChannel.open(p, create, OWNER_ONLY_FILE));
            } catch (FileAlreadyExistsException e) {
                // there already: checked before it is opened
            }
            // Checked by type before the open, so a FIFO never blocks it; nobody else can swap
            // the file between the two on a path that passed checkParent.
            checkOwnFile(p, true);
            try {
                return Channels.newOutputStream(FileChannel.open(p, existing));
            } catch (NoSuchFileException e) {
                if (attempt > 0) {
                    throw e;
                }
            }
        }
    }

    /**
     * Shifts a rotated set by one: {@code <file>.<files-1>} goes, each {@code <file>.<n>} becomes
     * {@code <file>.<n+1>} and {@code <file>} becomes {@code <file>.1} (with one file kept,
     * {@code <file>} just goes). Renames and deletions act on the entries themselves, never on
     * what a link names, and every entry moved or deleted must be a regular file of ours: one
     * that is not stops the rotation, untouched, with the reason. The caller opens the fresh
     * {@code <file>} with {@link #openForAppend}.
     */
    static void rotate(Path file, int files) throws IOException {
        Path p = file.toAbsolutePath().normalize();
        checkParent(p);
        String name = p.getFileName().toString();
        Path dir = p.getParent();
        // Checked before anything moves, so a refusal leaves the set as it was.
        for (int n = 0; n < files; n++) {
            Path entry = n == 0 ? p : dir.resolve(name + "." + n);
            if (Files.exists(entry, LinkOption.NOFOLLOW_LINKS)) {
                checkOwnFile(entry, false);
            }
        }
        if (files <= 1) {
            Files.deleteIfExists(p);
            return;
        }
        Files.deleteIfExists(dir.resolve(name + "." + (files - 1)));
        for (int n = files - 2; n >= 0; n--) {
            Path from = n == 0 ? p : dir.resolve(name + "." + n);
            if (Files.exists(from, LinkOption.NOFOLLOW_LINKS)) {
                Files.move(from, dir.resolve(name + "." + (n + 1)), StandardCopyOption.ATOMIC_MOVE);
            }
        }
    }

    /**
     * Replaces {@code target} by what {@code content} writes: into a fresh 0600 file in the same
     * directory, renamed over the target, which must be absent or a regular file of ours (a link
     * there is refused, never followed). Returns the target's absolute path.
     */
    static Path replace(Path target, Content content) throws IOException {
        Path p = target.toAbsolutePath().normalize();
        checkParent(p);
        checkReplaceable(p);
        String name = p.getFileName().toString();
        Path fresh = Files.createTempFile(p.getParent(), "." + name + ".", ".tmp", OWNER_ONLY_FILE);
        try {
            content.writeTo(fresh);
            checkOwnFile(fresh, true);
            checkReplaceable(p);
            moveIntoPlace(fresh, p);
        } finally {
            Files.deleteIfExists(fresh);
        }
        return p;
    }

    /**
     * Renames {@code from} over {@code to}: atomically where the file system can, so a reader
     * sees the old file or the new one, never a part.
     */
    static void moveIntoPlace(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static void checkReplaceable(Path p) throws IOException {
        try {
            checkOwnFile(p, false);
        } catch (NoSuchFileException e) {
            // created by the rename
        }
    }

    private static void checkParent(Path p) throws IOException {
        Path parent = p.getParent();
        if (parent == null) {
            throw new IOException(p + " names no file");
        }
        checkPath(parent);
        // The file's own entry: in a directory others may write, only the sticky bit keeps them
        // from swapping it (the file is ours: created by us, or checked to be before it opens).
        Map<String, Object> d = Files.readAttributes(parent, "unix:uid,mode");
        int mode = (Integer) d.get("mode");
        int owner = (Integer) d.get("uid");
        if (owner != processUid() && owner != 0) {
            throw new IOException(p + " lies in " + parent + ", which uid " + owner + " owns and can change");
        }
        if ((mode & SHARED_WRITE) != 0 && (mode & S_ISVTX) == 0) {
            throw new IOException(p + " lies in " + parent + ", where other users can replace it");
        }
    }

    private static String kind(int mode) {
        switch (mode & S_IFMT) {
            case S_IFLNK:
                return "a symbolic link";
            case S_IFIFO:
                return "a FIFO";
            case S_IFDIR:
                return "a directory";
            case S_IFSOCK:
                return "a socket";
            case S_IFREG:
                return "a regular file";
            default:
                return "a device";
        }
    }
}
