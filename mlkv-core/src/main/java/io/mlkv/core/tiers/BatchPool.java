package io.mlkv.core.tiers;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;

/**
 * The store's threads for splitting one large batch into parts that run at once (the store's
 * {@code batchThreads} setting). The calling thread runs one part itself, so a pool of one thread
 * runs everything on the caller. Parts must not depend on each other; a part's failure is rethrown
 * once every part has ended, the others' added as suppressed. A part that splits work again (a
 * call from one of the pool's threads) runs it on its own thread, so parts never wait for each
 * other's threads. One caller's batch splits at a time: a caller that finds another's parts on the
 * pool runs all of its own parts itself, since several callers already keep the cores busy and
 * hand-offs to busy threads only add waiting.
 */
public final class BatchPool implements AutoCloseable {
    /** Set on the pools' own threads. */
    private static final ThreadLocal<Boolean> WORKER = ThreadLocal.withInitial(() -> false);

    private final int threads;
    /** Null for a pool of one thread: the caller runs every part. */
    private final ExecutorService workers;
    /** 1 while a caller's batch is split over the pool's threads. */
    private final AtomicInteger splitting = new AtomicInteger();

    public BatchPool(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("batchThreads must be at least 1, was " + threads);
        }
        this.threads = threads;
        AtomicInteger id = new AtomicInteger();
        this.workers = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, r -> {
            Thread t = new Thread(() -> {
                WORKER.set(true);
                r.run();
            }, "mlkv-batch-" + id.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    /** Threads a batch may use, the caller's included. */
    public int threads() {
        return threads;
    }

    /** How many parts a batch of {@code count} items splits into, each at least {@code minPart} items. */
    public int partsFor(int count, int minPart) {
        return (int) Math.max(1, Math.min(threads, (long) count / Math.max(1, minPart)));
    }

    /**
     * The part, of {@code parts}, that owns {@code key} when a batch is split by key rather than
     * by position (so that all entries of one key land in one part, in batch order).
     */
    public static int partOf(long key, int parts) {
        return (int) (((key * 0x9E3779B97F4A7C15L) >>> 33) % parts);
    }

    /** A range of positions {@code [from, to)} of a batch. */
    @FunctionalInterface
    public interface RangeTask {
        void run(int from, int to);
    }

    /**
     * Splits positions {@code [0, n)} into consecutive ranges of at least {@code minPart} (as many
     * as there are threads at most) and runs {@code task} on each, as {@link #run} does; returns
     * the number of ranges.
     */
    public int runRanges(int n, int minPart, RangeTask task) {
        int parts = partsFor(n, minPart);
        run(parts, p -> task.run((int) ((long) n * p / parts), (int) ((long) n * (p + 1) / parts)));
        return parts;
    }

    /** Runs {@code part.accept(p)} for every {@code p < parts}, part 0 on the caller, and returns when all have ended. */
    public void run(int parts, IntConsumer part) {
        if (parts <= 1 || workers == null || WORKER.get() || !splitting.compareAndSet(0, 1)) {
            for (int p = 0; p < parts; p++) {
                part.accept(p);
            }
            return;
        }
        try {
            runSplit(parts, part);
        } finally {
            splitting.set(0);
        }
    }

    private void runSplit(int parts, IntConsumer part) {
        List<Future<?>> running = new ArrayList<>(parts - 1);
        for (int p = 1; p < parts; p++) {
            int at = p;
            running.add(workers.submit(() -> part.accept(at)));
        }
        Throwable failure = null;
        try {
            part.accept(0);
        } catch (RuntimeException | Error e) {
            failure = e;
        }
        boolean interrupted = false;
        for (Future<?> f : running) {
            while (true) {
                try {
                    f.get();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true; // every part must end before the batch's arrays are reused
                } catch (ExecutionException e) {
                    Throwable cause = e.getCause();
                    if (failure == null) {
                        failure = cause;
                    } else {
                        failure.addSuppressed(cause);
                    }
                    break;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (failure instanceof RuntimeException r) {
            throw r;
        }
        if (failure instanceof Error err) {
            throw err;
        }
        if (failure != null) {
            throw new IllegalStateException("a part of a batch failed", failure);
        }
    }

    @Override
    public void close() {
        if (workers != null) {
            workers.shutdown();
        }
    }
}
