package io.mlkv.core.tiers;

import io.mlkv.gpu.cufile.HostRegion;
import io.mlkv.gpu.spill.SpillLog;
import io.mlkv.storage.dram.DramTier;
import io.mlkv.storage.dram.EvictionSink;
import io.mlkv.storage.dram.KnownKeys;
import io.mlkv.storage.rocksdb.RocksDbTier;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * The tiers below HBM as one: the DRAM tier, the write-back buffer (dirty entries DRAM evicted or
 * refused, on their way to RocksDB) and RocksDB, plus the HBM spill log where a read looks before
 * RocksDB. Reads here see the newest acknowledged value below HBM: DRAM, then the buffer, then
 * the spill log, then RocksDB.
 *
 * <p>Lock rule: methods that change what a tier holds ({@link #install}, {@link #writeRows},
 * {@link #writePending}, {@link #flushDirty}, {@link #writeDown}, {@link #putDemoted},
 * {@link #remove}) are called with the store's mutation lock held; reads run at any time inside
 * the store's lifecycle. Versions of DRAM buckets, read before a value, let a promotion installed
 * later tell whether a write intervened.
 */
public final class HostTiers implements AutoCloseable {
    private final int dim;
    private final DramTier dram;
    private final RocksDbTier rocks;
    private final WriteBackBuffer pending;
    private final EvictionSink writeBackSink;
    /** Null without a spill log. */
    private final SpillLog spill;
    /** The store's entry count, for {@link #dramHoldsEveryKey}; none until {@link #countEntriesBy}. */
    private LongSupplier storeEntries = () -> Long.MAX_VALUE;
    private final Promoter promoter;

    private final LongAdder dramHits = new LongAdder();
    private final LongAdder dramNanos = new LongAdder();
    /** Time spent moving entries into DRAM: promotions from SSD and demotions from HBM. */
    private final LongAdder dramMoveNanos = new LongAdder();
    private final LongAdder ssdNanos = new LongAdder();
    private final LongAdder dramMisses = new LongAdder();
    private final LongAdder ssdHits = new LongAdder();
    private final LongAdder ssdMisses = new LongAdder();
    private final LongAdder promotions = new LongAdder();
    private final LongAdder writeBacks = new LongAdder();

    /** Keys per part of the per-key work that {@link #existing} and {@link #readCurrent} split over the store's threads. */
    private static final int KEYS_PER_PART = 1024;
    /** Where a read without promotion sends the install of what it read from RocksDB: nowhere. */
    private static final Consumer<Runnable> NOT_PROMOTED = install -> { };

    private final BatchPool pool;

    /** Keys known to be in the store below DRAM ({@link KnownKeys}); null where they are not remembered. */
    private final KnownKeys known;

    /**
     * The tiers below HBM. With {@code rememberKeys} (a store that counts its entries on every
     * write), the keys DRAM evicts are remembered ({@link KnownKeys}: at most about an eighth of
     * DRAM's size more, native memory taken 1 MiB at a time as keys arrive), so that existence
     * checks of keys DRAM lacks mostly need no RocksDB lookup.
     */
    public HostTiers(int dim, DramTier dram, RocksDbTier rocks, SpillLog spill, Promoter promoter, BatchPool pool,
            boolean rememberKeys) {
        this.known = rememberKeys ? new KnownKeys(KnownKeys.slotsFor(dram.capacity(), dim)) : null;
        this.pool = pool;
        this.dim = dim;
        this.dram = dram;
        this.rocks = rocks;
        this.spill = spill;
        this.promoter = promoter;
        this.pending = new WriteBackBuffer(dim);
        this.writeBackSink = (key, value, dirty) -> {
            if (dirty) {
                pending.add(key, value, 0);
            }
            learn(key);
        };
    }

    /** Remembers that {@code key} is in the store below DRAM. Caller holds the mutation lock. */
    private void learn(long key) {
        if (known != null) {
            known.add(key);
        }
    }

    /** The DRAM tier, for the HBM tier's probe that reads it in place from the GPU. */
    public DramTier dram() {
        return dram;
    }

    public RocksDbTier rocks() {
        return rocks;
    }

    /** The DRAM bucket version of {@code key}: every write below HBM changes it. */
    public long version(long key) {
        return dram.version(key);
    }

    /** The DRAM bucket sequence count of {@code key}: every change of the bucket moves it. */
    public long sequence(long key) {
        return dram.sequence(key);
    }

    /** Whether DRAM holds {@code key}. */
    public boolean inDram(long key) {
        return dram.contains(key);
    }

    /** Entries DRAM holds now. */
    public long dramSize() {
        return dram.size();
    }

    /** Gives the tiers the store's entry count (exact under the mutation lock). */
    public void countEntriesBy(LongSupplier entries) {
        this.storeEntries = entries;
    }

    /**
     * Whether DRAM holds every key of the store, as where it is sized for the whole table: DRAM
     * holds store keys only, so equal counts mean all of them, and then a key DRAM lacks is absent
     * with no need to ask RocksDB, and a clean entry evicted from HBM needs no copy in DRAM. Exact
     * only under the mutation lock, which every change of DRAM and of the count holds.
     */
    public boolean dramHoldsEveryKey() {
        return dram.size() >= storeEntries.getAsLong();
    }

    /** Counts keys found in DRAM by a GPU probe, which bypasses {@link #read}. */
    public void countDramHits(long n) {
        dramHits.add(n);
    }

    /** Adds time spent moving entries into DRAM. */
    public void countDramMove(long nanos) {
        dramMoveNanos.add(nanos);
    }

    /** Entries written from the tiers above into RocksDB, for the SSD tier's counters. */
    public void countWriteBacks(long n) {
        writeBacks.add(n);
    }

    /**
     * Reads through DRAM, the write-back buffer, the spill log and RocksDB; with {@code promote},
     * keys found in RocksDB are installed into DRAM (per policy, if their bucket did not change
     * since it was looked at). Caller is inside the store's lifecycle.
     */
    public int read(long[] keys, float[] out, boolean[] found, boolean promote) {
        return read(keys, 0, keys.length, out, found, promote ? promoter::promote : NOT_PROMOTED);
    }

    /**
     * {@link #read(long[], float[], boolean[], boolean)}, a large batch read in parts of
     * consecutive positions, each on one of the store's threads (reads of disjoint ranges run at
     * once, as concurrent callers' do); a small one on the caller's thread. The parts take no lock
     * that a caller may hold, so a caller holding the store's mutation lock may use it.
     */
    public int readInParts(long[] keys, float[] out, boolean[] found, boolean promote) {
        if (pool.partsFor(keys.length, KEYS_PER_PART) == 1) {
            return read(keys, out, found, promote);
        }
        AtomicInteger got = new AtomicInteger();
        // The parts' promotions are installed together once every part has read, in one promotion:
        // parts promoting on their own would contend for the mutation lock, and the promoter drops
        // what its short queue cannot hold, leaving keys read from RocksDB out of DRAM.
        Queue<Runnable> promotions = new ConcurrentLinkedQueue<>();
        pool.runRanges(keys.length, KEYS_PER_PART, (from, to) -> got.addAndGet(read(keys, from, to, out, found,
                promote ? promotions::add : NOT_PROMOTED)));
        if (!promotions.isEmpty()) {
            promoter.promote(() -> promotions.forEach(Runnable::run));
        }
        return got.get();
    }

    /**
     * One key's read, as {@link #read(long[], float[], boolean[], boolean)} with promotion: a key
     * DRAM or the write-back buffer holds is read here, without the batch's arrays; any other
     * goes the batch's way (which looks at DRAM again, and counts the miss there).
     */
    public boolean readOne(long key, float[] out) {
        long started = System.nanoTime();
        long v = dram.getOrVersion(key, out, 0, dram.clock());
        if (v == DramTier.HIT || pending.lookup(key, out, 0)) {
            dram.policy().recordAccess(key);
            dramNanos.add(System.nanoTime() - started);
            dramHits.increment();
            return true;
        }
        boolean[] found = new boolean[1];
        read(new long[] {key}, out, found, true);
        return found[0];
    }

    /**
     * {@link #read(long[], float[], boolean[], boolean)} of positions {@code [from, to)} of the
     * arrays only (reads of disjoint ranges may run at once), handing the install of what it read
     * from RocksDB into DRAM to {@code promotion}, which runs it under the mutation lock (or drops
     * it: {@link #NOT_PROMOTED}).
     */
    private int read(long[] keys, int from, int to, float[] out, boolean[] found,
            Consumer<Runnable> promotion) {
        long now = dram.tick();
        dram.policy().recordAccesses(keys, from, to);
        int[] missIdx = null;
        long[] missVersion = null;
        int misses = 0;
        int hits = 0;
        long started = System.nanoTime();
        for (int i = from; i < to; i++) {
            long v = dram.getOrVersion(keys[i], out, i, now);
            if (v == DramTier.HIT || pending.lookup(keys[i], out, i)) {
                found[i] = true;
                hits++;
                continue;
            }
            found[i] = false;
            if (missIdx == null) {
                missIdx = new int[to - i];
                missVersion = new long[to - i];
            }
            missIdx[misses] = i;
            missVersion[misses++] = v;
        }
        long dramDone = System.nanoTime();
        dramNanos.add(dramDone - started);
        dramHits.add(hits);
        dramMisses.add(misses);
        if (misses > 0 && spill != null) {
            int fromSpill = readSpilled(keys, missIdx, misses, out, found);
            if (fromSpill > 0) {
                hits += fromSpill;
                int kept = 0;
                for (int m = 0; m < misses; m++) {
                    if (!found[missIdx[m]]) {
                        missIdx[kept] = missIdx[m];
                        missVersion[kept++] = missVersion[m];
                    }
                }
                misses = kept;
            }
        }
        if (misses == 0) {
            return hits;
        }
        long[] missKeys = Batches.gather(keys, missIdx, misses);
        float[] missValues = new float[misses * dim];
        boolean[] missFound = new boolean[misses];
        long ssdStarted = System.nanoTime();
        int fromRocks = rocks.multiGet(missKeys, 0, misses, missValues, missFound);
        ssdNanos.add(System.nanoTime() - ssdStarted);
        ssdHits.add(fromRocks);
        ssdMisses.add(misses - fromRocks);
        for (int m = 0; m < misses; m++) {
            if (missFound[m]) {
                int i = missIdx[m];
                System.arraycopy(missValues, m * dim, out, i * dim, dim);
                found[i] = true;
            }
        }
        if (fromRocks > 0) {
            long[] versions = missVersion;
            int count = misses;
            promotion.accept(() -> install(missKeys, missValues, missFound, versions, count, now));
        }
        return hits + fromRocks;
    }

    /**
     * Reads from the spill log those of the keys at {@code idx[0, count)} that it holds, into
     * {@code out} at their positions, and sets their {@code found} flags; returns how many.
     */
    private int readSpilled(long[] keys, int[] idx, int count, float[] out, boolean[] found) {
        SpillLog.Hits inLog = spill.lookup(keys, idx, count);
        int hits = inLog.count();
        if (hits == 0) {
            return 0;
        }
        int[] at = inLog.at();
        long[] hitPositions = inLog.positions();
        java.nio.ByteBuffer rows = java.nio.ByteBuffer.allocateDirect(hits * dim * 4)
                .order(java.nio.ByteOrder.nativeOrder());
        boolean[] valid = new boolean[hits];
        int read = spill.read(hitPositions, hits, new HostRegion(rows), valid);
        java.nio.FloatBuffer f = rows.asFloatBuffer();
        for (int h = 0; h < hits; h++) {
            if (valid[h]) {
                f.get(h * dim, out, at[h] * dim, dim);
                found[at[h]] = true;
            }
        }
        return read;
    }

    /**
     * Installs clean copies read from RocksDB, if their DRAM bucket did not change meanwhile.
     * Caller holds the mutation lock. Returns how many were installed.
     */
    public int install(long[] keys, float[] values, boolean[] present, long[] versions, int count, long now) {
        long started = System.nanoTime();
        int installed = 0;
        for (int m = 0; m < count; m++) {
            if (present[m] && putCleanIfUnchanged(keys[m], values, m, versions[m], now) == DramTier.PutResult.INSERTED) {
                installed++;
            }
        }
        promotions.add(installed);
        dramMoveNanos.add(System.nanoTime() - started);
        writePending();
        return installed;
    }

    /**
     * Reads the keys of a prefetch that DRAM lacks from RocksDB and installs them (per policy);
     * returns how many were installed. Caller is inside the lifecycle, not holding the mutation
     * lock (it takes it to install).
     */
    public int prefetch(long[] keys, java.util.concurrent.locks.ReentrantLock mutation) {
        long now = dram.tick();
        dram.policy().recordAccesses(keys, 0, keys.length);
        int[] missIdx = new int[keys.length];
        long[] versions = new long[keys.length];
        float[] scratch = new float[dim];
        int misses = 0;
        for (int i = 0; i < keys.length; i++) {
            long v = dram.getOrVersion(keys[i], scratch, 0, now);
            // A key in the write-back buffer has a newer value than RocksDB; its eviction from
            // DRAM by a conditional install did not change the bucket version, so a RocksDB
            // read of it could be installed as if current. Such keys need no prefetch anyway.
            if (v != DramTier.HIT && !pending.contains(keys[i])) {
                missIdx[misses] = i;
                versions[misses++] = v;
            }
        }
        if (misses == 0) {
            return 0;
        }
        long[] missKeys = Batches.gather(keys, missIdx, misses);
        float[] values = new float[misses * dim];
        boolean[] present = new boolean[misses];
        rocks.multiGet(missKeys, 0, misses, values, present);
        mutation.lock();
        try {
            return install(missKeys, values, present, versions, misses, now);
        } finally {
            mutation.unlock();
        }
    }

    /**
     * Writes the write-back buffer to RocksDB (after the background write of an earlier part of
     * it, if one runs), so RocksDB is current when it returns. Caller holds the mutation lock.
     */
    public void writePending() {
        int written = pending.writeTo(rocks);
        writeBacks.add(written);
    }

    /**
     * Starts writing the write-back buffer to RocksDB on the buffer's own thread, so that the
     * caller's next batch overlaps it (a write-back store's writes, which need RocksDB only to
     * take what DRAM evicted); waits only when a background write is still running and the buffer
     * has grown past its backlog, and writes here what a failed background write left. Readers
     * see the rows until RocksDB has them. Caller holds the mutation lock.
     */
    public void writePendingInBackground() {
        int written = pending.drainInBackground(rocks, writeBacks::add);
        writeBacks.add(written);
    }

    /** Stops the write-back buffer's thread and frees the known keys; the store writes the buffer before it closes. */
    @Override
    public void close() {
        try {
            pending.close();
        } finally {
            if (known != null) {
                known.close();
            }
        }
    }

    /**
     * Tells which of {@code keys[0, n)} exist below HBM, without reading values; a large batch in
     * parts on the store's threads. Caller is inside the lifecycle; with {@code underLock} it
     * holds the mutation lock too, and keys DRAM lacks are then looked up in RocksDB only if DRAM
     * does not hold every key ({@link #dramHoldsEveryKey}).
     *
     * @return the number present
     */
    public int existing(long[] keys, int n, boolean[] found, boolean underLock) {
        boolean dramOnly = underLock && dramHoldsEveryKey();
        AtomicInteger present = new AtomicInteger();
        pool.runRanges(n, KEYS_PER_PART,
                (from, to) -> present.addAndGet(existing(keys, from, to, found, dramOnly, underLock)));
        return present.get();
    }

    /**
     * {@link #existing(long[], int, boolean[], boolean)} of {@code keys[from, to)}: DRAM, the
     * write-back buffer and the known keys first, RocksDB for the rest; with {@code learn} (under
     * the mutation lock, so no delete runs meanwhile) the keys RocksDB holds become known.
     */
    private int existing(long[] keys, int from, int to, boolean[] found, boolean dramOnly, boolean learn) {
        int[] missIdx = new int[to - from];
        int misses = 0;
        for (int i = from; i < to; i++) {
            // Known keys before the write-back buffer: DRAM's dirty evictions, which the buffer
            // holds, are known too, and a known-key look is one probe, not two maps under a lock.
            found[i] = dram.contains(keys[i]) || known != null && known.contains(keys[i]) || pending.contains(keys[i]);
            if (!found[i]) {
                missIdx[misses++] = i;
            }
        }
        if (misses == 0 || dramOnly) {
            return to - from - misses;
        }
        long[] missKeys = Batches.gather(keys, missIdx, misses);
        boolean[] inRocks = new boolean[misses];
        int fromRocks = rocks.exists(missKeys, misses, inRocks);
        for (int m = 0; m < misses; m++) {
            found[missIdx[m]] = inRocks[m];
            if (learn && inRocks[m]) {
                learn(missKeys[m]);
            }
        }
        return to - from - misses + fromRocks;
    }

    /**
     * Reads the current values of those of {@code keys[0, n)} whose {@code found} flag is not set
     * yet (the caller set it for keys it already read above), from DRAM, the write-back buffer and
     * RocksDB (only if DRAM does not hold every key, {@link #dramHoldsEveryKey}); a large batch in
     * parts on the store's threads. Caller holds the mutation lock.
     */
    public void readCurrent(long[] keys, int n, float[] out, boolean[] found) {
        boolean dramOnly = dramHoldsEveryKey();
        pool.runRanges(n, KEYS_PER_PART, (from, to) -> readCurrent(keys, from, to, out, found, dramOnly));
    }

    private void readCurrent(long[] keys, int from, int to, float[] out, boolean[] found, boolean dramOnly) {
        int[] missIdx = new int[to - from];
        int misses = 0;
        long now = dram.tick();
        for (int i = from; i < to; i++) {
            found[i] = found[i] || dram.getOrVersion(keys[i], out, i, now) == DramTier.HIT
                    || pending.lookup(keys[i], out, i);
            if (!found[i]) {
                missIdx[misses++] = i;
            }
        }
        if (misses == 0 || dramOnly) {
            return;
        }
        long[] missKeys = Batches.gather(keys, missIdx, misses);
        float[] values = new float[misses * dim];
        boolean[] inRocks = new boolean[misses];
        rocks.multiGet(missKeys, 0, misses, values, inRocks);
        for (int m = 0; m < misses; m++) {
            if (inRocks[m]) {
                found[missIdx[m]] = true;
                System.arraycopy(values, m * dim, out, missIdx[m] * dim, dim);
            }
        }
    }

    /**
     * Writes rows {@code [0, count)} into DRAM, dirty or clean, skipping those with
     * {@code skip[r]} (written above); a dirty row DRAM refuses goes to the write-back buffer.
     * Caller holds the mutation lock.
     */
    public void writeRows(long[] keys, float[] values, int count, boolean dirty, boolean[] skip) {
        writeRows(keys, values, 0, count, dirty, skip);
    }

    /**
     * {@link #writeRows(long[], float[], int, boolean, boolean[])} of rows {@code [from, to)} only;
     * writes of disjoint ranges of distinct keys may run at once (on behalf of the caller holding
     * the mutation lock).
     */
    public void writeRows(long[] keys, float[] values, int from, int to, boolean dirty, boolean[] skip) {
        long now = dram.tick();
        dram.policy().recordAccesses(keys, from, to);
        for (int r = from; r < to; r++) {
            if (skip[r]) {
                continue;
            }
            if (dirty) {
                putDirty(keys[r], values, r, now);
            } else {
                putClean(keys[r], values, r, now);
            }
        }
    }

    /**
     * Adds rows {@code [0, n)} to the values DRAM holds of their keys, in place and dirty (each
     * row once; a repeated key's rows in batch order), and sets {@code added[i]} for those; keys
     * DRAM lacks are left to the caller. A large batch goes in parts by key on the store's threads.
     * Returns how many rows were added. Never inserts or evicts, so the caller needs not hold the
     * mutation lock; it is inside the store's lifecycle.
     */
    public int addInDram(long[] keys, float[] rows, int n, boolean[] added) {
        long now = dram.tick();
        dram.policy().recordAccesses(keys, 0, n);
        int parts = pool.partsFor(n, KEYS_PER_PART);
        AtomicInteger count = new AtomicInteger();
        pool.run(parts, p -> {
            int c = 0;
            for (int i = 0; i < n; i++) {
                if (parts > 1 && BatchPool.partOf(keys[i], parts) != p) {
                    continue;
                }
                if (dram.addTo(keys[i], rows, i, now)) {
                    added[i] = true;
                    c++;
                }
            }
            count.addAndGet(c);
        });
        return count.get();
    }

    /**
     * Takes an entry HBM evicted: a dirty one into DRAM as dirty (or the write-back buffer if
     * DRAM refuses it), a clean one into DRAM only where it lacks the key (its copy there may be
     * dirty with the same value). Caller holds the mutation lock.
     */
    public void putDemoted(long key, float[] rows, int row, boolean dirty, long now) {
        if (dirty) {
            putDirty(key, rows, row, now);
        } else if (!dram.contains(key)) {
            putClean(key, rows, row, now);
        }
    }

    /** Writes a dirty row into DRAM, or into the write-back buffer if DRAM refuses it (its bucket is full of dirty entries it cannot evict). */
    private void putDirty(long key, float[] rows, int row, long now) {
        if (dram.put(key, rows, row, true, DramTier.ANY_VERSION, now, writeBackSink) == DramTier.PutResult.REJECTED) {
            pending.add(key, rows, row);
        }
    }

    /** Writes a clean row into DRAM (DRAM may refuse it; RocksDB has it). */
    private void putClean(long key, float[] rows, int row, long now) {
        dram.put(key, rows, row, false, DramTier.ANY_VERSION, now, writeBackSink);
    }

    /** Installs a clean copy read below if its DRAM bucket is still at {@code version} (no write since). */
    private DramTier.PutResult putCleanIfUnchanged(long key, float[] rows, int row, long version, long now) {
        return dram.put(key, rows, row, false, version, now, writeBackSink);
    }

    /** The DRAM clock, for a batch of {@link #putDemoted} calls. */
    public long tick() {
        return dram.tick();
    }

    /**
     * Writes entries HBM held dirty below it: where DRAM holds the key into DRAM as dirty (the DRAM
     * flush that follows carries it on), otherwise straight into RocksDB, then changes the DRAM
     * version of the keys written to RocksDB so that a reader holding an older RocksDB value of
     * them does not install it. Caller holds the mutation lock, after {@link #writePending()}.
     */
    public void writeDown(long[] keys, float[] rows) {
        long now = dram.tick();
        long[] toRocks = new long[keys.length];
        float[] toRocksRows = new float[keys.length * dim];
        int r = 0;
        for (int i = 0; i < keys.length; i++) {
            if (dram.contains(keys[i])) {
                putDirty(keys[i], rows, i, now);
            } else {
                toRocks[r] = keys[i];
                System.arraycopy(rows, i * dim, toRocksRows, r * dim, dim);
                r++;
            }
        }
        rocks.putAll(toRocks, toRocksRows, r);
        writeBacks.add(r);
        for (int i = 0; i < r; i++) {
            dram.remove(toRocks[i]);
        }
    }

    /**
     * Overwrites in DRAM, dirty, the rows of those of {@code keys} that DRAM holds and sets
     * {@code written[i]} for those. A large batch goes in parts by key on the store's threads (every
     * occurrence of a key in one part); each part writes its keys in batch order up to the first
     * one DRAM lacks and leaves the rest of its keys to the caller. So a key repeated in {@code
     * keys} has its occurrences written in order up to a point and none after it, and a caller
     * that writes the rows not marked, in batch order, leaves it with its last row. Never inserts
     * or evicts, so the caller needs not hold the mutation lock; it is inside the store's lifecycle.
     *
     * @return how many rows were written
     */
    public int replaceInDram(long[] keys, float[] rows, boolean[] written) {
        int n = keys.length;
        long now = dram.tick();
        int parts = pool.partsFor(n, KEYS_PER_PART);
        if (parts == 1) {
            return replaceInDram(keys, rows, written, now, 1, 0);
        }
        AtomicInteger count = new AtomicInteger();
        pool.run(parts, p -> count.addAndGet(replaceInDram(keys, rows, written, now, parts, p)));
        return count.get();
    }

    /** {@link #replaceInDram(long[], float[], boolean[])}'s part {@code part} of {@code parts}. */
    private int replaceInDram(long[] keys, float[] rows, boolean[] written, long now, int parts, int part) {
        int c = 0;
        for (int i = 0; i < keys.length; i++) {
            if (parts > 1 && BatchPool.partOf(keys[i], parts) != part) {
                continue;
            }
            if (!dram.replace(keys[i], rows, i, now)) {
                break;
            }
            written[i] = true;
            c++;
        }
        return c;
    }

    /**
     * Writes every dirty DRAM entry to RocksDB and fsyncs its log. Caller holds the mutation
     * lock, after {@link #writePending()}.
     */
    public void flushDirty() {
        // Bound one write batch to about 64 MiB of values, whatever the dimension.
        int bucketsPerBatch = Math.max(1, Math.min(4096, (1 << 24) / (DramTier.BUCKET_SLOTS * dim)));
        int cap = bucketsPerBatch * DramTier.BUCKET_SLOTS;
        long[] keys = new long[cap];
        float[] values = new float[cap * dim];
        int[] n = new int[1];
        for (long from = 0; from < dram.buckets(); from += bucketsPerBatch) {
            long to = Math.min(dram.buckets(), from + bucketsPerBatch);
            n[0] = 0;
            dram.forEachDirty(from, to, (key, vector) -> {
                keys[n[0]] = key;
                System.arraycopy(vector, 0, values, n[0] * dim, dim);
                n[0]++;
            });
            if (n[0] > 0) {
                rocks.putAll(keys, values, n[0]);
                for (int i = 0; i < n[0]; i++) {
                    // A value written since the visit (a write that does not take the mutation
                    // lock: WritePath's puts and accumulates of keys DRAM holds) stays dirty for the next flush.
                    dram.markCleanIfUnchanged(keys[i], values, i);
                }
                writeBacks.add(n[0]);
            }
        }
        rocks.syncWal();
    }

    /** Removes keys from RocksDB first (if that fails nothing changed), then from DRAM. Caller holds the mutation lock. */
    public void remove(long[] keys) {
        rocks.multiDelete(keys);
        for (long key : keys) {
            dram.remove(key);
            if (known != null) {
                known.remove(key);
            }
        }
    }

    /**
     * The counters of DRAM (with its evictions, size and capacity) and RocksDB since the store
     * opened; the store turns them into {@code TierStats}.
     */
    public record Counters(long dramHits, long dramMisses, long promotions, long dramEvictions, long writeBacks,
            long dramEntries, long dramCapacity, long dramNanos, long dramMoveNanos, long ssdHits, long ssdMisses,
            long ssdNanos) {
    }

    /** A snapshot of {@link Counters}. */
    public Counters counters() {
        return new Counters(dramHits.sum(), dramMisses.sum(), promotions.sum(), dram.evictions(), writeBacks.sum(),
                dram.size(), dram.capacity(), dramNanos.sum(), dramMoveNanos.sum(), ssdHits.sum(), ssdMisses.sum(),
                ssdNanos.sum());
    }
}
