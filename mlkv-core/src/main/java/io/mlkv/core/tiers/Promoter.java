package io.mlkv.core.tiers;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs installs of copies into a faster tier (DRAM from RocksDB, HBM from below) under the
 * store's mutation lock: at once when the lock is free, otherwise on one background thread that
 * waits for it, so a reader never waits for a writer to promote what it read. The thread's queue
 * is short; when it is full the promotion is dropped (a later read promotes again), counted and
 * said once in the log, since many drops leave the faster tier colder than reads expect. Installs
 * check versions read before their values, so running late is safe.
 */
public final class Promoter implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Promoter.class);

    private final ReentrantLock mutation;
    private final Lifecycle lifecycle;
    private final ThreadPoolExecutor thread;
    private final AtomicLong dropped = new AtomicLong();

    public Promoter(ReentrantLock mutation, Lifecycle lifecycle) {
        this.mutation = mutation;
        this.lifecycle = lifecycle;
        this.thread = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS, new ArrayBlockingQueue<>(16), r -> {
            Thread t = new Thread(r, "mlkv-promote");
            t.setDaemon(true);
            return t;
        }, (task, pool) -> {
            if (dropped.incrementAndGet() == 1 && !pool.isShutdown()) {
                LOG.info("promotions dropped: the promoter's queue of 16 is full while the mutation lock is busy "
                        + "(later reads promote again; further drops are counted, not logged)");
            }
        });
    }

    /** Promotions dropped so far because the background thread's queue was full. */
    public long dropped() {
        return dropped.get();
    }

    /** Runs {@code installation} under the mutation lock, now or on the promoter thread. Caller is inside the lifecycle. */
    public void promote(Runnable installation) {
        if (mutation.tryLock()) {
            try {
                installation.run();
            } finally {
                mutation.unlock();
            }
            return;
        }
        thread.execute(() -> {
            try {
                lifecycle.enter();
            } catch (IllegalStateException closedMeanwhile) {
                return;
            }
            try {
                mutation.lock();
                try {
                    installation.run();
                } finally {
                    mutation.unlock();
                }
            } catch (RuntimeException e) {
                // A promotion is an optimisation: the data stays where it was; say why it failed.
                LOG.warn("background promotion failed: {}", e.toString());
            } finally {
                lifecycle.exit();
            }
        });
    }

    /** Stops taking promotions; the one running finishes. */
    @Override
    public void close() {
        thread.shutdown();
    }
}
