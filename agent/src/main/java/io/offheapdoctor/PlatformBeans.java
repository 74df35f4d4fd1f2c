package io.offheapdoctor;

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
 * (through the native core, {@link NativeCore#platformBean}), the same objects {@code ManagementFactory} hands out in
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
                } catch (RuntimeException | LinkageError e) {
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

    private static PlatformBeans resolveDirect() {
        RuntimeMXBean runtime = (RuntimeMXBean) NativeCore.platformBean(NativeCore.BEAN_RUNTIME);
        MemoryMXBean memory = (MemoryMXBean) NativeCore.platformBean(NativeCore.BEAN_MEMORY);
        ThreadMXBean threads = (ThreadMXBean) NativeCore.platformBean(NativeCore.BEAN_THREADS);
        List<BufferPoolMXBean> pools = new ArrayList<BufferPoolMXBean>();
        for (Object p : NativeCore.bufferPoolBeans()) {
            pools.add((BufferPoolMXBean) p);
        }
        return new PlatformBeans(runtime, memory, threads, Collections.unmodifiableList(pools));
    }
}
