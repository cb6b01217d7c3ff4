package io.mlkv.core;

import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * The store's prefetch threads (named daemons) and the futures of prefetches not yet finished,
 * so that a close fails those that have not started instead of leaving them hanging.
 */
final class Prefetches implements AutoCloseable {
    private final ExecutorService pool;
    private final Set<CompletableFuture<Void>> queued = ConcurrentHashMap.newKeySet();
    private final LongAdder promoted = new LongAdder();

    Prefetches(int threads) {
        AtomicInteger threadId = new AtomicInteger();
        this.pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "mlkv-prefetch-" + threadId.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    /** The exception a prefetch completes with when the store closed before it started. */
    static IllegalStateException closedBeforeStart() {
        return new IllegalStateException("store closed before the prefetch started");
    }

    /** Queues {@code work}; the future completes when it has run (exceptionally if it threw or never started). */
    CompletableFuture<Void> submit(Runnable work) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        queued.add(done);
        done.whenComplete((ignored, error) -> queued.remove(done));
        try {
            pool.execute(() -> {
                if (done.isDone()) {
                    return;
                }
                try {
                    work.run();
                    done.complete(null);
                } catch (Throwable t) {
                    done.completeExceptionally(t);
                }
            });
        } catch (RejectedExecutionException e) {
            done.completeExceptionally(closedBeforeStart());
        }
        return done;
    }

    /** Counts keys a prefetch promoted. */
    void count(long keys) {
        promoted.add(keys);
    }

    /** Keys prefetches promoted since the store opened. */
    long promoted() {
        return promoted.sum();
    }

    /** Fails every queued prefetch: their tasks then see the future done and return without running. */
    void failQueued() {
        IllegalStateException closing = closedBeforeStart();
        for (CompletableFuture<Void> f : queued) {
            f.completeExceptionally(closing);
        }
    }

    /** Stops taking work (a running prefetch finishes). */
    @Override
    public void close() {
        pool.shutdown();
    }
}
