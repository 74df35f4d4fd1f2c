import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.Inflater;

/**
 * What a zip census scan costs with n registered cleanables (n live Inflaters), run with the
 * agent ({@code zipCensus=off}, so only the scans made here run):
 * {@code java -javaagent:offheap-doctor.jar=log=quiet,interval=1h,zipCensus=off -cp <dir> ZipCensusBench n}.
 *
 * <p>Prints one "scan" line: the census' own scan time and how long it held the common Cleaner's
 * lock, median and maximum over repeated scans, the first (cold) scan's lock time and the census'
 * longest over its life (its start-up check included). Then one "app" line: the time the application's
 * thread takes to create and end an Inflater (both take the Cleaner's lock), with the census off
 * and while a thread scans back to back (20 ms apart), in alternating phases of the same run.
 */
public final class ZipCensusBench {
    private static final int SCANS = 30;
    private static final long PHASE_NS = 1_500_000_000L;
    private static final int PHASES = 3;
    private static volatile boolean stop;

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        final Method scan = Class.forName("io.offheapdoctor.ZipCensus").getMethod("scanForTest");
        scan.setAccessible(true);
        List<Inflater> live = new ArrayList<Inflater>(n);
        for (int i = 0; i < n; i++) {
            live.add(new Inflater());
        }
        long firstLockNs = number((String) scan.invoke(null), "lock_held_last_ns"); // cold
        for (int i = 0; i < 4; i++) {
            scan.invoke(null); // warm-up
        }
        long[] scanNs = new long[SCANS];
        long[] lockNs = new long[SCANS];
        String last = null;
        for (int i = 0; i < SCANS; i++) {
            last = (String) scan.invoke(null);
            if (!last.contains("\"method\":\"cleaner\"") || last.contains("\"truncated\":true")) {
                throw new IllegalStateException("not a full cleaner census: " + last);
            }
            scanNs[i] = number(last, "scan_ns");
            lockNs[i] = number(last, "lock_held_last_ns");
            Thread.sleep(20);
        }
        long alive = number(last, "alive");
        if (alive < n) {
            throw new IllegalStateException("census saw " + alive + " of " + n + " Inflaters: " + last);
        }
        System.out.println("scan n=" + n + " cleanables=" + number(last, "cleanables")
                + " scan_median_ns=" + median(scanNs) + " scan_max_ns=" + max(scanNs)
                + " lock_median_ns=" + median(lockNs) + " lock_max_ns=" + max(lockNs)
                + " first_lock_ns=" + firstLockNs + " census_lock_held_max_ns=" + number(last, "lock_held_max_ns"));

        appOps(); // warm-up
        long[] off = new long[3];
        long[] on = new long[3];
        long opsOff = 0;
        long opsOn = 0;
        int scansDuring = 0;
        for (int p = 0; p < PHASES; p++) {
            long[] r = appOps();
            opsOff += r[3];
            merge(off, r);
            stop = false;
            final int[] count = {0};
            Thread scanner = new Thread(new Runnable() {
                @Override
                public void run() {
                    try {
                        while (!stop) {
                            scan.invoke(null);
                            count[0]++;
                            Thread.sleep(20);
                        }
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                }
            }, "census-scanner");
            scanner.start();
            r = appOps();
            stop = true;
            scanner.join();
            scansDuring += count[0];
            opsOn += r[3];
            merge(on, r);
        }
        System.out.println("app n=" + n + " scans=" + scansDuring
                + " off_mean_ns=" + off[0] / PHASES + " off_p999_ns=" + off[1] / PHASES + " off_max_ns=" + off[2]
                + " on_mean_ns=" + on[0] / PHASES + " on_p999_ns=" + on[1] / PHASES + " on_max_ns=" + on[2]
                + " ops_off=" + opsOff + " ops_on=" + opsOn);
        for (Inflater f : live) {
            f.end();
        }
    }

    private static void merge(long[] into, long[] r) {
        into[0] += r[0];
        into[1] += r[1];
        into[2] = Math.max(into[2], r[2]);
    }

    /** Creates and ends Inflaters for one phase: mean, p99.9 and max ns per pair, and the count. */
    private static long[] appOps() {
        long[] t = new long[6_000_000];
        int k = 0;
        long end = System.nanoTime() + PHASE_NS;
        long total = 0;
        while (k < t.length) {
            long a = System.nanoTime();
            if (a > end) {
                break;
            }
            Inflater f = new Inflater();
            f.end();
            long d = System.nanoTime() - a;
            t[k++] = d;
            total += d;
        }
        long[] sorted = Arrays.copyOf(t, k);
        Arrays.sort(sorted);
        return new long[] {total / Math.max(1, k), sorted[(int) (k * 0.999)], sorted[k - 1], k};
    }

    private static long median(long[] v) {
        long[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    private static long max(long[] v) {
        long m = 0;
        for (long x : v) {
            m = Math.max(m, x);
        }
        return m;
    }

    /** The first number after "key": in the census JSON. */
    private static long number(String json, String key) {
        int p = json.indexOf("\"" + key + "\":") + key.length() + 3;
        int e = p;
        while (e < json.length() && Character.isDigit(json.charAt(e))) {
            e++;
        }
        return Long.parseLong(json.substring(p, e));
    }
}
