package io.mlkv.core.tiers;

import io.mlkv.storage.rocksdb.RocksDbTier;
import java.util.Arrays;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntConsumer;
import org.agrona.collections.Long2LongHashMap;

/**
 * Entries on their way from DRAM down to RocksDB: dirty evictions, and writes the DRAM tier did
 * not admit. An entry enters this buffer before it leaves DRAM (under the DRAM bucket's lock), and
 * leaves it only after RocksDB holds it, so a reader that misses DRAM finds the newest value here
 * or in RocksDB, never an older one.
 *
 * <p>Two parts: the one appended to, and at most one being written to RocksDB by the buffer's
 * own thread ({@link #drainInBackground}), so that a writer's next batch runs while RocksDB takes
 * the last one's evictions. Lookups see both, the appended part first (it is newer). Appended to
 * only by the holder of the store's mutation lock, as are drains started and awaited. Every other
 * write to RocksDB that could touch the same keys (flushes, deletes, demotions) comes after a
 * {@link #writeTo}, which waits for the drain first, so RocksDB takes a key's values in the
 * order they were buffered.
 *
 * <p>If a RocksDB write fails, the entries stay here, visible to readers, and the next write of
 * the buffer (the next mutation, or {@code flush()}) writes them first and reports the failure if
 * it persists. Appends keep their order, so when a key appears twice the later value is written
 * last and wins.
 */
public final class WriteBackBuffer implements AutoCloseable {
    /** Bytes of rows the appended part may reach while a drain runs before the next batch waits for it. */
    private static final int DRAIN_BACKLOG_BYTES = 16 << 20;

    private final int dim;
    /** {@link #DRAIN_BACKLOG_BYTES} in rows. */
    private final int backlogRows;
    /** Appended to; guarded by {@code this} for lookups. */
    private Part appending;
    /** Being written to RocksDB (or left after a failed write); null when none. Guarded by {@code this}. */
    private Part draining;
    /** The running or finished drain of {@link #draining}; only the mutation-lock holder reads it. */
    private Future<?> drain;
    /** A drained part, emptied, for the next swap (its arrays already grown); guarded by {@code this}. */
    private Part spare;
    private volatile int count;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "mlkv-write-back");
        t.setDaemon(true);
        return t;
    });

    /** A run of buffered rows and where each key's newest is. */
    private static final class Part {
        final Long2LongHashMap latest = new Long2LongHashMap(-1);
        long[] keys;
        float[] values;
        int count;

        Part(int dim) {
            keys = new long[64];
            values = new float[64 * dim];
        }
    }

    public WriteBackBuffer(int dim) {
        this.dim = dim;
        this.backlogRows = Math.max(256, DRAIN_BACKLOG_BYTES / (dim * 4));
        this.appending = new Part(dim);
    }

    public boolean isEmpty() {
        return count == 0;
    }

    public int size() {
        return count;
    }

    /** Appends row {@code row} of {@code src} for {@code key}. */
    synchronized void add(long key, float[] src, int row) {
        Part p = appending;
        int n = p.count;
        if (n == p.keys.length) {
            p.keys = Arrays.copyOf(p.keys, n * 2);
            p.values = Arrays.copyOf(p.values, n * 2 * dim);
        }
        p.keys[n] = key;
        System.arraycopy(src, row * dim, p.values, n * dim, dim);
        p.latest.put(key, n);
        p.count = n + 1;
        count++;
    }

    /** Whether {@code key} is buffered. */
    public boolean contains(long key) {
        if (count == 0) {
            return false;
        }
        synchronized (this) {
            return appending.latest.get(key) >= 0 || (draining != null && draining.latest.get(key) >= 0);
        }
    }

    /** Copies the newest buffered value of {@code key} to row {@code row} of {@code out}. */
    public boolean lookup(long key, float[] out, int row) {
        if (count == 0) {
            return false;
        }
        synchronized (this) {
            for (Part p = appending; p != null; p = p == appending ? draining : null) {
                long index = p.latest.get(key);
                if (index >= 0) {
                    System.arraycopy(p.values, (int) index * dim, out, row * dim, dim);
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * Writes everything buffered to RocksDB and empties the buffer: waits for a running drain (or
     * writes a failed one's rows again), then writes the appended rows in one batch. On failure
     * what was not written stays buffered and the exception propagates. Caller holds the mutation
     * lock.
     *
     * @return the number of entries written here (a drain's are counted by {@link #drainInBackground})
     */
    public int writeTo(RocksDbTier rocks) {
        int written = finishDrain(rocks);
        Part p = appending;
        int n = p.count;
        if (n == 0) {
            return written;
        }
        // Only the mutation-lock holder appends, and it is the caller, so [0, n) is stable.
        rocks.putAll(p.keys, p.values, n);
        synchronized (this) {
            count -= n;
            p.latest.clear();
            p.count = 0;
            if (p.keys.length > 1 << 16) {
                appending = new Part(dim);
            }
        }
        return written + n;
    }

    /**
     * Starts writing the appended rows to RocksDB on the buffer's thread, if none is being written
     * (else leaves them to the next call, unless they passed {@link #DRAIN_BACKLOG_BYTES}: then waits for
     * the running drain first). A drain that failed is written again here, and its failure
     * propagates if it persists. Caller holds the mutation lock.
     *
     * @param written told how many rows each finished drain wrote, on the buffer's thread
     * @return rows written on the caller's thread (a failed drain's, written again)
     */
    public int drainInBackground(RocksDbTier rocks, IntConsumer written) {
        int here = 0;
        if (drain != null) {
            if (!drain.isDone() && appending.count < backlogRows) {
                return 0;
            }
            here = finishDrain(rocks);
        }
        Part p = appending;
        if (p.count == 0) {
            return here;
        }
        synchronized (this) {
            draining = p;
            appending = spare != null ? spare : new Part(dim);
            spare = null;
        }
        drain = thread.submit(() -> {
            rocks.putAll(p.keys, p.values, p.count);
            written.accept(drained(p));
        });
        return here;
    }

    /**
     * Waits for the running drain, if any; if it failed, writes its rows here (propagating a
     * failure that persists). Caller holds the mutation lock.
     *
     * @return the failed drain's rows written here, else 0
     */
    private int finishDrain(RocksDbTier rocks) {
        Future<?> d = drain;
        if (d == null) {
            return 0;
        }
        try {
            d.get();
            drain = null;
            return 0;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the write-back of evicted rows", e);
        } catch (ExecutionException e) {
            // The rows are still in draining, visible to readers: write them here, in order.
            Part p;
            synchronized (this) {
                p = draining;
            }
            rocks.putAll(p.keys, p.values, p.count);
            drain = null;
            return drained(p);
        }
    }

    /**
     * Retires the draining part {@code p}, which RocksDB now holds: readers stop seeing it, and,
     * as none can reach it any more, it is emptied for the next swap unless it grew large.
     *
     * @return how many rows it held
     */
    private synchronized int drained(Part p) {
        int n = p.count;
        draining = null;
        count -= n;
        p.latest.clear();
        p.count = 0;
        if (p.keys.length <= 1 << 16) {
            spare = p;
        }
        return n;
    }

    /** Stops the buffer's thread; the store writes the buffer before closing it. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        thread.shutdown();
        try {
            thread.awaitTermination(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
