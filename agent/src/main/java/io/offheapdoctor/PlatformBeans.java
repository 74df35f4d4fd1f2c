package io.offheapdoctor;

import io.offheapdoctor.Internals.MethodRef;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.lang.management.RuntimeMXBean;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The JVM's management beans the samples read (runtime, memory, threads, buffer pools).
 *
 * <p>With the native core loaded they come straight from {@code sun.management.ManagementFactoryHelper}
 * (through JNI, see {@link Internals}), the same objects {@code ManagementFactory} hands out in
 * the end. {@code ManagementFactory} itself finds them through its platform component registry,
 * which is built with streams and lambdas: in a JVM that has not used the JDK's management API
 * yet, that means about 150 more loaded classes and a dozen generated ones, and on JDK 25 the
 * class generation often makes the JIT compile the class-file library, which leaves 5 MiB of
 * malloc'd memory in glibc. Without the native core, or where the helper is not as expected,
 * they come from {@code ManagementFactory}.
 */
final class PlatformBeans {
    private static final Object LOCK = new Object();
    private static PlatformBeans direct;
    private static boolean directTried;

    final RuntimeMXBean runtime;
    final MemoryMXBean memory;
    final ThreadMXBean threads;
    final List<BufferPoolMXBean> bufferPools;

    private PlatformBeans(RuntimeMXBean runtime, MemoryMXBean memory, ThreadMXBean threads,
            List<BufferPoolMXBean> bufferPools) {
        this.runtime = runtime;
        this.memory = memory;
        this.threads = threads;
        this.bufferPools = bufferPools;
    }

    /** The beans: the direct ones once the native core is loaded, else ManagementFactory's. */
    static PlatformBeans get() {
        synchronized (LOCK) {
            if (!directTried && Internals.nativeRoute()) {
                directTried = true;
                try {
                    direct = resolveDirect();
                } catch (Exception | LinkageError e) {
                    Log.debug("management beans through ManagementFactory: " + ZipCensus.describe(e));
                }
            }
            if (direct != null) {
                return direct;
            }
        }
        return new PlatformBeans(ManagementFactory.getRuntimeMXBean(), ManagementFactory.getMemoryMXBean(),
                ManagementFactory.getThreadMXBean(), ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class));
    }

    private static PlatformBeans resolveDirect() throws Exception {
        Class<?> helper = Class.forName("sun.management.ManagementFactoryHelper");
        RuntimeMXBean runtime = (RuntimeMXBean) call(helper, "getRuntimeMXBean");
        MemoryMXBean memory = (MemoryMXBean) call(helper, "getMemoryMXBean");
        ThreadMXBean threads = (ThreadMXBean) call(helper, "getThreadMXBean");
        if (runtime == null || memory == null || threads == null) {
            throw new IllegalStateException("ManagementFactoryHelper gave no bean");
        }
        return new PlatformBeans(runtime, memory, threads, bufferPools(helper));
    }

    private static Object call(Class<?> c, String method) throws Exception {
        return MethodRef.of(c.getMethod(method), true).invoke(null);
    }

    /**
     * JDK 16+: one bean per {@code jdk.internal.misc.VM.getBufferPools()} entry, made as the
     * helper's own {@code getBufferPoolMXBeans()} makes them (which maps them with a stream).
     * Before that the helper's method has no stream, and is called as it is.
     */
    @SuppressWarnings("unchecked")
    private static List<BufferPoolMXBean> bufferPools(Class<?> helper) throws Exception {
        List<?> pools;
        MethodRef create;
        try {
            Class<?> vm = Class.forName("jdk.internal.misc.VM");
            pools = (List<?>) MethodRef.of(vm.getMethod("getBufferPools"), true).invoke(null);
            create = MethodRef.of(helper.getDeclaredMethod("createBufferPoolMXBean",
                    Class.forName("jdk.internal.misc.VM$BufferPool")), true);
        } catch (ClassNotFoundException | NoSuchMethodException e) {
            return Collections.unmodifiableList((List<BufferPoolMXBean>) call(helper, "getBufferPoolMXBeans"));
        }
        List<BufferPoolMXBean> out = new ArrayList<BufferPoolMXBean>();
        for (Object p : pools) {
            out.add((BufferPoolMXBean) create.invoke(null, p));
        }
        return Collections.unmodifiableList(out);
    }
}
