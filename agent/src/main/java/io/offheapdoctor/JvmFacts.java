package io.offheapdoctor;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.MemoryMXBean;
import java.lang.management.MemoryUsage;
import java.lang.management.RuntimeMXBean;
import java.lang.management.ThreadMXBean;
import java.util.List;
import java.util.Locale;

/**
 * What only the JVM can tell, gathered per sample through the management beans and diagnostic
 * commands and handed to the native core as one JSON object. Texts the JVM prints (heap info,
 * NMT) cross as text: the native core owns their parsers.
 */
final class JvmFacts {
    private final String nmtMode;
    private final String threadStackSize;
    private final String trimNativeHeapInterval;

    private final ZipCensus census;
    /** The census holds the common Cleaner's lock while it walks: it runs at its own pace. */
    private final long censusEveryNs;
    private long lastCensusNs;
    private String lastCensus;

    JvmFacts(ZipCensus census, long censusEveryMs) {
        this.census = census;
        this.censusEveryNs = censusEveryMs * 1_000_000L;
        String mode = DiagnosticCommands.vmOption("NativeMemoryTracking");
        this.nmtMode = mode == null ? "unknown" : mode.toLowerCase(Locale.ROOT);
        this.threadStackSize = DiagnosticCommands.vmOption("ThreadStackSize");
        this.trimNativeHeapInterval = DiagnosticCommands.vmOption("TrimNativeHeapInterval");
    }

    String nmtMode() {
        return nmtMode;
    }

    String collect() {
        Json j = new Json();
        PlatformBeans beans = PlatformBeans.get();
        RuntimeMXBean rt = beans.runtime;
        j.put("java_version", System.getProperty("java.version"));
        j.put("vm_name", rt.getVmName());
        j.put("vm_vendor", rt.getVmVendor());
        j.put("uptime_ms", rt.getUptime());
        MemoryMXBean mem = beans.memory;
        j.putRaw("heap", usage(mem.getHeapMemoryUsage()));
        j.putRaw("non_heap", usage(mem.getNonHeapMemoryUsage()));
        ThreadMXBean threads = beans.threads;
        j.putRaw("threads", new Json()
                .put("live", threads.getThreadCount())
                .put("daemon", threads.getDaemonThreadCount())
                .put("peak", threads.getPeakThreadCount())
                .end());
        j.putRaw("buffer_pools", bufferPools(beans.bufferPools));
        if (threadStackSize != null) {
            j.put("thread_stack_size_kb", parseLong(threadStackSize));
        }
        if (trimNativeHeapInterval != null) {
            j.put("trim_native_heap_interval_ms", parseLong(trimNativeHeapInterval));
        }
        j.put("heap_info", DiagnosticCommands.tryInvoke("gcHeapInfo"));
        j.put("nmt_mode", nmtMode);
        if (nmtMode.equals("summary") || nmtMode.equals("detail")) {
            j.put("nmt_summary", DiagnosticCommands.tryInvoke("vmNativeMemory", "summary", "scale=KB"));
        }
        if (nmtMode.equals("detail")) {
            j.put("nmt_detail", DiagnosticCommands.tryInvoke("vmNativeMemory", "detail", "scale=KB"));
        }
        if (census != null) {
            long now = System.nanoTime();
            if (lastCensus == null || now - lastCensusNs >= censusEveryNs) {
                lastCensus = census.scanJson();
                lastCensusNs = now;
            }
            j.putRaw("zip", lastCensus);
        }
        return j.end();
    }

    private static long parseLong(String s) {
        try {
            return Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static String bufferPools(List<BufferPoolMXBean> pools) {
        StringBuilder sb = new StringBuilder("[");
        for (BufferPoolMXBean b : pools) {
            if (sb.length() > 1) {
                sb.append(',');
            }
            sb.append(new Json()
                    .put("name", b.getName())
                    .put("count", b.getCount())
                    .put("used", b.getMemoryUsed())
                    .put("capacity", b.getTotalCapacity())
                    .end());
        }
        return sb.append(']').toString();
    }

    private static String usage(MemoryUsage u) {
        return new Json().put("used", u.getUsed()).put("committed", u.getCommitted()).put("max", u.getMax()).end();
    }
}
