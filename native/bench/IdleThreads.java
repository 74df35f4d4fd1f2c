// Benchmark workload for smaps-bench: a JVM with many idle threads (many stack mappings).
public class IdleThreads {
    public static void main(String[] args) throws Exception {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 200;
        java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(n);
        for (int i = 0; i < n; i++) {
            Thread t = new Thread(() -> {
                started.countDown();
                try {
                    Thread.sleep(Long.MAX_VALUE);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "idle-" + i);
            t.setDaemon(true);
            t.start();
        }
        started.await();
        System.out.println("READY " + ProcessHandle.current().pid());
        System.out.flush();
        // Exits when the benchmark closes stdin.
        while (System.in.read() >= 0) {
        }
    }
}
