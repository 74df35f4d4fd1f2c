package io.offheapdoctor;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.lang.reflect.Method;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Finds and loads the native core: an override path, or the library bundled in the jar for this
 * OS and architecture, extracted into a directory only this process's uid can change (see
 * {@link SafeFiles}). Every failure becomes one message for the operator; nothing here throws.
 */
final class NativeLoader {
    static final String LIBRARY_NAME = "liboffheap_doctor.so";

    private static final Object LOCK = new Object();
    private static volatile boolean loaded;
    private static volatile String failure;

    private NativeLoader() {}

    /** The outcome of a load attempt: {@code null} means loaded; otherwise the one-line reason. */
    static String load(Options options) {
        synchronized (LOCK) {
            if (loaded) {
                return null;
            }
            if (failure != null) {
                return failure;
            }
            failure = tryLoad(options);
            loaded = failure == null;
            return failure;
        }
    }

    static boolean isLoaded() {
        return loaded;
    }

    private static volatile Options configured;

    /** The options the agent started with; public API calls load the library with them. */
    static void configure(Options options) {
        configured = options;
    }

    /** Loads the library if nobody has yet; throws {@link NativeException} with the reason if it cannot. */
    static void ensureLoaded() {
        if (loaded) {
            return;
        }
        Options o = configured;
        String failure = load(o != null ? o : Options.parse(null, null));
        if (failure != null) {
            throw new NativeException("the native core is not available: " + failure);
        }
    }

