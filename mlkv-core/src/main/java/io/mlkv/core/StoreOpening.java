package io.mlkv.core;

import io.mlkv.core.hbm.HbmShards;
import io.mlkv.core.hbm.HbmTier;
import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.storage.FileTrees;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.rocksdb.RocksDbTier;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The steps of opening a store that are not just opening a tier: whether a GPU tier can be had,
 * warming HBM from a restored checkpoint, and the entry count kept in RocksDB's metadata across
 * clean closes (with the flag that tells a clean close from a crash).
 */
final class StoreOpening {
    private static final Logger LOG = LoggerFactory.getLogger(MlkvStore.class);
    private static final String META_COUNT = "entry-count";
    private static final String META_CLEAN = "clean-shutdown";

    private StoreOpening() {
    }

    /**
     * A store restored from a checkpoint holds the HBM tier's entries of that moment in
     * {@code hbm/}: they are loaded into HBM (with a GPU) and then deleted in every case, since
     * after this store's first write they would no longer match what lies below.
     */
    static void warmHbmFromRestoredCheckpoint(RocksDbTier rocks, HbmShards hbm, FileIo fileIo) {
        Path saved = rocks.directory().resolve(HbmTier.CHECKPOINT_DIR);
        if (!Files.isDirectory(saved)) {
            return;
        }
        if (hbm != null) {
            long started = System.nanoTime();
            try {
                long n = hbm.warm(rocks.directory(), fileIo);
                LOG.info("HBM tier warmed from the restored checkpoint: {} entries via {} in {} ms", n,
                        fileIo.lastPath(), (System.nanoTime() - started) / 1_000_000);
            } catch (IOException | RuntimeException e) {
                LOG.warn("HBM tier starts cold: its checkpointed entries could not be loaded ({})", e.toString());
            }
        }
        try {
            FileTrees.delete(saved);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "delete " + saved, e.getClass().getSimpleName(),
                    e.getMessage(), e);
        }
    }

    /**
     * Throws if {@code mode} is {@link GpuMode#ON} and no HBM tier can be opened; called before the
     * store touches its directory.
     */
    static void checkGpuAvailable(GpuMode mode) {
        String reason = mode == GpuMode.ON ? HbmTier.unavailableReason() : null;
        if (reason != null) {
            throw new IllegalStateException("GpuMode.ON was asked for, but no GPU tier can be opened: " + reason
                    + "; use GpuMode.AUTO or GpuMode.OFF on this machine");
        }
    }

    /** The HBM tier per {@code mode}: null for OFF, and for AUTO where none can be opened (the reason logged). */
    static HbmShards openHbm(GpuMode mode, int dim, long capacity, int[] devices, boolean writeBack) {
        if (mode == GpuMode.OFF) {
            return null;
        }
        String reason = HbmTier.unavailableReason();
        if (reason != null) {
            LOG.info("GPU tier not used ({}); running on DRAM and SSD", reason);
            return null;
        }
        int visible = CudaDevice.count();
        HbmTier[] tiers = new HbmTier[devices.length];
        try {
            for (int s = 0; s < devices.length; s++) {
                if (devices[s] >= visible) {
                    throw new IllegalStateException("HBM shard " + s + ": CUDA device " + devices[s] + " does not exist; "
                            + visible + " visible (ordinals 0 to " + (visible - 1) + "); give hbmDevices among them");
                }
                try {
                    tiers[s] = HbmTier.open(dim, capacity, writeBack, devices[s]);
                } catch (RuntimeException e) {
                    throw new IllegalStateException("HBM shard " + s + ": CUDA device " + devices[s]
                            + " could not be opened: " + e.getMessage(), e);
                }
            }
            if (devices.length > 1) {
                LOG.info("HBM tier in {} shards on CUDA devices {}", devices.length, Arrays.toString(devices));
            }
            return new HbmShards(dim, tiers);
        } catch (RuntimeException e) {
            for (HbmTier t : tiers) {
                if (t != null) {
                    try {
                        t.close();
                    } catch (RuntimeException suppressed) {
                        e.addSuppressed(suppressed);
                    }
                }
            }
            throw e;
        }
    }

    /**
     * The entry count a clean close recorded, or, after a crash, the count of RocksDB's keys;
     * marks the store open (not clean) until the next {@link #recordCount}.
     */
    static long recoverCount(RocksDbTier rocks) {
        long stored = rocks.readMeta(META_COUNT, -1);
        boolean clean = rocks.readMeta(META_CLEAN, 0) == 1;
        long count;
        if (clean && stored >= 0) {
            count = stored;
        } else {
            long start = System.nanoTime();
            count = rocks.size();
            if (count > 0) {
                LOG.info("store at {} has no entry count from a clean close (it crashed, or last ran with "
                        + "SizeCounting.ON_DEMAND); counted its {} entries in {} ms",
                        rocks.directory(), count, (System.nanoTime() - start) / 1_000_000);
            }
        }
        rocks.writeMeta(META_CLEAN, 0);
        return count;
    }

    /** Records an exact entry count as of a clean state (a close, or the moment a checkpoint is taken). */
    static void recordCount(RocksDbTier rocks, long count) {
        rocks.writeMeta(META_COUNT, count);
        rocks.writeMeta(META_CLEAN, 1);
    }

    /**
     * Marks the store open again after {@link #recordCount}, or at an open that keeps no count: a
     * crash from here on, or an open after it that counts, recounts.
     */
    static void markOpen(RocksDbTier rocks) {
        rocks.writeMeta(META_CLEAN, 0);
    }
}
