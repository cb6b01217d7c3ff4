package io.mlkv.core.tiers;

import io.mlkv.storage.rocksdb.RocksDbTier;
import java.util.Arrays;
import org.agrona.collections.Long2LongHashMap;

/**
 * Entries on their way from DRAM down to RocksDB: dirty evictions, and writes the DRAM tier did
 * not admit. An entry enters this buffer before it leaves DRAM (under the DRAM bucket's lock), and
 * leaves it only after RocksDB holds it, so a reader that misses DRAM finds the newest value here
 * or in RocksDB, never an older one.
 *
 * <p>Appended to only by the holder of the store's mutation lock; looked up by any reader. If a
 * RocksDB write fails, the entries stay here, visible to readers, and the next mutation or
 * {@code flush()} writes them first. Appends keep their order, so when a key appears twice the
 * later value is written last and wins.
 */
public final class WriteBackBuffer {
    private final int dim;
    private final Long2LongHashMap latest = new Long2LongHashMap(-1);
    private long[] keys = new long[64];
    private float[] values;
    private volatile int count;

    public WriteBackBuffer(int dim) {
        this.dim = dim;
        this.values = new float[64 * dim];
    }

    public boolean isEmpty() {
        return count == 0;
    }

    public int size() {
        return count;
    }

    /** Appends row {@code row} of {@code src} for {@code key}. */
    synchronized void add(long key, float[] src, int row) {
        int n = count;
        if (n == keys.length) {
            keys = Arrays.copyOf(keys, n * 2);
            values = Arrays.copyOf(values, n * 2 * dim);
        }
        keys[n] = key;
        System.arraycopy(src, row * dim, values, n * dim, dim);
        latest.put(key, n);
        count = n + 1;
    }

    /** Whether {@code key} is buffered. */
    public boolean contains(long key) {
        if (count == 0) {
            return false;
        }
        synchronized (this) {
            return latest.get(key) >= 0;
        }
    }

    /** Copies the newest buffered value of {@code key} to row {@code row} of {@code out}. */
    public boolean lookup(long key, float[] out, int row) {
        if (count == 0) {
            return false;
        }
        synchronized (this) {
            long index = latest.get(key);
            if (index < 0) {
                return false;
            }
            System.arraycopy(values, (int) index * dim, out, row * dim, dim);
            return true;
        }
    }

    /**
     * Writes everything buffered to RocksDB in one batch and empties the buffer; on failure the
     * buffer is left as it was and the exception propagates. Caller holds the mutation lock.
     *
     * @return the number of entries written
     */
    public int writeTo(RocksDbTier rocks) {
        int n = count;
        if (n == 0) {
            return 0;
        }
        // Only the mutation-lock holder appends, and it is the caller, so [0, n) is stable.
        rocks.putAll(keys, values, n);
        synchronized (this) {
            latest.clear();
            count = 0;
            if (keys.length > 1 << 16) {
                keys = new long[64];
                values = new float[64 * dim];
            }
        }
        return n;
    }
}
