package io.mlkv.core;

import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.gpu.spill.SpillLog;
import io.mlkv.core.hbm.CombinedDeviceCalls;
import io.mlkv.core.hbm.DeviceWrites;
import io.mlkv.core.hbm.HbmMigration;
import io.mlkv.core.hbm.HbmShards;
import io.mlkv.core.tiers.BatchPool;
import io.mlkv.core.tiers.Batches;
import io.mlkv.core.tiers.HostTiers;
import io.mlkv.core.tiers.Lifecycle;
import io.mlkv.core.tiers.Promoter;
import io.mlkv.storage.BatchChecks;
import io.mlkv.storage.FileSync;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.ReservedKeys;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorVisitor;
import io.mlkv.storage.dram.DramTier;
import io.mlkv.storage.rocksdb.RepairReport;
import io.mlkv.storage.rocksdb.RocksDbTier;
import io.mlkv.storage.rocksdb.StoreRepair;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import jcuda.driver.CUdeviceptr;
import org.agrona.collections.Long2LongHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A tiered map from 64-bit keys to fixed-dimension {@code float32} vectors: an off-heap DRAM
 * cache over RocksDB, which holds the authoritative copy, and, where a CUDA GPU is used
 * ({@link GpuMode}), an HBM tier above them holding the hottest entries (clean copies, or dirty
 * ones with {@link MlkvStoreBuilder#hbmWriteBack(boolean)}). Open one with {@link #builder()}.
 *
 * <h2>Semantics</h2>
 * <ul>
 *   <li>A read returns the newest acknowledged value of a key, from whichever tier holds it.</li>
 *   <li>DRAM is a write-back cache: dirty entries reach RocksDB when evicted, on {@link #flush()}
 *       and on {@link #close()}. What survives a crash is set by {@link Durability}.</li>
 *   <li>Within one batch a key may repeat: {@link #multiPut} keeps its last value,
 *       {@link #accumulate} adds every delta, {@link #findOrInsert} initialises it once.</li>
 *   <li>Values are not inspected: NaN and infinities are stored and returned bit for bit, and
 *       {@link #accumulate} follows IEEE-754 arithmetic (NaN plus anything is NaN).</li>
 *   <li>Keys {@code Long.MIN_VALUE} and {@code Long.MIN_VALUE + 1} ({@link ReservedKeys}) are
 *       reserved for the GPU tier's empty and locked slot markers and are refused by every operation, with or
 *       without a GPU, so data moves between GPU and CPU-only deployments unchanged.</li>
 * </ul>
 *
 * <h2>Thread safety</h2>
 * Every method may be called from any number of threads at once. Reads that hit DRAM run in
 * parallel; operations that change which keys a tier holds (writes, promotions, write-backs) take
 * one store-wide write lock per batch, so concurrent writes to a key resolve to one of the written
 * vectors, never a mix. In a write-back store without HBM tier and spill log, the keys DRAM
 * already holds of an {@link #accumulate} and of a {@link #multiPut} are
 * written in place under DRAM's bucket locks, without that lock, so other threads may see such a
 * batch's keys change one by one (each key's row still changes whole, and no delta is lost).
 *
 * <h2>HBM tier</h2>
 * With a GPU, lookups try HBM first; keys found below are installed there (with
 * {@code insertAndEvict}) if their DRAM bucket's version, which every write below HBM changes,
 * is the one read before their value, so HBM never receives a value older than the newest one.
 * What an install evicts is copied down to DRAM. By default HBM holds clean copies: every write
 * goes to DRAM and updates the HBM copy in the same locked batch. With
 * {@link MlkvStoreBuilder#hbmWriteBack(boolean)}, writes of keys HBM holds stay in HBM, marked dirty, until
 * HBM evicts them (they go to DRAM as dirty) or {@link #flush()}, {@link #checkpoint},
 * {@link #forEach} or {@link #close()} writes them down. Which misses are installed is set by
 * {@link MlkvStoreBuilder#hbmAdmission(HbmAdmission)}. Checkpoints carry the HBM tier's entries, so a
 * restored store starts with its hot set on the GPU.
 *
 * <p>Device-pointer calls ({@link #multiGet(CUdeviceptr, long, CUdeviceptr, CUdeviceptr)},
 * {@link #multiPut(CUdeviceptr, long, CUdeviceptr)}, {@link #accumulate(CUdeviceptr, long,
 * CUdeviceptr)}) keep what they can on the GPU: HBM hits, HBM misses found in the DRAM tier by a
 * GPU kernel reading its pinned memory in place ({@link MlkvStoreBuilder#mapDram(boolean)}), and, with
 * write-back, writes of keys HBM holds.
 *
 * <h2>Migration</h2>
 * Every lookup is recorded with the DRAM tier's {@linkplain io.mlkv.storage.policy.EvictionPolicy
 * policy}. A key found only in RocksDB is promoted into DRAM if the policy admits it (LRU and LFU
 * always do; TinyLFU only if it is seen more often than the entry it would evict), and a dirty
 * entry evicted to make room is written back. {@link #prefetch} promotes keys ahead of use.
 */
public final class MlkvStore implements VectorTier {

    private static final Logger LOG = LoggerFactory.getLogger(MlkvStore.class);
    /** The HBM spill log's file in the store's directory. */
    static final String SPILL_FILE = "hbm-spill.log";

    private final int dim;
    private final long rowBytes;
    private final Durability durability;
    /** The HBM tier, in one shard or several ({@link MlkvStoreBuilder#hbmDevices}); null without a GPU. */
    private final HbmShards hbm;
    /** Moves the HBM tier to and from checkpoint files; null without an HBM tier. */
    private final FileIo fileIo;
    /** Where clean HBM evictions that DRAM lacks go ({@link MlkvStoreBuilder#hbmSpillRows}); null if none. */
    private final SpillLog spill;
    /** RocksDB, also reached through {@link #host}: the store's metadata, checkpoints and exports use it directly. */
    private final RocksDbTier rocks;
    /** DRAM, the write-back buffer, the spill log and RocksDB: the tiers below HBM. */
    private final HostTiers host;
    /** Everything the constructor opened, closed in reverse by {@link #close()}. */
    private final OpenedResources resources;
    /** The prefetch threads and the prefetches queued on them. */
    private final Prefetches prefetches;
    /** Installs copies into DRAM and HBM without making readers wait for writers. */
    private final Promoter promoter;
    /** Held by every batch that changes which keys a tier holds, or what RocksDB holds. */
    private final ReentrantLock mutation = new ReentrantLock();
    private final Lifecycle lifecycle = new Lifecycle();
    private final AtomicLong entryCount;
    /**
     * Bumped at the end of every batch that changes which keys exist or their values, before the
     * mutation lock is released. A reader that saw it unchanged from before its lookup to inside the
     * lock knows that what it found absent is still absent.
     */
    private final AtomicLong mutationEpoch = new AtomicLong();
    /** The write path of host arrays. */
    private final WritePath writes;
    /** Splits large batches over the store's threads ({@link MlkvStoreBuilder#batchThreads}). */
    private final BatchPool batchPool;
    /** How {@link #size()} is kept ({@link MlkvStoreBuilder#sizeCounting}). */
    private final SizeCounting sizeCounting;
    /** With {@link SizeCounting#ON_DEMAND}: the last count and the mutation epoch it was taken at (-1: none). */
    private long counted;
    private long countedAtEpoch = -1;

    MlkvStore(StoreConfig c) {
        this.dim = c.dim();
        this.rowBytes = dim * 4L;
        this.durability = c.durability();
        StoreOpening.checkGpuAvailable(c.gpuMode());
        OpenedResources opened = new OpenedResources();
        try {
            this.rocks = opened.add(RocksDbTier.open(c.directory(), dim, c.blockCacheBytes(), c.syncWrites()));
            DramTier dram = opened.add(new DramTier(dim, c.dramCapacityBytes(), c.policy()));
            this.hbm = opened.add(StoreOpening.openHbm(c.gpuMode(), dim, c.hbmCapacity(), c.hbmDevices(), c.hbmWriteBack()));
            this.fileIo = hbm == null ? null : opened.add(FileIo.open(c.fileIoMode()));
            this.spill = hbm == null || c.hbmSpillRows() == 0 ? null
                    : opened.add(SpillLog.create(c.directory().resolve(SPILL_FILE), dim, c.hbmSpillRows(), c.fileIoMode()));
            if (spill != null) {
                LOG.info("HBM spill log: {} rows in {} ({})", spill.slots(), c.directory().resolve(SPILL_FILE),
                        spill.cufileUnavailable() == null ? "cuFile" : "POSIX: " + spill.cufileUnavailable());
            }
            if (hbm != null && c.mapDram()) {
                hbm.mapDram(dram);
            }
            if (hbm != null && c.hbmAdmission() == HbmAdmission.FREQUENCY) {
                hbm.admitByFrequency();
            }
            this.promoter = opened.add(new Promoter(mutation, lifecycle));
            this.batchPool = opened.add(new BatchPool(c.batchThreads()));
            this.sizeCounting = c.sizeCounting();
            boolean countOnWrite = sizeCounting == SizeCounting.ON_WRITE;
            this.host = opened.add(new HostTiers(dim, dram, rocks, spill, promoter, batchPool, countOnWrite));
            StoreOpening.warmHbmFromRestoredCheckpoint(rocks, hbm, fileIo);
            this.entryCount = new AtomicLong();
            if (countOnWrite) {
                entryCount.set(StoreOpening.recoverCount(rocks));
                host.countEntriesBy(entryCount::get);
            } else {
                // Counted when asked, the store keeps no count: it marks itself open, so that a
                // later open that counts on write recounts.
                StoreOpening.markOpen(rocks);
            }
            this.writes = new WritePath(dim, durability, host, hbm, spill, mutation, mutationEpoch, entryCount, lifecycle,
                    batchPool, countOnWrite);
            if (hbm != null) {
                hbm.build(lifecycle, tier -> {
                    HbmMigration migration = new HbmMigration(dim, tier, host, spill, promoter, mutation,
                            new HbmMigration.Admission(c.hbmAdmission().newFilter(c.hbmCapacity()),
                                    c.hbmAdmission().filterTakesEveryKey()), batchPool);
                    DeviceWrites deviceWrites = new DeviceWrites(dim, tier, migration, host, mutation, mutationEpoch,
                            entryCount, batchPool);
                    return new HbmShards.Stack(migration, deviceWrites, new CombinedDeviceCalls(tier, migration::readDevice,
                            deviceWrites::put, (k, n, deltas) -> deviceWrites.accumulate(k, n, deltas,
                                    (keys, rows) -> writes.apply(keys, Change.accumulate(rows)))));
                });
            }
            this.prefetches = opened.add(new Prefetches(c.prefetchThreads()));
        } catch (RuntimeException | Error e) {
            // Nothing stays open after a failed constructor: a retry must not find the directory locked.
            opened.closeAfterFailure(e);
            throw e;
        }
        this.resources = opened;
        LOG.info("opened MLKV store at {}: dim={}, DRAM {} slots ({} bytes, policy {}), durability {}",
                rocks.directory(), dim, host.dram().capacity(), c.dramCapacityBytes(), c.policy(), durability);
    }

    /** Starts configuring a store. */
    public static MlkvStoreBuilder builder() {
        return new MlkvStoreBuilder();
    }

    @Override
    public int dim() {
        return dim;
    }

    /** The durability mode the store was opened with. */
    public Durability durability() {
        return durability;
    }

    // ------------------------------------------------------------------ reads

    /**
     * Looks up a batch of keys. Keys found only in RocksDB may be promoted into DRAM.
     *
     * @param out   receives {@code dim} values per key at {@code out[i * dim]}; rows of missing
     *              keys are left as they were
     * @param found receives whether each key is present
     * @return the number of keys found
     */
    @Override
    public int multiGet(long[] keys, float[] out, boolean[] found) {
        BatchChecks.checkOutputRows("multiGet", keys, out, dim);
        BatchChecks.checkFlags("multiGet", "found", keys, found);
        checkReserved("multiGet", keys);
        lifecycle.enter();
        try {
            return read(keys, out, found);
        } finally {
            lifecycle.exit();
        }
    }

    /** Reads the vector of one key into {@code out[0, dim)}; returns whether it was found. */
    public boolean get(long key, float[] out) {
        if (hbm != null) {
            boolean[] found = new boolean[1];
            multiGet(new long[] {key}, out, found);
            return found[0];
        }
        if (out == null || out.length < dim) {
            throw new IllegalArgumentException("get: out must hold dim = " + dim + " floats, was "
                    + (out == null ? "null" : out.length));
        }
        if (ReservedKeys.isReserved(key)) {
            throw ReservedKeys.refused("get", key);
        }
        lifecycle.enter();
        try {
            return host.readOne(key, out);
        } finally {
            lifecycle.exit();
        }
    }

    @Override
    public int contains(long[] keys, boolean[] out) {
        BatchChecks.checkKeys("contains", keys);
        BatchChecks.checkFlags("contains", "out", keys, out);
        checkReserved("contains", keys);
        lifecycle.enter();
        try {
            return host.existing(keys, keys.length, out, false);
        } finally {
            lifecycle.exit();
        }
    }

    /**
     * {@link #multiGet} with device memory, for training code whose tensors live on the GPU:
     * {@code keys} holds {@code n} int64 keys, {@code out} receives {@code dim} float32 values per
     * key (rows of missing keys are left as they were) and byte {@code i} of {@code found} is set
     * to 1 or 0. HBM hits never leave the GPU; the missed keys go to the tiers below and what is
     * found there comes back through pinned staging buffers and one scatter kernel. All three
     * pointers are on the HBM tier's device; make its context current with {@link #makeGpuCurrent}
     * to allocate them. The call reads {@code keys} after the work queued before it on the legacy
     * default stream has finished (a plain {@code cuMemcpyHtoD}, even from pageable memory, whose
     * DMA may still run when it returns); keys written on another stream must be complete (that
     * stream synchronized) before the call. {@code out} and {@code found} are complete when it
     * returns. Small calls that several threads make at once may run as one call over their keys
     * laid end to end ({@link CombinedDeviceCalls}); each caller still gets exactly its own results.
     *
     * @return the number of keys found
     * @throws IllegalStateException if the store has no HBM tier
     */
    public long multiGet(CUdeviceptr keys, long n, CUdeviceptr out, CUdeviceptr found) {
        if (keys == null || out == null || found == null) {
            throw new IllegalArgumentException("multiGet: keys, out and found must not be null");
        }
        if (n < 0 || n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("multiGet: n must be 0 to " + Integer.MAX_VALUE + ", was " + n);
        }
        if (hbm == null) {
            throw new IllegalStateException("multiGet with device pointers needs the HBM tier; this store runs without a GPU");
        }
        if (n == 0) {
            return 0;
        }
        lifecycle.enter();
        try {
            return hbm.multiGet(keys, n, out, found);
        } finally {
            lifecycle.exit();
        }
    }



    /**
     * Makes the HBM tier's CUDA context current on the calling thread, so that it can allocate
     * and fill device buffers for {@link #multiGet(CUdeviceptr, long, CUdeviceptr, CUdeviceptr)}.
     *
     * @throws IllegalStateException if the store has no HBM tier
     */
    public void makeGpuCurrent() {
        if (hbm == null) {
            throw new IllegalStateException("this store runs without a GPU");
        }
        hbm.makeCurrent();
    }

    /**
     * Makes CUDA device {@code ordinal}'s context current on the calling thread: one of the HBM
     * tier's devices ({@link MlkvStoreBuilder#hbmDevices}), for callers whose batches live there.
     *
     * @throws IllegalStateException    if the store has no HBM tier
     * @throws IllegalArgumentException if no HBM shard lives on that device
     */
    public void makeGpuCurrent(int ordinal) {
        if (hbm == null) {
            throw new IllegalStateException("this store runs without a GPU");
        }
        hbm.makeCurrent(ordinal);
    }

    /**
     * Reads through the tiers, HBM first when there is one, promoting what is found below. A large
     * batch's reads below HBM run in parts on the store's threads ({@link HostTiers#readInParts}).
     * Caller is inside the lifecycle.
     */
    private int read(long[] keys, float[] out, boolean[] found) {
        if (hbm != null) {
            return hbm.read(keys, out, found);
        }
        return host.readInParts(keys, out, found, true);
    }

    // ------------------------------------------------------------------ writes

    /**
     * Inserts or overwrites a batch of vectors. A key repeated in the batch keeps its last value.
     * Returns once the batch is acknowledged in the sense of the store's {@link Durability}.
     */
    @Override
    public void multiPut(long[] keys, float[] values) {
        BatchChecks.checkRows("multiPut", keys, values, dim);
        checkReserved("multiPut", keys);
        writes.apply(keys, Change.put(values));
    }

    /** Inserts or overwrites one vector, {@code value.length == dim}. */
    public void put(long key, float[] value) {
        multiPut(new long[] {key}, value);
    }

    /**
     * Adds {@code deltas} (one row per key) to the stored vectors in place; an absent key is
     * inserted as its delta (as if it were zero). A key repeated in the batch gets every delta.
     */
    public void accumulate(long[] keys, float[] deltas) {
        BatchChecks.checkRows("accumulate", keys, deltas, dim);
        checkReserved("accumulate", keys);
        writes.apply(keys, Change.accumulate(deltas));
    }

    /**
     * {@link #multiPut(long[], float[])} with device memory: {@code keys} holds {@code n} int64
     * keys and {@code values} {@code dim} float32 values per key; a key repeated in the batch
     * keeps its last row. With {@link MlkvStoreBuilder#hbmWriteBack(boolean) write-back}, the rows of keys
     * HBM holds are written there on the GPU (those keys become dirty); the others are installed
     * into HBM dirty, deduplicated and counted on the GPU (only keys the mapped DRAM tier lacks
     * come to the host, to be looked up below), what the installs evict moving down. Without
     * write-back, keys and rows are copied to the host and take the host path. Both pointers are
     * on the HBM tier's device ({@link #makeGpuCurrent}); their contents are read as
     * {@link #multiGet(CUdeviceptr, long, CUdeviceptr, CUdeviceptr)} reads its keys.
     *
     * @throws IllegalStateException    if the store has no HBM tier
     * @throws IllegalArgumentException for a reserved key, before anything is written
     */
    public void multiPut(CUdeviceptr keys, long n, CUdeviceptr values) {
        deviceWrite("multiPut", keys, n, values, Change.Kind.PUT);
    }

    /**
     * {@link #accumulate(long[], float[])} with device memory, for training code whose gradients
     * live on the GPU: {@code keys} holds {@code n} int64 keys and {@code deltas} {@code dim}
     * float32 values per key. With {@link MlkvStoreBuilder#hbmWriteBack(boolean) write-back}, the deltas of
     * keys HBM holds are added on the GPU, in place (those keys become dirty); the other keys'
     * deltas are copied to the host and accumulated below. Without write-back, keys and deltas
     * are copied to the host and take the host path. A repeated key gets every delta. Both
     * pointers are on the HBM tier's device ({@link #makeGpuCurrent}); their contents are read as
     * {@link #multiGet(CUdeviceptr, long, CUdeviceptr, CUdeviceptr)} reads its keys.
     *
     * @throws IllegalStateException    if the store has no HBM tier
     * @throws IllegalArgumentException for a reserved key, before anything is written
     */
    public void accumulate(CUdeviceptr keys, long n, CUdeviceptr deltas) {
        deviceWrite("accumulate", keys, n, deltas, Change.Kind.ACCUMULATE);
    }

    /** The device-pointer write paths ({@link Change.Kind#PUT} or {@link Change.Kind#ACCUMULATE}). */
    private void deviceWrite(String op, CUdeviceptr keys, long n, CUdeviceptr rows, Change.Kind kind) {
        if (keys == null || rows == null) {
            throw new IllegalArgumentException(op + ": keys and " + (kind == Change.Kind.PUT ? "values" : "deltas")
                    + " must not be null");
        }
        if (n < 0 || n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(op + ": n must be 0 to " + Integer.MAX_VALUE + ", was " + n);
        }
        if (hbm == null) {
            throw new IllegalStateException(op + " with device pointers needs the HBM tier; this store runs without a GPU");
        }
        if (n == 0) {
            return;
        }
        lifecycle.enter();
        try {
            hbm.checkReserved(op, keys, n);
            if (!hbm.writeBack() && durability == Durability.WRITE_BACK && hbm.takesClean(n)) {
                // Clean HBM copies: held keys written on the GPU and copied down; the rest take the host path.
                hbm.writeClean(kind == Change.Kind.PUT ? DeviceWrites.Kind.PUT : DeviceWrites.Kind.ACCUMULATE, keys, n,
                        rows, (k, r) -> writes.apply(k, Change.of(kind, r)));
            } else if (!hbm.writeBack()) {
                // Write-through, or a batch larger than the GPU's distinct-key pass: the host write path, which updates HBM too.
                int[] all = new int[(int) n];
                for (int i = 0; i < n; i++) {
                    all[i] = i;
                }
                writes.apply(hbm.keysToHost(keys, n), Change.of(kind, hbm.rowsToHost(keys, rows, n, all)));
            } else if (kind == Change.Kind.PUT) {
                hbm.multiPut(keys, n, rows);
            } else {
                hbm.accumulate(keys, n, rows);
            }
        } finally {
            lifecycle.exit();
        }
    }

    /**
     * Reads every key, inserting the ones that are absent with a vector from {@code initializer},
     * and returns all of them in {@code out}. A key repeated in the batch is initialised once. If
     * the initializer throws, nothing is inserted and an {@link MlkvException} with status
     * {@code CALLBACK_FAILED} names the key.
     *
     * @return the number of keys that were already present
     */
    public int findOrInsert(long[] keys, float[] out, VectorInitializer initializer) {
        BatchChecks.checkOutputRows("findOrInsert", keys, out, dim);
        checkReserved("findOrInsert", keys);
        if (initializer == null) {
            throw new IllegalArgumentException("findOrInsert: initializer must not be null");
        }
        boolean[] found = new boolean[keys.length];
        if (hbm == null && host.dramHoldsEveryKey()) {
            // Without HBM, where DRAM holds every key of the store a key it lacks is absent: the
            // batch is read and its new keys inserted under one hold of the mutation lock, without
            // asking RocksDB about the new keys. (Asked once without the lock, so that a store
            // whose DRAM is smaller than its table never takes the lock for it; exact under it.)
            lifecycle.enter();
            KeyStripes.Held held = writes.lockStripes(keys);
            mutation.lock();
            try {
                if (host.dramHoldsEveryKey()) {
                    host.readCurrent(keys, keys.length, out, found);
                    int present = 0;
                    for (boolean f : found) {
                        present += f ? 1 : 0;
                    }
                    insertMissing(keys, out, found, present, initializer, mutationEpoch.get());
                    return present;
                }
            } finally {
                mutation.unlock();
                WritePath.unlock(held);
                lifecycle.exit();
            }
        }
        int present;
        long epoch = mutationEpoch.get();
        lifecycle.enter();
        try {
            present = read(keys, out, found);
        } finally {
            lifecycle.exit();
        }
        insertMissing(keys, out, found, present, initializer, epoch);
        return present;
    }

    /**
     * The second half of {@link #findOrInsert}: inserts the keys not {@code found} (absent when
     * the mutation epoch was {@code epoch}) with their initial rows, copied into {@code out}.
     */
    private void insertMissing(long[] keys, float[] out, boolean[] found, int present, VectorInitializer initializer,
            long epoch) {
        if (present == keys.length) {
            return;
        }
        int missing = keys.length - present;
        int[] missIdx = new int[missing];
        for (int i = 0, m = 0; i < keys.length; i++) {
            if (!found[i]) {
                missIdx[m++] = i;
            }
        }
        long[] missKeys = Batches.gather(keys, missIdx, missing);
        float[] missOut = new float[missing * dim];
        writes.apply(missKeys, Change.insertAbsent(missOut, initializer, epoch));
        for (int m = 0; m < missing; m++) {
            System.arraycopy(missOut, m * dim, out, missIdx[m] * dim, dim);
        }
    }

    /** Removes a batch of keys from every tier; absent keys are ignored. */
    @Override
    public void multiDelete(long[] keys) {
        BatchChecks.checkKeys("multiDelete", keys);
        checkReserved("multiDelete", keys);
        lifecycle.enter();
        KeyStripes.Held held = writes.lockStripes(keys);
        mutation.lock();
        try {
            host.writePending();
            Long2LongHashMap seen = new Long2LongHashMap(-1);
            long[] unique = new long[keys.length];
            int u = 0;
            for (long key : keys) {
                if (seen.put(key, u) < 0) {
                    unique[u++] = key;
                }
            }
            long seenBefore = sizeCounting == SizeCounting.ON_WRITE ? host.existing(unique, u, new boolean[u], true) : 0;
            if (spill != null) {
                spill.invalidate(keys, keys.length);
            }
            // RocksDB first: if it fails, DRAM still holds what it held and nothing changed.
            host.remove(keys);
            if (hbm != null) {
                hbm.erase(keys);
            }
            entryCount.addAndGet(-seenBefore);
        } finally {
            mutationEpoch.incrementAndGet();
            mutation.unlock();
            WritePath.unlock(held);
            lifecycle.exit();
        }
    }

    /** Removes one key; returns nothing, absent keys are ignored. */
    public void delete(long key) {
        multiDelete(new long[] {key});
    }


    // ------------------------------------------------------------------ migration

    /**
     * Promotes {@code keys} in the background, so a following read of them hits the fastest tier:
     * into HBM when the store has one (keys written meanwhile are left out, as on every
     * promotion), otherwise into DRAM. The keys are copied; the caller may reuse the array at
     * once. Keys are recorded as accessed with the DRAM policy, which still decides DRAM admission.
     *
     * @return completes when the keys have been promoted (or found already resident)
     */
    public CompletableFuture<Void> prefetch(long[] keys) {
        BatchChecks.checkKeys("prefetch", keys);
        checkReserved("prefetch", keys);
        lifecycle.checkOpen();
        long[] copy = keys.clone();
        CompletableFuture<Void> done = prefetches.submit(() -> runPrefetch(copy));
        if (lifecycle.isClosed()) {
            done.completeExceptionally(Prefetches.closedBeforeStart());
        }
        return done;
    }

    private void runPrefetch(long[] keys) {
        lifecycle.enter();
        try {
            prefetches.count(hbm != null ? hbm.prefetch(keys) : host.prefetch(keys, mutation));
        } finally {
            lifecycle.exit();
        }
    }

    // ------------------------------------------------------------------ whole-store operations

    /**
     * Writes every dirty DRAM entry to RocksDB and fsyncs its write-ahead log. When this returns,
     * everything acknowledged before the call survives a crash of the process or the machine.
     * On failure (for example a full disk) the exception names the cause, entries not yet
     * written stay dirty in DRAM, reads are unaffected, and a later {@code flush()} retries.
     */
    public void flush() {
        lifecycle.enter();
        mutation.lock();
        try {
            flushLocked();
        } finally {
            mutation.unlock();
            lifecycle.exit();
        }
    }

    private void flushLocked() {
        host.writePending();
        if (hbm != null) {
            hbm.writeDirty();
        }
        host.flushDirty();
    }

    /**
     * Writes a consistent copy of the whole store to {@code target} (which must not exist): dirty
     * DRAM entries are flushed first, then RocksDB's checkpoint is taken and completed by a
     * manifest of sizes and CRC-32C checksums. Writers wait while it runs; readers do not. Open
     * the copy with {@link #restoreCheckpoint} followed by {@link #builder()}.
     *
     * @throws IllegalArgumentException if {@code target} exists
     * @throws MlkvException            {@code IO_ERROR} naming the cause if it cannot be written
     */
    public void checkpoint(Path target) {
        if (target == null) {
            throw new IllegalArgumentException("checkpoint: target must not be null");
        }
        Path abs = target.toAbsolutePath();
        if (Files.exists(abs)) {
            throw new IllegalArgumentException("checkpoint: " + abs + " already exists; give a new directory");
        }
        lifecycle.enter();
        // No write between its RocksDB write and its count: the copy's count is exact.
        KeyStripes.Held held = writes.lockAllStripes();
        mutation.lock();
        try {
            flushLocked();
            // The copy carries an exact count, so opening it needs no recount (none where the
            // store counts when asked: the copy is then marked open, and recounted if need be).
            if (sizeCounting == SizeCounting.ON_WRITE) {
                StoreOpening.recordCount(rocks, entryCount.get());
            }
            try {
                rocks.checkpoint(abs);
            } finally {
                StoreOpening.markOpen(rocks);
            }
            if (hbm != null) {
                long started = System.nanoTime();
                String path = hbm.checkpoint(abs, fileIo);
                LOG.info("checkpoint of the HBM tier written via {} in {} ms", path,
                        (System.nanoTime() - started) / 1_000_000);
            }
            CheckpointManifest.write(abs, FileSync.OS);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "checkpoint to " + abs, e.getClass().getSimpleName(),
                    e.getMessage(), e);
        } finally {
            mutation.unlock();
            WritePath.unlock(held);
            lifecycle.exit();
        }
    }

    /**
     * Verifies a checkpoint written by {@link #checkpoint} and copies it into {@code directory}
     * (absent or empty), ready to be opened as a store. A checkpoint that was cut off (no
     * manifest) or damaged (a file missing, truncated or failing its checksum) is refused before
     * anything is copied.
     *
     * <p>All or nothing, also across a crash or power loss: the files are copied into a hidden
     * staging directory beside {@code directory} ({@code .NAME.restoring-*}), each fsynced, then
     * the staging directories, and only then is the staging directory renamed to
     * {@code directory} and their parent fsynced. Until that rename {@code directory} is as it
     * was; after it, it holds the whole checkpoint. A staging directory left by a crash is removed
     * by the next restore into the same directory.
     *
     * @throws MlkvException {@code CORRUPTION} naming the problem, or {@code IO_ERROR}
     */
    public static void restoreCheckpoint(Path checkpoint, Path directory) {
        Restore.restore(checkpoint, directory, FileSync.OS);
    }


    /**
     * Salvages a store that {@link MlkvStoreBuilder#build()} refuses with {@code CORRUPTION} (a damaged
     * SST, MANIFEST, CURRENT or write-ahead log): everything that still reads and passes its
     * checksums is written to a new store that takes the directory's place, and the damaged files
     * are moved, untouched, to {@code NAME.damaged-TIMESTAMP} beside it. No store may have the
     * directory open. The report says how many entries were salvaged and which key ranges or
     * files were dropped.
     *
     * @throws MlkvException {@code LOCKED} if a store has the directory open
     */
    public static RepairReport repair(Path directory) {
        return StoreRepair.repair(directory);
    }

    /**
     * The exact number of keys in the store. With {@link SizeCounting#ON_DEMAND} it writes back
     * what the tiers above RocksDB hold dirty and counts RocksDB's keys (writers wait meanwhile);
     * the count is kept until the next write.
     */
    @Override
    public long size() {
        lifecycle.checkOpen();
        if (sizeCounting == SizeCounting.ON_WRITE) {
            return entryCount.get();
        }
        lifecycle.enter();
        // As for a checkpoint: no write between its RocksDB write and the count.
        KeyStripes.Held held = writes.lockAllStripes();
        mutation.lock();
        try {
            if (countedAtEpoch != mutationEpoch.get()) {
                // Every key the store holds is in RocksDB once the tiers above are written back.
                long started = System.nanoTime();
                flushLocked();
                counted = rocks.size();
                countedAtEpoch = mutationEpoch.get();
                long millis = (System.nanoTime() - started) / 1_000_000;
                if (millis >= 1000) {
                    LOG.info("size(): wrote back dirty rows and counted {} keys in {} ms (SizeCounting.ON_DEMAND; "
                            + "writers waited meanwhile)", counted, millis);
                }
            }
            return counted;
        } finally {
            mutation.unlock();
            WritePath.unlock(held);
            lifecycle.exit();
        }
    }

    /**
     * Visits every entry of the store once, from a point-in-time view taken at the start of the
     * call (dirty DRAM entries are flushed first). Writes during the visit are not seen, and do
     * not wait for it.
     */
    @Override
    public void forEach(VectorVisitor visitor) {
        if (visitor == null) {
            throw new IllegalArgumentException("forEach: visitor must not be null");
        }
        lifecycle.enter();
        try {
            RocksDbTier.ExportCursor cursor;
            mutation.lock();
            try {
                flushLocked();
                cursor = rocks.exportCursor();
            } finally {
                mutation.unlock();
            }
            try (cursor) {
                float[] buf = new float[dim];
                while (cursor.next(buf)) {
                    visitor.visit(cursor.key(), buf);
                }
            }
        } finally {
            lifecycle.exit();
        }
    }

    /** Why the DRAM tier is not mapped for GPU reads, or null (for tests and benchmarks). */
    String dramMapFailure() {
        return hbm == null ? "no HBM tier" : hbm.dramMapFailure();
    }

    /** Keys that device reads found in the spill log, read straight into device memory (for tests). */
    long spillReadsOnGpu() {
        return hbm == null ? 0 : hbm.spillReadsOnGpu();
    }

    /** Promotions into HBM that frequency admission refused (for tests). */
    long hbmAdmissionRejections() {
        return hbm == null ? 0 : hbm.admissionRejections();
    }

    /** HBM installs held back until the table's next call: {queued then, dropped then} (for tests). */
    long[] deferredHbmInstalls() {
        return hbm == null ? new long[2] : hbm.deferredInstalls();
    }

    /**
     * Device calls split over several HBM shards: {parts routed, their nanoseconds from partition to
     * reorder, of it the partition and reorder kernels', the peer copies' (summed over parts)}; all
     * zero with one shard or none (for benchmarks: the exchange's share of the time).
     */
    public long[] hbmShardRouteTimings() {
        return hbm == null ? new long[4] : hbm.routeTimings();
    }

    /** The entries each HBM shard holds, in shard order; empty without an HBM tier (for tests and benchmarks). */
    public long[] hbmShardEntries() {
        return hbm == null ? new long[0] : hbm.entriesPerShard();
    }

    /** Keys that device reads found in the mapped DRAM tier on the GPU (for tests and benchmarks). */
    long dramReadsOnGpu() {
        return hbm == null ? 0 : hbm.dramReadsOnGpu();
    }

    /** A snapshot of the per-tier counters. */
    public StoreStats stats() {
        lifecycle.checkOpen();
        return StatsReader.read(rowBytes, host, hbm, spill, sizeCounting == SizeCounting.ON_WRITE ? entryCount.get() : -1,
                prefetches.promoted());
    }

    /**
     * How concurrent small device-pointer calls were combined ({@link CombinedDeviceCalls}): for
     * reads, puts and accumulates in that order, the groups run, the calls that shared a group
     * with others, the groups whose leader waited for other callers' calls and the waits that ran
     * out (twelve numbers; all zero without an HBM tier). A hint for benchmarks and tuning.
     */
    public long[] combinedDeviceCalls() {
        return hbm == null ? new long[12] : hbm.combinedCounts();
    }

    /**
     * Promotions of what reads found below (into DRAM, into HBM) that were dropped because the
     * promoter's queue was full while the mutation lock was busy; a later read promotes again.
     * Many drops mean a colder tier than the reads would make it. A hint for benchmarks and tuning.
     */
    public long droppedPromotions() {
        return promoter.dropped();
    }

    /**
     * How the HBM spill log moves rows between device memory and its file: {@code "cufile"} or
     * {@code "posix"}; null where the store has no spill log.
     */
    public String spillPath() {
        return spill == null ? null : spill.path();
    }

    /**
     * Flushes dirty entries, then releases the DRAM tier and RocksDB, in reverse order of opening.
     * Waits for operations in flight. Idempotent. If the flush fails (for example a full disk),
     * the store stays open so that no acknowledged write is dropped: free space and call
     * {@code close()} again.
     */
    @Override
    public void close() {
        lifecycle.beginClose();
        try {
            if (lifecycle.isClosed()) {
                return;
            }
            mutation.lock();
            try {
                flushLocked();
                if (sizeCounting == SizeCounting.ON_WRITE) {
                    StoreOpening.recordCount(rocks, entryCount.get());
                }
                rocks.syncWal();
            } finally {
                mutation.unlock();
            }
            lifecycle.markClosed();
            // Queued prefetches never start. One that is running holds the lifecycle read lock,
            // so it finished before we got here.
            prefetches.failQueued();
            // In reverse order of opening: the promoter and prefetch threads stop taking work, then
            // spill log, file I/O, HBM, DRAM and RocksDB close; a failure does not skip the rest.
            resources.close();
        } finally {
            lifecycle.endClose();
        }
    }

    // ------------------------------------------------------------------ helpers

    private static void checkReserved(String op, long[] keys) {
        ReservedKeys.check(op, keys);
    }
}
