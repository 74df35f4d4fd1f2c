package io.offheapdoctor;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.lang.management.MemoryUsage;
import java.lang.management.RuntimeMXBean;
import java.lang.management.ThreadMXBean;

/** What only the JVM can tell, gathered per sample through the standard management beans. */
final class JvmFacts {
    private JvmFacts() {}

    static String collect() {
        Json j = new Json();
        RuntimeMXBean rt = ManagementFactory.getRuntimeMXBean();
        j.put("java_version", System.getProperty("java.version"));
        j.put("vm_name", rt.getVmName());
        j.put("vm_vendor", rt.getVmVendor());
        j.put("uptime_ms", rt.getUptime());
        MemoryMXBean mem = ManagementFactory.getMemoryMXBean();
        j.putRaw("heap", usage(mem.getHeapMemoryUsage()));
        j.putRaw("non_heap", usage(mem.getNonHeapMemoryUsage()));
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        j.putRaw("threads", new Json()
                .put("live", threads.getThreadCount())
                .put("daemon", threads.getDaemonThreadCount())
                .put("peak", threads.getPeakThreadCount())
                .end());
        return j.end();
    }

    private static String usage(MemoryUsage u) {
        return new Json().put("used", u.getUsed()).put("committed", u.getCommitted()).put("max", u.getMax()).end();
    }
}
