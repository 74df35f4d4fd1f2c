import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * Threads that fill a pool and stay, or keep coming. {@code java -javaagent:... ThreadPool
 * pool <threads> <rampMs> <holdSeconds>}: a fixed executor of that many threads gets one
 * long-running task every rampMs/threads ms (each task a thread that works and sleeps), then
 * holds them all for holdSeconds. {@code leak <everyMs> <seconds>}: a new thread every everyMs
 * that waits for the end of the run, for that many seconds (the leak: a thread per request that
 * nobody ends). Prints "full <epoch_ms> <threads>" when the pool is full and "started <n>
 * <epoch_ms>" at the end, then ends every thread it made.
 */
public final class ThreadPool {
    public static void main(String[] args) throws Exception {
        ZipWorkload.awaitFirstSample();
        final CountDownLatch stop = new CountDownLatch(1);
        Runnable worker = new Runnable() {
            @Override
            public void run() {
                long x = 0;
                try {
                    while (!stop.await(50, TimeUnit.MILLISECONDS)) {
                        x += System.nanoTime() % 7; // a little work per wake-up
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                if (x == 42) {
                    System.out.print("");
                }
            }
        };
        if (args[0].equals("pool")) {
            int threads = Integer.parseInt(args[1]);
            long rampMs = Long.parseLong(args[2]);
            int holdSeconds = Integer.parseInt(args[3]);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            for (int i = 0; i < threads; i++) {
                pool.execute(worker); // a fixed pool starts a thread per task up to its size
                Thread.sleep(rampMs / threads);
            }
            System.out.println("full " + System.currentTimeMillis() + " " + threads);
            Thread.sleep(TimeUnit.SECONDS.toMillis(holdSeconds));
            System.out.println("started " + threads + " " + System.currentTimeMillis());
            stop.countDown();
            pool.shutdown();
            pool.awaitTermination(10, TimeUnit.SECONDS);
        } else {
            long everyMs = Long.parseLong(args[1]);
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[2]));
            List<Thread> started = new ArrayList<Thread>();
            while (System.nanoTime() < end) {
                Thread t = new Thread(worker, "leaked-" + started.size());
                t.start();
                started.add(t);
                Thread.sleep(everyMs);
            }
            System.out.println("started " + started.size() + " " + System.currentTimeMillis());
            stop.countDown();
            for (Thread t : started) {
                t.join(10_000);
            }
        }
    }
}
