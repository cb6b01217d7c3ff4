package io.mlkv.core;

import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.gpu.table.GpuHashTable;
import io.mlkv.gpu.table.ScoreMode;
import io.mlkv.gpu.table.TableSnapshot;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The HBM tier of the store: a {@link GpuHashTable} holding clean copies of hot entries. DRAM and
 * RocksDB stay authoritative; the store updates or erases an HBM copy in the same locked batch
 * that writes the entry below, and installs copies only when no write of the key happened since
 * they were read, so a copy here is never older than the entry below it. What the table evicts needs no
 * write-back.
 */
final class HbmCache implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HbmCache.class);

    private final GpuHashTable table;
    private final LongAdder hits = new LongAdder();
    private final LongAdder misses = new LongAdder();
    private final LongAdder installs = new LongAdder();

    private HbmCache(GpuHashTable table) {
        this.table = table;
    }

    /**
     * Opens the tier per {@code mode}: null for {@link GpuMode#OFF}, or for {@link GpuMode#AUTO}
     * where no GPU tier can be opened (the reason is logged); {@link GpuMode#ON} throws instead.
     */
    static HbmCache open(GpuMode mode, int dim, long capacity) {
        if (mode == GpuMode.OFF) {
            return null;
        }
        String reason = !Kernels.built() ? "the GPU kernels were not built (no nvcc when mlkv-gpu was packaged)"
                : CudaDevice.unavailableReason();
        if (reason != null) {
            if (mode == GpuMode.ON) {
                throw new IllegalStateException("GpuMode.ON was asked for, but no GPU tier can be opened: " + reason
                        + "; use GpuMode.AUTO or GpuMode.OFF on this machine");
            }
            LOG.info("GPU tier not used ({}); running on DRAM and SSD", reason);
            return null;
        }
        GpuHashTable table = GpuHashTable.create(dim, capacity, ScoreMode.LRU, 1 << 16);
        LOG.info("HBM tier on {}: {} slots of dim {}", table.deviceName(), table.capacity(), dim);
        return new HbmCache(table);
    }

    /** Looks up a batch; returns the number found. Rows of missing keys are left untouched. */
    int find(long[] keys, float[] out, boolean[] found) {
        int n = table.find(keys, out, found);
        hits.add(n);
        misses.add(keys.length - n);
        return n;
    }

    /** Installs clean copies of rows {@code [0, count)}. Caller holds the store's mutation lock. */
    void install(long[] keys, float[] values, int count) {
        if (count == 0) {
            return;
        }
        int dim = table.dim();
        table.insertOrAssign(Arrays.copyOf(keys, count), Arrays.copyOf(values, count * dim), null);
        installs.add(count);
    }

    /** Overwrites the copies of those of rows {@code [0, count)} that are present. Caller holds the mutation lock. */
    void update(long[] keys, float[] values, int count) {
        if (count == 0) {
            return;
        }
        int dim = table.dim();
        table.assign(Arrays.copyOf(keys, count), Arrays.copyOf(values, count * dim), null, null);
    }

    /** Drops the copies of {@code keys}. Caller holds the mutation lock. */
    void erase(long[] keys) {
        table.erase(keys);
    }

    /** Subdirectory of a checkpoint (and of a store restored from one) holding the HBM tier's entries. */
    static final String CHECKPOINT_DIR = "hbm";

    /**
     * Writes the tier's entries, straight from HBM, to {@code dir/hbm} ({@link TableSnapshot}).
     * Caller holds the store's mutation lock, so the table does not change meanwhile.
     *
     * @return the path that moved the data ({@code cufile} or {@code posix})
     */
    String checkpoint(Path dir, FileIo io) throws IOException {
        TableSnapshot.write(table, dir.resolve(CHECKPOINT_DIR), io);
        return io.lastPath();
    }

    /**
     * Loads entries written by {@link #checkpoint} from {@code dir/hbm} straight into HBM, so a
     * restored store starts with its hot set on the GPU.
     *
     * @return entries loaded
     */
    long warm(Path dir, FileIo io) throws IOException {
        long n = TableSnapshot.load(table, dir.resolve(CHECKPOINT_DIR), io);
        installs.add(n);
        return n;
    }

    TierStats stats(long rowBytes) {
        long in = installs.sum();
        return new TierStats("HBM", hits.sum(), misses.sum(), in, table.evictions(), 0, in * rowBytes, 0,
                table.size(), table.capacity());
    }

    @Override
    public void close() {
        table.close();
    }
}
