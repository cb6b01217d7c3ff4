package io.mlkv.server;

import io.mlkv.client.HashScheme;
import io.mlkv.core.Durability;
import io.mlkv.core.MlkvStore;
import io.mlkv.core.tiers.Batches;
import io.mlkv.server.backend.AzureBlobBackend;
import java.nio.file.Path;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's block storage: the tiered store (DRAM over RocksDB) as the local cache, an
 * optional blob backend behind it, and a Bloom filter per partition.
 *
 * <p>A block's store key mixes its partition id and hash; the stored vector repeats both, so a key
 * collision between two blocks reads as a miss, never as the other block. Writes of one key are
 * serialised by a striped lock; reads take no lock (the store itself is thread-safe).
 */
final class ChunkCache implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ChunkCache.class);
    /** Two concurrent 64-block batches share a stripe about a fifth of the time (1 - e^(-64 * 64 / 16384)). */
    private static final int LOCK_STRIPES = 16384;

    private final MlkvStore store;
    private final int blockSize;
    private final int dim;
    private final Map<String, Partition> partitions;
    private final AzureBlobBackend backend;
    private final WriteMode writeMode;
    private final ThreadPoolExecutor uploader;
    private final ReentrantLock[] stripes = new ReentrantLock[LOCK_STRIPES];
    final AtomicLong blocksAsked = new AtomicLong();
    final AtomicLong blocksHit = new AtomicLong();
    final AtomicLong backendReads = new AtomicLong();
    final AtomicLong uploadFailures = new AtomicLong();

    /** Result of a lookup: the cached prefix length and blocks ruled out by the Bloom filter. */
    record LookupResult(int cachedBlocks, int bloomRejections) {
    }

    /**
     * @param gpu whether the local store takes an HBM tier ({@link io.mlkv.core.GpuMode}); the
     *            server's default is OFF, so a cache beside an inference engine leaves the GPU's
     *            memory to it unless asked otherwise
     */
    ChunkCache(Path directory, long dramBytes, Durability durability, io.mlkv.core.GpuMode gpu, int blockSize,
            Map<String, HashScheme> partitionSchemes, long bloomExpectedBlocks, double bloomFpp, AzureBlobBackend backend,
            WriteMode writeMode, int uploadThreads, int uploadQueue, long capacityBlocks, LongSupplier clock) {
        this.blockSize = blockSize;
        this.dim = ChunkRecord.vectorDim(blockSize);
        this.backend = backend;
        this.writeMode = writeMode;
        for (int i = 0; i < LOCK_STRIPES; i++) {
            stripes[i] = new ReentrantLock();
        }
        Map<String, String> newSchemes = PartitionSchemes.check(directory, partitionSchemes);
        Map<String, Partition> ps = new LinkedHashMap<>();
        partitionSchemes.forEach((k, scheme) -> ps.put(k, new Partition(k, scheme, bloomExpectedBlocks, bloomFpp,
                new BlockLifetimes(capacityBlocks, clock))));
        this.partitions = java.util.Collections.unmodifiableMap(ps); // in the order given
        this.store = MlkvStore.builder().dim(dim).directory(directory).dramCapacityBytes(dramBytes)
                .durability(durability).gpu(gpu).build();
        try {
            if (newSchemes != null) {
                PartitionSchemes.record(directory, newSchemes);
            }
            rebuildFilters(ps);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
        if (backend != null && writeMode == WriteMode.BEHIND) {
            uploader = new ThreadPoolExecutor(uploadThreads, uploadThreads, 30, TimeUnit.SECONDS,
                    new ArrayBlockingQueue<>(uploadQueue), r -> {
                        Thread t = new Thread(r, "mlkv-upload");
                        t.setDaemon(true);
                        return t;
                    }, new ThreadPoolExecutor.CallerRunsPolicy());
        } else {
            uploader = null;
        }
    }

    /** Fills the Bloom filters from the local store and the backend's blob names. */
    private void rebuildFilters(Map<String, Partition> byKey) {
        Map<Long, Partition> byId = new HashMap<>();
        for (Partition p : byKey.values()) {
            byId.put(p.id, p);
        }
        long started = System.nanoTime();
        long[] local = {0, 0};
        long[] lives = {0};
        store.forEach((key, value) -> {
            ChunkRecord r = ChunkRecord.fromVector(value, 0, blockSize);
            Partition p = byId.get(r.partitionId());
            if (p == null) {
                local[1]++;
            } else if (r.parentHash() == LIFE_MARK) {
                p.lifetimes.recoveredLife(r.hash(), lifeOf(r.tokens()));
                lives[0]++;
            } else {
                p.add(r.hash(), true);
                p.lifetimes.recovered(r.hash());
                local[0]++;
            }
        });
        LOG.info("Bloom filters rebuilt from the local store: {} blocks ({} of partitions not served, {} with a TTL or pin) in {} ms",
                local[0], local[1], lives[0], (System.nanoTime() - started) / 1_000_000);
        if (backend != null) {
            for (Partition p : byKey.values()) {
                long n = backend.listHashes(p.key, h -> p.add(h, false));
                LOG.info("Bloom filter of partition '{}': {} blocks listed in {}", p.key, n, backend);
            }
        }
    }

    int blockSize() {
        return blockSize;
    }

    /** The partition, or null if this server does not serve it. */
    Partition partition(String key) {
        return partitions.get(key);
    }

    Collection<Partition> partitions() {
        return partitions.values();
    }

    boolean hasBackend() {
        return backend != null;
    }

    String backendName() {
        return backend == null ? "none" : backend + " (write-" + writeMode.name().toLowerCase() + ")";
    }

    int pendingUploads() {
        return uploader == null ? 0 : uploader.getQueue().size() + uploader.getActiveCount();
    }

    static long storeKey(long partitionId, long hash) {
        return mix(hash ^ mix(partitionId));
    }

    private static long mix(long z) { // MurmurHash3's 64-bit finaliser
        z = (z ^ (z >>> 33)) * 0xff51afd7ed558ccdL;
        z = (z ^ (z >>> 33)) * 0xc4ceb9fe1a85ec53L;
        return z ^ (z >>> 33);
    }

    private ReentrantLock stripe(long key) {
        return stripes[(int) (key & (LOCK_STRIPES - 1))];
    }

    /**
     * Length of the stored prefix of {@code hashes}. With {@code tokens} (the prompt) each block's
     * stored tokens must also match; a mismatch (hash collision) ends the prefix.
     */
    LookupResult lookup(Partition p, long[] hashes, int[] tokens) {
        int candidates = 0;
        int n = hashes.length;
        if (n > 2 && p.mightContain(hashes[0]) && p.mightContain(hashes[n - 1])) {
            // First and last block there: most likely the whole prompt is. The store read below
            // checks every block anyway, so asking the filter about the others (a random cache
            // line per probe) would only cost; the filter still guards each backend read.
            candidates = n;
        } else {
            while (candidates < n && p.mightContain(hashes[candidates])) {
                candidates++;
            }
        }
        int rejected = n - candidates;
        int cached = 0;
        if (candidates > 0) {
            long[] keys = new long[candidates];
            for (int i = 0; i < candidates; i++) {
                keys[i] = storeKey(p.id, hashes[i]);
            }
            float[] values = new float[candidates * dim];
            boolean[] found = new boolean[candidates];
            store.multiGet(keys, values, found);
            while (cached < candidates) {
                int at = cached * dim;
                boolean local = found[cached] && ChunkRecord.vectorIs(values, at, p.id, hashes[cached]);
                if (local && p.lifetimes.expired(hashes[cached])) {
                    expire(p, hashes[cached]);
                    break; // expired: a miss, and the backend holds no TTL'd block
                }
                if (local) {
                    if (tokens != null && !ChunkRecord.vectorTokensEqual(values, at, tokens, cached * blockSize, blockSize)) {
                        break;
                    }
                } else {
                    if (!p.mightContain(hashes[cached])) {
                        rejected = n - cached;
                        break;
                    }
                    ChunkRecord r = readBackend(p, hashes[cached]);
                    if (r == null || (tokens != null && !java.util.Arrays.equals(r.tokens(), 0, blockSize,
                            tokens, cached * blockSize, cached * blockSize + blockSize))) {
                        break;
                    }
                }
                cached++;
            }
        }
        blocksAsked.addAndGet(hashes.length);
        blocksHit.addAndGet(cached);
        return new LookupResult(cached, rejected);
    }

    /** The partition's block {@code hash}, or null if neither the local cache nor the backend has it. */
    ChunkRecord read(Partition p, long hash) {
        if (!p.mightContain(hash)) {
            return null;
        }
        float[] v = new float[dim];
        if (store.get(storeKey(p.id, hash), v) && ChunkRecord.vectorIs(v, 0, p.id, hash)) {
            if (p.lifetimes.expired(hash)) {
                expire(p, hash);
                return null;
            }
            return ChunkRecord.fromVector(v, 0, blockSize);
        }
        return readBackend(p, hash);
    }

    /** Fetches a block from the backend and keeps it in the local cache; null if absent or damaged. */
    private ChunkRecord readBackend(Partition p, long hash) {
        if (backend == null) {
            return null;
        }
        byte[] blob = backend.get(p.key, hash);
        backendReads.incrementAndGet();
        if (blob == null) {
            return null;
        }
        ChunkRecord r;
        try {
            r = ChunkRecord.fromBlob(blob, blockSize);
        } catch (IllegalArgumentException e) {
            LOG.warn("ignoring blob {}/{}: {}", p.key, Long.toHexString(hash), e.getMessage());
            return null;
        }
        if (r.partitionId() != p.id || r.hash() != hash) {
            LOG.warn("ignoring blob {}/{}: it holds another block", p.key, Long.toHexString(hash));
            return null;
        }
        keepLocal(p, r, null);
        return r;
    }

    /**
     * Stores a block (already validated) with {@code life} (its expiry and pin; null for neither,
     * which a blob backend requires). Rewriting a stored block sets its life anew.
     *
     * @return false if the partition already held this block
     * @throws PartitionFullException where the partition is at its capacity and every block is pinned
     */
    boolean write(Partition p, ChunkRecord r, BlockLifetimes.Life life) {
        if (p.lifetimes.expired(r.hash())) {
            expire(p, r.hash()); // written again after it expired: a new block
        }
        if (backend == null && life == null && p.lifetimes.capacity() == 0 && !p.lifetimes.hasLife(r.hash())) {
            return putLocal(p, r); // looks for the block itself, under its stripe's lock
        }
        long key = storeKey(p.id, r.hash());
        float[] v = new float[dim];
        if (store.get(key, v) && ChunkRecord.vectorIs(v, 0, p.id, r.hash())
                && ChunkRecord.vectorTokensEqual(v, 0, r.tokens(), 0, blockSize)) {
            if (life == null && !p.lifetimes.hasLife(r.hash())) {
                return false;
            }
            synchronized (p.lifetimes) {
                // Still there? An eviction may have taken it since the look above.
                if (store.get(key, v) && ChunkRecord.vectorIs(v, 0, p.id, r.hash())) {
                    setLife(p, r.hash(), life);
                    p.lifetimes.stored(r.hash(), false, life);
                    return false;
                }
            }
        }
        if (backend != null) {
            if (writeMode == WriteMode.THROUGH) {
                backend.put(p.key, r.hash(), r.toBlob());
            } else {
                byte[] blob = r.toBlob();
                uploader.execute(() -> upload(p, r.hash(), blob));
            }
        }
        return keepLocal(p, r, life);
    }

    /** Stores a block locally: through {@link #putBounded} where the partition has a capacity or lives. */
    private boolean keepLocal(Partition p, ChunkRecord r, BlockLifetimes.Life life) {
        if (life != null || p.lifetimes.capacity() > 0 || p.lifetimes.hasLife(r.hash())) {
            return putBounded(p, r, life);
        }
        return putLocal(p, r);
    }

    /**
     * Stores blocks of one partition (already validated), as {@link #write} would one by one, and
     * returns which were new. Where nothing but the local store is involved (no backend, no
     * capacity, no lives given or held) the new blocks go in with one store read and one store
     * write under their stripes' locks (taken in stripe order); otherwise block by block.
     */
    boolean[] writeAll(Partition p, java.util.List<ChunkRecord> rs, java.util.List<BlockLifetimes.Life> lives) {
        int n = rs.size();
        boolean[] created = new boolean[n];
        boolean oneByOne = backend != null || p.lifetimes.capacity() > 0;
        for (int i = 0; i < n && !oneByOne; i++) {
            oneByOne = lives.get(i) != null || p.lifetimes.hasLife(rs.get(i).hash());
        }
        if (oneByOne) {
            for (int i = 0; i < n; i++) {
                created[i] = write(p, rs.get(i), lives.get(i));
            }
            return created;
        }
        long[] keys = new long[n];
        java.util.TreeSet<Integer> stripeIds = new java.util.TreeSet<>();
        for (int i = 0; i < n; i++) {
            keys[i] = storeKey(p.id, rs.get(i).hash());
            stripeIds.add((int) (keys[i] & (LOCK_STRIPES - 1)));
        }
        java.util.List<ReentrantLock> held = new java.util.ArrayList<>();
        try {
            for (int id : stripeIds) {
                stripes[id].lock();
                held.add(stripes[id]);
            }
            float[] current = new float[n * dim];
            boolean[] found = new boolean[n];
            lookUpKnown(p, rs, keys, current, found);
            java.util.Set<Long> seen = new java.util.HashSet<>();
            long[] newKeys = new long[n];
            float[] newRows = new float[n * dim];
            int m = 0;
            for (int i = 0; i < n; i++) {
                ChunkRecord r = rs.get(i);
                boolean present = found[i] && ChunkRecord.vectorIs(current, i * dim, p.id, r.hash());
                boolean same = present && ChunkRecord.vectorTokensEqual(current, i * dim, r.tokens(), 0, blockSize);
                if (same || !seen.add(keys[i])) {
                    continue; // stored already, or earlier in this batch
                }
                // A stored block with other tokens under this hash is overwritten, as write() does.
                created[i] = !present;
                newKeys[m] = keys[i];
                r.toVector(newRows, m * dim);
                m++;
            }
            if (m > 0) {
                store.multiPut(java.util.Arrays.copyOf(newKeys, m), java.util.Arrays.copyOf(newRows, m * dim));
                for (int i = 0; i < n; i++) {
                    if (created[i]) {
                        p.add(rs.get(i).hash(), true);
                    }
                }
            }
        } finally {
            for (int i = held.size() - 1; i >= 0; i--) {
                held.get(i).unlock();
            }
        }
        return created;
    }

    /**
     * Reads into {@code current}/{@code found} the stored vectors of those of the blocks {@code rs}
     * (store keys {@code keys}) that the partition's filter may hold; the others are new (the
     * filter holds every stored block) and stay not found. Caller holds their stripes' locks.
     */
    private void lookUpKnown(Partition p, java.util.List<ChunkRecord> rs, long[] keys, float[] current, boolean[] found) {
        int n = keys.length;
        int[] at = new int[n];
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (p.mightContain(rs.get(i).hash())) {
                at[k++] = i;
            }
        }
        if (k == n) {
            store.multiGet(keys, current, found);
            return;
        }
        if (k == 0) {
            return;
        }
        float[] rows = new float[k * dim];
        boolean[] hit = new boolean[k];
        store.multiGet(Batches.gather(keys, at, k), rows, hit);
        for (int j = 0; j < k; j++) {
            found[at[j]] = hit[j];
            System.arraycopy(rows, j * dim, current, at[j] * dim, dim);
        }
    }

    private void upload(Partition p, long hash, byte[] blob) {
        try {
            backend.put(p.key, hash, blob);
        } catch (RuntimeException e) {
            uploadFailures.incrementAndGet();
            LOG.error("write-behind upload of {}/{} failed: {}", p.key, Long.toHexString(hash), e.getMessage());
        }
    }

    private boolean putLocal(Partition p, ChunkRecord r) {
        long key = storeKey(p.id, r.hash());
        float[] v = new float[dim];
        ReentrantLock lock = stripe(key);
        lock.lock();
        try {
            // The filter holds every stored block (put under this lock, before it is released): a
            // block it has never seen is new, and needs no look in the store.
            boolean present = p.mightContain(r.hash()) && store.get(key, v) && ChunkRecord.vectorIs(v, 0, p.id, r.hash());
            if (present && ChunkRecord.vectorTokensEqual(v, 0, r.tokens(), 0, blockSize)) {
                return false; // stored already
            }
            r.toVector(v, 0);
            store.put(key, v);
            p.add(r.hash(), !present);
            return !present;
        } finally {
            lock.unlock();
        }
    }

    /** Marks the stored vectors of a block's life: a block's own vector never has this parent hash (2^-64). */
    static final long LIFE_MARK = 0x4C49464545584D4CL;

    private static BlockLifetimes.Life lifeOf(int[] t) {
        return new BlockLifetimes.Life((t[0] & 0xFFFFFFFFL) | ((long) t[1] << 32), t[2] != 0);
    }

    /** Stores (or, for null, removes) the record of block {@code hash}'s life, beside the block under its own key. */
    private void setLife(Partition p, long hash, BlockLifetimes.Life life) {
        long key = storeKey(p.id, hash ^ LIFE_MARK);
        if (life == null) {
            store.delete(key);
            return;
        }
        int[] t = new int[blockSize];
        t[0] = (int) life.expiresAtMillis();
        t[1] = (int) (life.expiresAtMillis() >>> 32);
        t[2] = life.pinned() ? 1 : 0;
        float[] v = new float[dim];
        new ChunkRecord(p.id, hash, LIFE_MARK, t).toVector(v, 0);
        store.put(key, v);
    }

    /**
     * Stores a new block of a partition with a capacity, or with a life: under the partition's
     * lifetimes lock, its life record first, then the block, then the evictions that keep the
     * partition to its capacity (block and life record each); rebuilds the Bloom filter when the
     * evictions since the last build reach the capacity (without a backend).
     */
    private boolean putBounded(Partition p, ChunkRecord r, BlockLifetimes.Life life) {
        synchronized (p.lifetimes) {
            if (!p.lifetimes.roomForNew()) {
                throw new PartitionFullException("partition '" + p.key + "' holds " + p.lifetimes.capacity()
                        + " blocks, every one pinned: unpin some, or raise --partition-capacity-blocks");
            }
            if (life != null || p.lifetimes.hasLife(r.hash())) {
                setLife(p, r.hash(), life); // a rewrite without a life ends the old one
            }
            boolean created = putLocal(p, r);
            java.util.List<Long> victims = p.lifetimes.stored(r.hash(), created, life);
            for (long h : victims) {
                store.delete(storeKey(p.id, h));
                store.delete(storeKey(p.id, h ^ LIFE_MARK));
            }
            if (!victims.isEmpty()) {
                long removed = p.removed(victims.size());
                if (backend == null && removed >= Math.max(1024, p.lifetimes.capacity())) {
                    p.rebuildFilter(p.lifetimes.orderedHashes());
                }
            }
            return created;
        }
    }

    /** Removes an expired block (and its life record) found by a read or lookup. */
    private void expire(Partition p, long hash) {
        synchronized (p.lifetimes) {
            if (!p.lifetimes.expired(hash)) {
                return; // rewritten, or removed by another reader, meanwhile
            }
            store.delete(storeKey(p.id, hash));
            store.delete(storeKey(p.id, hash ^ LIFE_MARK));
            p.lifetimes.expiredRemoved(hash);
            p.removed(1);
        }
    }

    /** Ends the pins of the partition's blocks {@code hashes}; returns how many were pinned. */
    int unpin(Partition p, long[] hashes) {
        int n = 0;
        synchronized (p.lifetimes) {
            for (long h : hashes) {
                BlockLifetimes.Life now = p.lifetimes.unpin(h);
                if (now != null) {
                    setLife(p, h, now.expiresAtMillis() == 0 ? null : now);
                    n++;
                }
            }
        }
        return n;
    }

    /** A write refused because the partition is full of pinned blocks. */
    static final class PartitionFullException extends RuntimeException {
        PartitionFullException(String message) {
            super(message);
        }
    }

    /** Waits for queued uploads, then closes the local store. */
    @Override
    public void close() {
        try {
            if (uploader != null) {
                uploader.shutdown();
                long started = System.nanoTime();
                while (!uploader.awaitTermination(5, TimeUnit.SECONDS)) {
                    LOG.info("waiting for {} write-behind uploads ({} s)", pendingUploads(),
                            (System.nanoTime() - started) / 1_000_000_000L);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            LOG.error("interrupted while draining uploads; {} blocks were not uploaded", pendingUploads());
        } finally {
            store.close();
        }
    }
}
