package io.mlkv.server.playground;

import java.util.ArrayList;
import java.util.List;

/** Runs client loops on their own threads and reports every failure once all have stopped. */
final class ClientThreads {
    /** One client's loop; {@code id} is 0 .. threads - 1. */
    interface Loop {
        void run(int id) throws Exception;
    }

    private ClientThreads() {
    }

    /**
     * Runs {@code threads} copies of {@code loop} and waits for all.
     *
     * @throws IllegalStateException naming the first failure, the others attached as suppressed
     */
    static void run(int threads, String name, Loop loop) throws InterruptedException {
        List<Throwable> failures = new ArrayList<>();
        List<Thread> started = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            int id = i;
            Thread t = new Thread(() -> {
                try {
                    loop.run(id);
                } catch (Throwable e) {
                    synchronized (failures) {
                        failures.add(e);
                    }
                }
            }, name + "-" + id);
            started.add(t);
            t.start();
        }
        for (Thread t : started) {
            t.join();
        }
        if (!failures.isEmpty()) {
            Throwable first = failures.get(0);
            while (first instanceof java.util.concurrent.CompletionException && first.getCause() != null) {
                first = first.getCause();
            }
            String what = first instanceof io.mlkv.client.TokenCacheException ? first.getMessage() : first.toString();
            IllegalStateException e = new IllegalStateException(failures.size() + " of " + threads + " " + name
                    + " threads failed, first: " + what, failures.get(0));
            failures.subList(1, failures.size()).forEach(e::addSuppressed);
            throw e;
        }
    }
}