    /** The platform name used for the jar's resource folder, e.g. {@code linux-x86_64}. */
    static String platform() {
        String os = System.getProperty("os.name", "unknown").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "unknown").toLowerCase(Locale.ROOT);
        if (os.startsWith("linux")) {
            os = "linux";
        } else if (os.startsWith("mac")) {
            os = "macos";
        } else if (os.startsWith("windows")) {
            os = "windows";
        }
        if (arch.equals("amd64") || arch.equals("x86_64")) {
            arch = "x86_64";
        } else if (arch.equals("aarch64") || arch.equals("arm64")) {
            arch = "aarch64";
        }
        return os + "-" + arch;
    }

    private static String tryLoad(Options options) {
        if (nativeAccessDenied()) {
            return "native access is denied (--illegal-native-access=deny) and not enabled for the class path;"
                    + " add --enable-native-access=ALL-UNNAMED to let the agent load its native core";
        }
        String override = options.libraryOverride();
        String early = earlyLibrary();
        String path;
        if (early != null) {
            // Loaded by -agentpath: the same file, so the same statics (the settings it applied).
            path = early;
            if (override != null && !new File(override).getAbsolutePath().equals(early)) {
                Log.info("using the native library that -agentpath loaded (" + early + "), not " + override);
            }
        } else if (override != null) {
            path = new File(override).getAbsolutePath();
            if (!new File(path).isFile()) {
                return "native library override " + path + " does not exist";
            }
            try {
                SafeFiles.checkLoadable(Paths.get(path));
            } catch (IOException | RuntimeException e) {
                return "not loading native library override " + path + ": " + e.getMessage();
            }
        } else {
            String resource = "/io/offheapdoctor/native/" + platform() + "/" + LIBRARY_NAME;
            if (NativeLoader.class.getResource(resource) == null) {
                return "this jar has no native library for " + platform() + " (it carries linux-x86_64)";
            }
            try {
                path = extract(resource, options.extractDir, false, false).toString();
            } catch (IOException | RuntimeException e) {
                return "cannot extract the native library (" + e.getMessage() + "); set extractDir=<dir> to a writable directory";
            }
        }
        String corrupt = truncatedElf(new File(path));
        if (corrupt != null) {
            return "cannot load native library " + path + ": " + corrupt;
        }
        warnAboutJdkNativeAccessNotice();
        try {
            System.load(path);
        } catch (UnsatisfiedLinkError e) {
            String m = String.valueOf(e.getMessage());
            String hint = m.contains("failed to map segment") || m.contains("Operation not permitted")
                    ? "; the directory may be mounted noexec: set extractDir=<dir> on an exec mount"
                    : m.contains("wrong ELF class") || m.contains("ELF") ? "; the library is for another platform" : "";
            return "cannot load native library " + path + ": " + m + hint;
        } catch (RuntimeException e) {
            // IllegalCallerException (JDK 24+ native access rules) or SecurityException.
            return "cannot load native library " + path + ": " + e;
        }
        try {
            String v = NativeCore.linkedVersion();
            Log.debug("native core " + v + " loaded from " + path);
        } catch (Throwable t) {
            return "native library " + path + " loaded but does not answer: " + t;
        }
        return null;
    }

    /**
     * The agent's native library already mapped into this process (loaded by
     * {@code -agentpath:<library>=...}), from {@code /proc/self/maps}; null when there is none.
     */
    static String earlyLibrary() {
        if (!agentpathGiven()) {
            return null;
        }
        try (java.io.BufferedReader r = Files.newBufferedReader(Paths.get("/proc/self/maps"))) {
            for (String line; (line = r.readLine()) != null; ) {
                int slash = line.indexOf('/');
                if (slash < 0 || line.indexOf("liboffheap_doctor", slash) < 0) {
                    continue;
                }
                String path = line.substring(slash);
                String name = path.substring(path.lastIndexOf('/') + 1);
                if (name.startsWith("liboffheap_doctor") && name.endsWith(".so") && new File(path).isFile()) {
                    return path;
                }
            }
        } catch (IOException | RuntimeException e) {
            Log.debug("cannot read /proc/self/maps: " + e);
        }
        return null;
    }

    /**
     * Whether an {@code -agentpath} naming the agent's library is among the JVM's options or in
     * {@code JAVA_TOOL_OPTIONS}: only then is {@code /proc/self/maps} (about 60 KiB of text in a
     * JVM) worth reading.
     */
    private static boolean agentpathGiven() {
        try {
            String tool = System.getenv("JAVA_TOOL_OPTIONS");
            if (tool != null && tool.contains("offheap_doctor")) {
                return true;
            }
            for (String a : inputArguments()) {
                if (a.startsWith("-agentpath:") && a.contains("offheap_doctor")) {
                    return true;
                }
            }
            return false;
        } catch (RuntimeException e) {
            return true; // not allowed to look (a SecurityManager): look at the maps, which may tell
        }
    }

    /**
     * {@code java -jar offheap-doctor.jar agentpath [dir]}: extracts the bundled library to
     * {@code dir} (or the private directory the agent uses) under the same rule as the agent's own
     * extraction, and returns its path. A library written to a given directory is made readable
     * by all (rw-r--r--), so a JVM running as another user can load it; the directory is the
     * operator's choice, and must be theirs alone.
     */
    static String extractForAgentpath(String dir) throws IOException {
        String resource = "/io/offheapdoctor/native/" + platform() + "/" + LIBRARY_NAME;
        try (InputStream probe = NativeLoader.class.getResourceAsStream(resource)) {
            if (probe == null) {
                throw new IOException("this jar has no native library for " + platform() + " (it carries linux-x86_64)");
            }
        }
        Path p = extract(resource, dir, true, dir != null);
        String corrupt = truncatedElf(p.toFile());
        if (corrupt != null) {
            throw new IOException(p + ": " + corrupt);
        }
        return p.toString();
    }

    /**
     * Why a 64-bit ELF file must not reach {@code dlopen}, or null. The dynamic loader maps the
     * segments a file's header promises without checking the file holds them, so a truncated
     * library (a copy cut short, a full disk) kills the JVM with SIGBUS inside {@code ld.so}
     * instead of failing the load. Anything else (not ELF, 32-bit, another machine) is left to
     * {@code dlopen}, which refuses it with its own message.
     */
    static String truncatedElf(File f) {
        try (java.io.RandomAccessFile r = new java.io.RandomAccessFile(f, "r")) {
            long size = r.length();
            byte[] header = new byte[64];
            if (size < header.length) {
                return null;
            }
            r.readFully(header);
            if (header[0] != 0x7f || header[1] != 'E' || header[2] != 'L' || header[3] != 'F' || header[4] != 2) {
                return null;
            }
            java.nio.ByteBuffer h = java.nio.ByteBuffer.wrap(header).order(
                    header[5] == 2 ? java.nio.ByteOrder.BIG_ENDIAN : java.nio.ByteOrder.LITTLE_ENDIAN);
            long phoff = h.getLong(32);
            long shoff = h.getLong(40);
            int phentsize = h.getShort(54) & 0xffff;
            int phnum = h.getShort(56) & 0xffff;
            long shEnd = shoff + (long) (h.getShort(58) & 0xffff) * (h.getShort(60) & 0xffff);
            if (phoff < 0 || phentsize < 56 || phoff + (long) phentsize * phnum > size || shoff < 0 || shEnd > size) {
                return "the file is truncated or corrupt (" + size + " bytes, its ELF header points past the end)";
            }
            byte[] entry = new byte[56];
            for (int i = 0; i < phnum; i++) {
                r.seek(phoff + (long) i * phentsize);
                r.readFully(entry);
                java.nio.ByteBuffer e = java.nio.ByteBuffer.wrap(entry).order(h.order());
                long offset = e.getLong(8);
                long fileSize = e.getLong(32);
                if (e.getInt(0) == 1 && (offset < 0 || fileSize < 0 || offset + fileSize > size)) { // PT_LOAD
                    return "the file is truncated or corrupt (" + size + " bytes, a segment ends at "
                            + (offset + fileSize) + ")";
                }
            }
            return null;
        } catch (IOException e) {
            return "cannot read it: " + e.getMessage();
        }
    }

    /**
     * Extracts the bundled library under a name that carries its SHA-256, so copies of different
     * builds never collide. An earlier copy is reused only when it is a regular file of ours that
     * nobody else can write and its SHA-256 is the one the build recorded; anything else there is
     * replaced. {@code keep}: the copy outlives this JVM even in a directory made for it;
     * {@code readableByAll}: rw-r--r--, for JVMs of other users.
     */
    private static Path extract(String resource, String extractDir, boolean keep, boolean readableByAll)
            throws IOException {
        // Streamed with a 64 KiB buffer, never the whole library in one array: a 2 MiB library
        // read into growing arrays left about 7 MiB of garbage, which in a small idle JVM is
        // young-generation pages made resident for good.
        byte[] buf = new byte[64 * 1024];
        byte[] sha = bundledDigest(resource, buf);
        String name = "liboffheap_doctor-" + hex(sha).substring(0, 16) + ".so";
        Place place = extractionDirectory(extractDir);
        Path dir = place.dir;
        Path target = dir.resolve(name);
        Path seal = dir.resolve(name + ".sha256");
        if (!place.fresh && Files.exists(target, LinkOption.NOFOLLOW_LINKS) && SafeFiles.isOwnSealedFile(target)) {
            String identity = identity(target);
            if (identity.equals(sealedIdentity(seal, sha))
                    || Arrays.equals(digest(Files.newInputStream(target, LinkOption.NOFOLLOW_LINKS), buf), sha)) {
                if (readableByAll && !Files.getPosixFilePermissions(target, LinkOption.NOFOLLOW_LINKS).equals(READABLE_BY_ALL)) {
                    Files.setPosixFilePermissions(target, READABLE_BY_ALL);
                }
                seal(seal, sha, target, identity);
                return target;
            }
        }
        Path tmp = Files.createTempFile(dir, "liboffheap_doctor-", ".tmp", SafeFiles.OWNER_ONLY_FILE);
        try {
            // Not hashed on the way: the jar is what the build hashed, and a digest before the
            // JIT has compiled it is the most expensive part of a first start.
            try (InputStream in = open(resource); OutputStream out = Files.newOutputStream(tmp, LinkOption.NOFOLLOW_LINKS)) {
                for (int n; (n = in.read(buf)) > 0; ) {
                    out.write(buf, 0, n);
                }
            }
            if (readableByAll) {
                Files.setPosixFilePermissions(tmp, READABLE_BY_ALL);
            }
            SafeFiles.moveIntoPlace(tmp, target);
        } finally {
            Files.deleteIfExists(tmp);
        }
        if (!place.fresh) {
            seal(seal, sha, target, null);
        } else if (!keep) {
            // A directory made for this JVM alone: gone with it (the mapping outlives the file),
            // so fallbacks do not pile up a copy per start.
            try {
                dir.toFile().deleteOnExit();
                target.toFile().deleteOnExit();
            } catch (SecurityException e) {
                Log.debug("cannot remove " + dir + " at exit: " + e);
            }
        }
        return target;
    }

    private static final java.util.Set<java.nio.file.attribute.PosixFilePermission> READABLE_BY_ALL =
            PosixFilePermissions.fromString("rw-r--r--");

    /**
     * What identifies one unchanged file: device, inode, size, and the modification and change
     * times. Any write or rename moves the change time, which no call can set back.
     */
    private static String identity(Path p) throws IOException {
        java.util.Map<String, Object> a = Files.readAttributes(p, "unix:dev,ino,size,lastModifiedTime,ctime",
                LinkOption.NOFOLLOW_LINKS);
        return a.get("dev") + ":" + a.get("ino") + ":" + a.get("size") + ":"
                + ((java.nio.file.attribute.FileTime) a.get("lastModifiedTime")).to(java.util.concurrent.TimeUnit.NANOSECONDS)
                + ":" + ((java.nio.file.attribute.FileTime) a.get("ctime")).to(java.util.concurrent.TimeUnit.NANOSECONDS);
    }

    /**
     * The identity of the copy whose SHA-256 was found to be {@code sha}, as the seal next to it
     * records it; null when there is no seal of ours for that digest. Hashing the copy at every
     * start is what the seal saves: the JIT has not compiled a digest yet when the agent starts,
     * so hashing the whole library then costs CPU and resident memory at every start.
     * The seal is as safe as the copy: both live in a directory nobody else can change, both
     * are ours, and neither is writable by anybody else.
     */
    private static String sealedIdentity(Path seal, byte[] sha) {
        try {
            if (!Files.exists(seal, LinkOption.NOFOLLOW_LINKS) || !SafeFiles.isOwnSealedFile(seal)
                    || Files.size(seal) > 512) {
                return null;
            }
            String[] words = new String(Files.readAllBytes(seal), java.nio.charset.StandardCharsets.US_ASCII).trim()
                    .split(" ");
            return words.length == 2 && words[0].equals(hex(sha)) ? words[1] : null;
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /** Records that {@code copy}, as it is now, has the digest {@code sha}; unless it says so already. */
    private static void seal(Path seal, byte[] sha, Path copy, String sealed) {
        try {
            String identity = identity(copy);
            if (identity.equals(sealed) && identity.equals(sealedIdentity(seal, sha))) {
                return;
            }
            final byte[] text = (hex(sha) + " " + identity + "\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            SafeFiles.replace(seal, new SafeFiles.Content() {
                @Override
                public void writeTo(Path fresh) throws IOException {
                    Files.write(fresh, text, LinkOption.NOFOLLOW_LINKS, java.nio.file.StandardOpenOption.TRUNCATE_EXISTING,
                            java.nio.file.StandardOpenOption.WRITE);
                }
            });
        } catch (IOException | RuntimeException e) {
            // Only a saving lost: the next start hashes the copy again.
            Log.debug("cannot seal " + copy + ": " + e);
        }
    }

    /**
     * SHA-256 of the bundled library as the build recorded it next to the library (in
     * {@code sha256sum} format); computed from the library itself in a jar built without that step.
     */
    private static byte[] bundledDigest(String resource, byte[] buf) throws IOException {
        InputStream in = NativeLoader.class.getResourceAsStream(resource + ".sha256");
        if (in == null) {
            return digest(open(resource), buf);
        }
        String text;
        try (InputStream src = in) {
            int n = 0;
            for (int r; n < 128 && (r = src.read(buf, n, 128 - n)) > 0; ) {
                n += r;
            }
            text = new String(buf, 0, n, java.nio.charset.StandardCharsets.US_ASCII).trim();
        }
        String hex = text.split("\\s+", 2)[0];
        if (!hex.matches("[0-9a-fA-F]{64}")) {
            throw new IOException("resource " + resource + ".sha256 holds no SHA-256");
        }
        byte[] sha = new byte[32];
        for (int i = 0; i < sha.length; i++) {
            sha[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        return sha;
    }

    private static String hex(byte[] bytes) {
        StringBuilder b = new StringBuilder(bytes.length * 2);
        for (byte x : bytes) {
            b.append(Character.forDigit((x >> 4) & 0xf, 16)).append(Character.forDigit(x & 0xf, 16));
        }
        return b.toString();
    }

    private static InputStream open(String resource) throws IOException {
        InputStream in = NativeLoader.class.getResourceAsStream(resource);
        if (in == null) {
            throw new IOException("resource " + resource + " is missing");
        }
        return in;
    }

    /** SHA-256 of what {@code in} holds (closed after). */
    private static byte[] digest(InputStream in, byte[] buf) throws IOException {
        Sha256 sha = new Sha256();
        try (InputStream src = in) {
            for (int n; (n = src.read(buf)) > 0; ) {
                sha.update(buf, 0, n);
            }
        }
        return sha.digest();
    }

    /**
     * The extraction directory: the configured one, or {@code <tmpdir>/offheap-doctor-<uid>},
     * created 0700 if missing, if it is a directory of this process's uid that nobody else can
     * write or swap ({@link SafeFiles#checkPrivateDirectory}). Otherwise a fresh private directory
     * is made, and the operator told in one line, so nobody else can place or swap the library
     * this JVM loads.
     */
    private static Place extractionDirectory(String configured) throws IOException {
        Path base = Paths.get(System.getProperty("java.io.tmpdir", "/tmp")).toAbsolutePath();
        Path dir = configured != null ? Paths.get(configured).toAbsolutePath().normalize()
                : base.resolve("offheap-doctor-" + SafeFiles.processUid());
        String why;
        try {
            if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
                try {
                    Files.createDirectories(dir, SafeFiles.OWNER_ONLY_DIR);
                } catch (FileAlreadyExistsException e) {
                    // made meanwhile, or a dangling link: checked below
                }
            }
            SafeFiles.checkPrivateDirectory(dir);
            return new Place(dir, false);
        } catch (IOException | RuntimeException e) {
            why = e.getMessage() != null ? e.getMessage() : e.toString();
        }
        Path fresh = Files.createTempDirectory(base, "offheap-doctor-", SafeFiles.OWNER_ONLY_DIR);
        try {
            SafeFiles.checkPrivateDirectory(fresh);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(fresh);
            throw new IOException("not in " + dir + " (" + why + ") nor in a fresh directory (" + e.getMessage() + ")");
        }
        Log.warn("cannot extract the native library to " + dir + " (" + why + "); using the fresh private directory "
                + fresh);
        return new Place(fresh, true);
    }

    /** Where the library goes, and whether that directory was made for this JVM alone. */
    private static final class Place {
        final Path dir;
        final boolean fresh;

        Place(Path dir, boolean fresh) {
            this.dir = dir;
            this.fresh = fresh;
        }
    }

    /** Java feature version: 8 for 1.8, else the first number. */
    static int javaFeature() {
        String v = System.getProperty("java.specification.version", "8");
        if (v.startsWith("1.")) {
            v = v.substring(2);
        }
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            return 8;
        }
    }

    /**
     * {@code Module.isNativeAccessEnabled()} of this class's module, or true before JDK 22. An
     * {@code --enable-native-access} that names ALL-UNNAMED answers it without reflection (which
     * generates classes on JDK 18+; see {@link Internals}).
     */
    private static boolean nativeAccessEnabled() {
        try {
            for (String a : inputArguments()) {
                if (a.startsWith("--enable-native-access=")
                        && Arrays.asList(a.substring("--enable-native-access=".length()).split(",")).contains("ALL-UNNAMED")) {
                    return true;
                }
            }
        } catch (RuntimeException e) {
            // asked by reflection below
        }
        try {
            Method getModule = Class.class.getMethod("getModule");
            Object module = getModule.invoke(NativeLoader.class);
            Method enabled = module.getClass().getMethod("isNativeAccessEnabled");
            return (Boolean) enabled.invoke(module);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return true;
        }
    }

    /** The last {@code --illegal-native-access=} on the command line, or null. */
    private static String illegalNativeAccessMode() {
        try {
            List<String> args = inputArguments();
            String mode = null;
            for (String a : args) {
                if (a.startsWith("--illegal-native-access=")) {
                    mode = a.substring("--illegal-native-access=".length());
                }
            }
            return mode;
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The JVM's options once read ({@link #inputArguments()}). */
    private static List<String> inputArguments;

    /** Launcher options that take their value as the next argument when not given with '='. */
    private static final List<String> VALUE_OPTIONS = Arrays.asList("-cp", "-classpath", "--class-path", "-p",
            "--module-path", "--upgrade-module-path", "--add-modules", "--limit-modules", "--add-reads",
            "--add-exports", "--add-opens", "--patch-module", "--enable-native-access", "--illegal-native-access",
            "--source");

    /**
     * The JVM's options, {@code --name value} joined as {@code --name=value}: read from
     * {@code JDK_JAVA_OPTIONS} and {@code /proc/self/cmdline} up to the main class, or, where that
     * cannot be told (an {@code @argfile}, no {@code /proc}), the runtime bean's input arguments.
     * ManagementFactory builds its platform registry with lambdas, which the agent's start-up
     * should not pay for (see {@link PlatformBeans}). Read once: a JVM's options do not change, and
     * the start-up asks up to three times.
     */
    static synchronized List<String> inputArguments() {
        if (inputArguments == null) {
            inputArguments = java.util.Collections.unmodifiableList(readInputArguments());
        }
        return inputArguments;
    }

    private static List<String> readInputArguments() {
        List<String> out = new java.util.ArrayList<String>();
        String env;
        try {
            env = System.getenv("JDK_JAVA_OPTIONS");
        } catch (SecurityException e) {
            env = null;
        }
        List<String> args = new java.util.ArrayList<String>();
        if (env != null && !env.trim().isEmpty()) {
            args.addAll(Arrays.asList(env.trim().split("\\s+")));
        }
        try {
            java.io.ByteArrayOutputStream raw = new java.io.ByteArrayOutputStream(4096);
            try (InputStream in = new java.io.FileInputStream("/proc/self/cmdline")) {
                byte[] buf = new byte[4096];
                for (int n; (n = in.read(buf)) > 0; ) {
                    raw.write(buf, 0, n);
                }
            }
            String[] cmd = new String(raw.toByteArray(), java.nio.charset.StandardCharsets.UTF_8).split("\u0000");
            args.addAll(Arrays.asList(cmd).subList(Math.min(1, cmd.length), cmd.length));
        } catch (IOException | RuntimeException e) {
            return ManagementFactory.getRuntimeMXBean().getInputArguments();
        }
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.startsWith("@")) {
                return ManagementFactory.getRuntimeMXBean().getInputArguments();
            }
            if (!a.startsWith("-") || a.equals("-jar") || a.equals("-m") || a.equals("--module")) {
                break; // the main class, jar or module: what follows is the application's
            }
            if (VALUE_OPTIONS.contains(a) && i + 1 < args.size()) {
                out.add(a + "=" + args.get(++i));
            } else {
                out.add(a);
            }
        }
        return out;
    }

    private static boolean nativeAccessDenied() {
        return javaFeature() >= 24 && "deny".equals(illegalNativeAccessMode()) && !nativeAccessEnabled();
    }

    /**
     * JDK 24+ prints a multi-line "restricted method" warning when class-path code loads a native
     * library without {@code --enable-native-access}. The agent does not grant itself native
     * access behind the operator's back (that switch is the whole class path's, the
     * application's too); it says in one line, before the JDK's warning, that the warning is
     * expected and how to silence it.
     */
    private static void warnAboutJdkNativeAccessNotice() {
        if (javaFeature() >= 24 && !nativeAccessEnabled() && !"allow".equals(illegalNativeAccessMode())) {
            Log.info("loading the native core; the JDK's 'restricted method' warning below is expected."
                    + " Add --enable-native-access=ALL-UNNAMED to silence it");
        }
    }
}
