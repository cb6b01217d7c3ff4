package io.mlkv.core;

import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.storage.dram.DramTier;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Configures and opens a store. Each setter checks its argument at once; {@link #build()}
 * checks the settings together and opens the store without changing the builder.
 */
public final class MlkvStoreBuilder {
    private int dim = -1;
    private long dramCapacityBytes = 256L << 20;
    private long blockCacheBytes = 64L << 20;
    private Path directory;
    private Durability durability = Durability.WRITE_BACK;
    private SizeCounting sizeCounting = SizeCounting.ON_WRITE;
    private String policy = "lru";
    private GpuMode gpuMode = GpuMode.AUTO;
    private FileIo.Mode fileIoMode = FileIo.Mode.AUTO;
    private long hbmCapacity = 1L << 20;
    private int[] hbmDevices = {0};
    private boolean syncWrites;
    private int prefetchThreads = 2;
    private int batchThreads = Runtime.getRuntime().availableProcessors();
    private boolean hbmWriteBack;
    private boolean mapDram = true;
    private HbmAdmission hbmAdmission = HbmAdmission.ALWAYS;
    private long hbmSpillRows;

    MlkvStoreBuilder() {
    }

    /** Values per vector; required, 1 to 65536. */
    public MlkvStoreBuilder dim(int dim) {
        if (dim < 1 || dim > 65536) {
            throw new IllegalArgumentException("dim must be between 1 and 65536, was " + dim);
        }
        this.dim = dim;
        return this;
    }

    /** Native memory for the DRAM tier, metadata included; default 256 MiB. */
    public MlkvStoreBuilder dramCapacityBytes(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("dramCapacityBytes must be positive, was " + bytes);
        }
        this.dramCapacityBytes = bytes;
        return this;
    }

    /** RocksDB block cache size; default 64 MiB. */
    public MlkvStoreBuilder blockCacheBytes(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("blockCacheBytes must be positive, was " + bytes);
        }
        this.blockCacheBytes = bytes;
        return this;
    }

    /** Directory of the SSD tier; required. Created if missing; must hold an MLKV store or be empty. */
    public MlkvStoreBuilder directory(Path directory) {
        if (directory == null) {
            throw new IllegalArgumentException("directory must not be null");
        }
        this.directory = directory;
        return this;
    }

    /** Default {@link Durability#WRITE_BACK}. */
    public MlkvStoreBuilder durability(Durability durability) {
        this.durability = oneOf("durability", durability, Durability.values());
        return this;
    }

    /**
     * How {@link MlkvStore#size()} is kept; default {@link SizeCounting#ON_WRITE}.
     * {@link SizeCounting#ON_DEMAND} spares host-array puts and deletes a RocksDB lookup per key
     * DRAM does not hold, and makes {@code size()} count the table when called.
     */
    public MlkvStoreBuilder sizeCounting(SizeCounting counting) {
        this.sizeCounting = oneOf("sizeCounting", counting, SizeCounting.values());
        return this;
    }

    /** DRAM eviction and admission policy: {@code lru} (default), {@code lfu} or {@code tinylfu}. */
    public MlkvStoreBuilder policy(String name) {
        this.policy = io.mlkv.storage.policy.Policies.checkName(name);
        return this;
    }

    /**
     * How the HBM tier's checkpoint files are written and read: cuFile where it works with
     * POSIX as fallback ({@link FileIo.Mode#AUTO}, default), or one path only.
     */
    public MlkvStoreBuilder fileIo(FileIo.Mode mode) {
        this.fileIoMode = oneOf("fileIo mode", mode, FileIo.Mode.values());
        return this;
    }

    /** Default {@link GpuMode#AUTO}. */
    public MlkvStoreBuilder gpu(GpuMode mode) {
        this.gpuMode = oneOf("gpu mode", mode, GpuMode.values());
        return this;
    }

    /**
     * Entries the HBM tier holds when a GPU is used (rounded up to whole 128-slot buckets, a
     * power of two of them); default 1 Mi.
     */
    public MlkvStoreBuilder hbmCapacity(long entries) {
        if (entries < 1 || entries > (1L << 40)) {
            throw new IllegalArgumentException("hbmCapacity must be between 1 and 2^40 entries, was " + entries);
        }
        this.hbmCapacity = entries;
        return this;
    }

    /**
     * The CUDA devices of the HBM tier, one shard each; default {@code {0}}. With several, every key
     * has one owner shard ({@code ShardedGpuTable.ownerOf}: a hash of the key, not key modulo the
     * count), each shard holds {@link #hbmCapacity} entries of its keys, and DRAM and RocksDB stay one
     * per store. A device may be given more than once (several shards on one GPU). Device-pointer
     * calls take their batch on any of these devices. Without a GPU it has no effect.
     *
     * @throws IllegalArgumentException for no device, more than 32, or a negative ordinal
     */
    public MlkvStoreBuilder hbmDevices(int... ordinals) {
        if (ordinals == null || ordinals.length == 0 || ordinals.length > 32) {
            throw new IllegalArgumentException("hbmDevices takes 1 to 32 CUDA device ordinals, was "
                    + (ordinals == null ? "null" : ordinals.length));
        }
        for (int d : ordinals) {
            if (d < 0) {
                throw new IllegalArgumentException("hbmDevices: a CUDA device ordinal is 0 or more, was " + d
                        + " in " + Arrays.toString(ordinals));
            }
        }
        this.hbmDevices = ordinals.clone();
        return this;
    }

    /**
     * Whether writes of keys the HBM tier holds stay in HBM until it evicts them or the store
     * is flushed, instead of going to DRAM and updating the HBM copy; default off. Saves the
     * DRAM write and the write-back to RocksDB of hot keys that are written often (embedding
     * updates). Needs {@link Durability#WRITE_BACK}; without a GPU it has no effect.
     */
    public MlkvStoreBuilder hbmWriteBack(boolean writeBack) {
        this.hbmWriteBack = writeBack;
        return this;
    }

    /**
     * With a GPU: whether the DRAM tier's memory is pinned and mapped so that device-pointer
     * reads ({@link MlkvStore#multiGet(CUdeviceptr, long, CUdeviceptr, CUdeviceptr)}) look
     * their HBM misses up in DRAM on the GPU, over PCIe, instead of on the CPU; default on.
     * Pinning commits the whole DRAM tier in physical memory at open. Keys the GPU finds in
     * DRAM this way do not refresh their DRAM recency. Without a GPU it has no effect.
     */
    public MlkvStoreBuilder mapDram(boolean map) {
        this.mapDram = map;
        return this;
    }

    /** Which HBM misses found below are installed into HBM; default {@link HbmAdmission#ALWAYS}. */
    public MlkvStoreBuilder hbmAdmission(HbmAdmission admission) {
        this.hbmAdmission = oneOf("hbmAdmission", admission, HbmAdmission.values());
        return this;
    }

    /**
     * With a GPU: rows of an on-SSD spill log for what HBM evicts, or 0 (default) for none. A
     * clean entry that leaves HBM and that DRAM does not hold is written, straight from device
     * memory (cuFile where it works, see {@link #fileIo}), to a ring of this many rows in
     * {@code directory/hbm-spill.log} instead of to DRAM; device reads that miss HBM and DRAM
     * read it back from there into device memory. The log is scratch space: it starts empty
     * at every open and its oldest rows are overwritten when it is full. Needs a GPU mode
     * other than {@link GpuMode#OFF}; without a GPU it is not created.
     */
    public MlkvStoreBuilder hbmSpillRows(long rows) {
        if (rows < 0 || rows > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("hbmSpillRows must be 0 to " + (Integer.MAX_VALUE - 8) + ", was " + rows);
        }
        this.hbmSpillRows = rows;
        return this;
    }

    /** Fsync RocksDB's write-ahead log on every write, to survive power loss; default off. */
    public MlkvStoreBuilder syncWrites(boolean sync) {
        this.syncWrites = sync;
        return this;
    }

    /** Threads that run {@link MlkvStore#prefetch}; default 2. */
    public MlkvStoreBuilder prefetchThreads(int threads) {
        if (threads < 1 || threads > 256) {
            throw new IllegalArgumentException("prefetchThreads must be between 1 and 256, was " + threads);
        }
        this.prefetchThreads = threads;
        return this;
    }

    /**
     * Threads a large batch may split over, the caller's included (today: the demotion of what an
     * HBM install evicts); default the available processors. 1 keeps every batch on the caller's
     * thread.
     */
    public MlkvStoreBuilder batchThreads(int threads) {
        if (threads < 1 || threads > 1024) {
            throw new IllegalArgumentException("batchThreads must be between 1 and 1024, was " + threads);
        }
        this.batchThreads = threads;
        return this;
    }

    /** {@code value}, or an error naming the setting and its choices if it is null. */
    private static <E extends Enum<E>> E oneOf(String setting, E value, E[] choices) {
        if (value == null) {
            throw new IllegalArgumentException(setting + " must not be null; one of " + Arrays.toString(choices));
        }
        return value;
    }

    /**
     * Opens the store.
     *
     * @throws IllegalStateException if a required setting is missing or settings conflict
     * @throws MlkvException         if the directory is locked, incompatible or unreadable
     */
    public MlkvStore build() {
        if (dim < 0) {
            throw new IllegalStateException("dim is required: call dim(n) before build()");
        }
        if (directory == null) {
            throw new IllegalStateException("directory is required: call directory(path) before build()");
        }
        if (hbmWriteBack && durability != Durability.WRITE_BACK) {
            throw new IllegalStateException("hbmWriteBack(true) needs durability WRITE_BACK (was " + durability
                    + "): with WRITE_THROUGH every write reaches RocksDB before it is acknowledged; "
                    + "drop hbmWriteBack or use WRITE_BACK");
        }
        if (hbmSpillRows > 0 && gpuMode == GpuMode.OFF) {
            throw new IllegalStateException("hbmSpillRows(" + hbmSpillRows + ") spills what the HBM tier evicts, "
                    + "but gpu(GpuMode.OFF) turns that tier off: use GpuMode.AUTO or ON, or drop hbmSpillRows");
        }
        if (hbmSpillRows > 0 && hbmDevices.length > 1) {
            throw new IllegalStateException("hbmSpillRows(" + hbmSpillRows + ") works with one HBM shard; hbmDevices gives "
                    + hbmDevices.length + " " + Arrays.toString(hbmDevices) + ": drop hbmSpillRows or give one device");
        }
        long bucket = DramTier.bucketBytes(dim);
        if (dramCapacityBytes < bucket) {
            throw new IllegalStateException("dramCapacityBytes " + dramCapacityBytes
                    + " is too small for dim " + dim + ": raise it to at least " + bucket
                    + " bytes (one bucket of " + DramTier.BUCKET_SLOTS + " vectors)");
        }
        return new MlkvStore(new StoreConfig(dim, directory, dramCapacityBytes, blockCacheBytes, policy, durability,
                syncWrites, gpuMode, hbmCapacity, hbmDevices.clone(), hbmWriteBack, hbmAdmission, hbmSpillRows, fileIoMode, mapDram,
                prefetchThreads, batchThreads, sizeCounting));
    }
}
