package io.mlkv.core.hbm;

import io.mlkv.core.tiers.BatchPool;
import io.mlkv.core.tiers.Batches;
import io.mlkv.core.tiers.HostTiers;
import io.mlkv.core.tiers.Promoter;
import io.mlkv.gpu.spill.SpillLog;
import io.mlkv.gpu.table.EntryState;
import io.mlkv.storage.ReservedKeys;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongPredicate;
import jcuda.driver.CUdeviceptr;

/**
 * The protocol that moves entries between the HBM tier and the tiers below, in one place: reads
 * HBM first (host arrays and device pointers), promotions of what was found below, demotions of
 * what an install evicts, re-reads of keys whose dirty entry was in transit, prefetches into HBM
 * and the write-back of dirty entries.
 *
 * <p>Invariants it keeps:
 * <ul>
 *   <li>A copy is installed into HBM only if no write of its key happened since its row was read
 *       (its DRAM bucket version, or for rows the GPU read from mapped DRAM the bucket's sequence
 *       count, is unchanged), and an install never overwrites an entry HBM holds (a device write
 *       may have installed a newer one meanwhile), so HBM never holds a value older than the one
 *       below.</li>
 *   <li>With write-back, a dirty entry an install evicts reaches DRAM (or the write-back buffer)
 *       inside the same locked install, between {@link HbmTier#beginMove()} and
 *       {@link HbmTier#endMove()}; a reader that missed HBM while such a move ran re-reads, under
 *       the lock, the keys whose demotion stamp changed.</li>
 * </ul>
 *
 * <p>Lock rule: everything that installs, demotes or writes back runs under the store's mutation
 * lock (directly, or through the {@link Promoter}); lookups run without it, inside the store's
 * lifecycle.
 */
public final class HbmMigration {
    private final int dim;
    private final HbmTier hbm;
    private final DeviceReads reads;
    private final HostTiers host;
    /** Null without a spill log. */
    private final SpillLog spill;
    private final Promoter promoter;
    private final ReentrantLock mutation;
    /** Decides which HBM misses are promoted (the store's HBM admission). Used under the mutation lock. */
    private final LongPredicate promotionFilter;
    /** Whether {@link #promotionFilter} takes every key (admission ALWAYS). */
    private final boolean admitsEveryMiss;
    /** Splits the demotion of a large eviction over the store's threads. */
    private final BatchPool pool;
    private final LongAdder dramReadsOnGpu = new LongAdder();
    private final LongAdder spillReadsOnGpu = new LongAdder();

    public HbmMigration(int dim, HbmTier hbm, HostTiers host, SpillLog spill, Promoter promoter, ReentrantLock mutation,
            Admission admission, BatchPool pool) {
        this.pool = pool;
        this.dim = dim;
        this.hbm = hbm;
        this.reads = hbm.reads();
        this.host = host;
        this.spill = spill;
        this.promoter = promoter;
        this.mutation = mutation;
        this.promotionFilter = admission.filter();
        this.admitsEveryMiss = admission.takesEveryKey();
    }

    /**
     * Which HBM misses are installed into HBM.
     *
     * @param filter        takes a missed key's promotion or refuses it; used under the mutation lock
     * @param takesEveryKey whether {@code filter} takes every key (a read can then install its misses
     *                      without looking at each on the CPU)
     */
    public record Admission(LongPredicate filter, boolean takesEveryKey) {
    }

    /** Whether keys a read finds below HBM are promoted into DRAM on the way. */
    private enum Promotion {
        /** Per the DRAM policy, as every first read does. */
        BELOW,
        /** Not at all: a re-read under the lock, of keys the first read already promoted. */
        NONE
    }

    /**
     * What a row found below was read at, to tell at install time whether its key was written
     * since: the DRAM bucket version of each key, or, for rows the GPU read from mapped DRAM
     * ({@code bySequence[m]}), the bucket's sequence count, which any change of the bucket moves.
     */
    private record ReadStamps(long[] stamps, boolean[] bySequence) {
        /** Every row was read on the host, after its bucket version. */
        static ReadStamps versions(long[] versions) {
            return new ReadStamps(versions, new boolean[versions.length]);
        }

        /** Rows with {@code bySequence[m]} were read by the GPU at the bucket's sequence count {@code stamps[m]}. */
        static ReadStamps mixed(long[] stamps, boolean[] bySequence) {
            return new ReadStamps(stamps, bySequence);
        }

        boolean unchanged(HostTiers host, int m, long key) {
            return (bySequence[m] ? host.sequence(key) : host.version(key)) == stamps[m];
        }
    }

    /**
     * A device read: HBM hits stay on the GPU, misses are probed in mapped DRAM by a kernel, the
     * rest read below and scattered; see the store's device-pointer multiGet. Caller is inside the store's lifecycle. Returns the number found.
     */
    public long readDevice(CUdeviceptr keys, long n, CUdeviceptr out, CUdeviceptr found) {
        long movesBefore = hbm.moves();
        DeviceMisses m = reads.findDevice(keys, n, out, found, host.dram(), movesBefore);
        try {
            return readDeviceMisses(m, n, out, found, movesBefore);
        } finally {
            reads.release(m);
        }
    }

    /** Keys that device reads found in the spill log, read straight into device memory. */
    public long spillReadsOnGpu() {
        return spillReadsOnGpu.sum();
    }

    /** Keys that device reads found in the mapped DRAM tier on the GPU. */
    public long dramReadsOnGpu() {
        return dramReadsOnGpu.sum();
    }

    /**
     * Reads through the tiers, HBM first, promoting what is found below (into DRAM per policy,
     * into HBM per admission). Caller is inside the store's lifecycle.
     */
    public int read(long[] keys, float[] out, boolean[] found) {
        int n = keys.length;
        long movesBefore = hbm.moves();
        int fromHbm = hbm.find(keys, out, found);
        if (fromHbm == n) {
            return n;
        }
        boolean moveOverlapped = hbm.movedSince(movesBefore);
        int misses = n - fromHbm;
        int[] missIdx = new int[misses];
        for (int i = 0, m = 0; i < n; i++) {
            if (!found[i]) {
                missIdx[m++] = i;
            }
        }
        long[] missKeys = Batches.gather(keys, missIdx, misses);
        float[] rows = new float[misses * dim];
        boolean[] below = new boolean[misses];
        int fromBelow = readMissesBelow(missKeys, rows, below, movesBefore, moveOverlapped);
        for (int m = 0; m < misses; m++) {
            if (below[m]) {
                int i = missIdx[m];
                found[i] = true;
                System.arraycopy(rows, m * dim, out, i * dim, dim);
            }
        }
        return fromHbm + fromBelow;
    }

    /**
     * Reads keys that missed HBM from the tiers below and, installs what was
     * found into HBM, skipping keys written since their row was read. With write-back, if an
     * install that may have evicted dirty entries overlapped the HBM lookup ({@code moveOverlapped};
     * {@code movesBefore} read before it), the misses are read again, HBM first, under the
     * mutation lock: a dirty entry on its way from HBM to DRAM is in neither for a moment. Caller
     * is inside the store's lifecycle.
     */
    private int readMissesBelow(long[] missKeys, float[] rows, boolean[] below, long movesBefore, boolean moveOverlapped) {
        int misses = missKeys.length;
        // Every write of a key below HBM changes its DRAM bucket's version; read them before the values.
        long[] versions = new long[misses];
        for (int m = 0; m < misses; m++) {
            versions[m] = host.version(missKeys[m]);
        }
        int fromBelow = host.readInParts(missKeys, rows, below, true);
        if (moveOverlapped) {
            fromBelow = rereadDemoted(missKeys, rows, below, movesBefore, fromBelow, new boolean[misses]);
        }
        if (fromBelow > 0) {
            schedulePromotion(missKeys, rows, below, ReadStamps.versions(versions), fromBelow);
        }
        return fromBelow;
    }

    /**
     * Installs the found rows of {@code keys} into HBM, now or on the promoter thread, skipping
     * keys written since {@code versions} were read (before their rows); for keys with
     * {@code bySequence[m]} (null: none) {@code versions[m]} is instead the DRAM bucket's sequence
     * count their row was read at, and any change of the bucket skips them.
     */
    private void schedulePromotion(long[] keys, float[] rows, boolean[] found, ReadStamps stamps, int count) {
        promoter.promote(() -> installUnwritten(keys, rows, found, stamps, count, promotionFilter, true));
    }

    /**
     * Installs into HBM those of the {@code count} found rows of {@code keys} that {@code admit}
     * takes and that were not written since {@code versions} were read (before their rows);
     * {@code screened} ones may still be refused by the table's frequency admission.
     * Caller holds the mutation lock: writers hold it too, so versions and dirty marks cannot
     * change while they are compared. Returns how many were installed.
     */
    private int installUnwritten(long[] keys, float[] rows, boolean[] found, ReadStamps stamps, int count,
            LongPredicate admit, boolean screened) {
        long[] installKeys = new long[count];
        float[] installRows = new float[count * dim];
        int p = 0;
        for (int m = 0; m < keys.length && p < count; m++) {
            if (found[m] && stamps.unchanged(host, m, keys[m]) && admit.test(keys[m])) {
                installKeys[p] = keys[m];
                System.arraycopy(rows, m * dim, installRows, p * dim, dim);
                p++;
            }
        }
        installInHbm(installKeys, installRows, p, screened);
        return p;
    }

    /**
     * After an install that may have evicted dirty entries overlapped a read: waits for it to end,
     * then reads again, HBM first and under the mutation lock, those missed keys that may have
     * been demoted since {@code movesBefore} (read before the HBM lookup: a dirty entry that left
     * HBM after that lookup and reached DRAM after the read below). Returns the new number found;
     * sets {@code reread[m]} for keys read again and found.
     */
    private int rereadDemoted(long[] missKeys, float[] rows, boolean[] below, long movesBefore, int fromBelow,
            boolean[] reread) {
        hbm.awaitSettled();
        int[] idx = new int[missKeys.length];
        int changed = 0;
        for (int m = 0; m < missKeys.length; m++) {
            if (hbm.demotedSince(missKeys[m], movesBefore)) {
                idx[changed++] = m;
            }
        }
        if (changed == 0) {
            return fromBelow;
        }
        long[] keys = Batches.gather(missKeys, idx, changed);
        float[] again = new float[changed * dim];
        boolean[] found = new boolean[changed];
        mutation.lock();
        try {
            int inHbm = hbm.peek(keys, again, found);
            if (inHbm < changed) {
                readRestBelow(keys, again, found, changed - inHbm, Promotion.NONE, new boolean[changed]);
            }
        } finally {
            mutation.unlock();
        }
        for (int i = 0; i < changed; i++) {
            int m = idx[i];
            fromBelow += (found[i] ? 1 : 0) - (below[m] ? 1 : 0);
            below[m] = found[i];
            if (found[i]) {
                System.arraycopy(again, i * dim, rows, m * dim, dim);
                reread[m] = true;
            }
        }
        return fromBelow;
    }

    /**
     * Reads from DRAM, the write-back buffer and RocksDB the {@code missing} keys of {@code keys}
     * whose {@code have} flag is false; writes each found row into {@code rows} at the key's
     * position and sets its {@code have} flag and its {@code marked} flag. Returns how many
     * were found. Caller is inside the store's lifecycle.
     */
    private int readRestBelow(long[] keys, float[] rows, boolean[] have, int missing, Promotion promotion,
            boolean[] marked) {
        int[] idx = new int[missing];
        for (int j = 0, r = 0; j < keys.length; j++) {
            if (!have[j]) {
                idx[r++] = j;
            }
        }
        float[] restRows = new float[missing * dim];
        boolean[] restFound = new boolean[missing];
        int found = host.readInParts(Batches.gather(keys, idx, missing), restRows, restFound, promotion == Promotion.BELOW);
        for (int r = 0; r < missing; r++) {
            if (restFound[r]) {
                int j = idx[r];
                have[j] = true;
                marked[j] = true;
                System.arraycopy(restRows, r * dim, rows, j * dim, dim);
            }
        }
        return found;
    }

    /**
     * Installs rows {@code [0, count)} into HBM and copies what that evicts down to DRAM: dirty
     * entries as dirty (or into the write-back buffer if DRAM refuses them), clean ones only where
     * DRAM does not hold the key (its copy there may be dirty with the same value), or, with a
     * spill log, to the log instead. Caller holds the mutation lock.
     */
    private void installInHbm(long[] keys, float[] rows, int count, boolean screened) {
        if (spill != null) {
            spill.invalidate(keys, count);
        }
        hbm.beginMove();
        try {
            demote(hbm.install(keys, rows, count, spill, key -> !host.inDram(key), screened));
        } finally {
            hbm.endMove();
        }
        host.writePending();
    }

    /**
     * Moves what an HBM install evicted down: dirty entries to DRAM as dirty (or into the
     * write-back buffer if DRAM refuses them), clean ones to DRAM where it does not hold the key
     * and there is no spill log (which took them already). Null rows mean no entry had to move.
     * Caller holds the mutation lock, inside {@link HbmTier#beginMove()}.
     */
    private void demote(HbmTier.Demoted d) {
        if (d.count() == 0 || d.rows() == null) {
            return;
        }
        long started = System.nanoTime();
        long now = host.tick();
        boolean cleanMayMove = spill == null && !host.dramHoldsEveryKey();
        // Parts by key, so that the entries of one key (an install may return a key twice) stay
        // in their order; DRAM locks per bucket stripe, so the parts write side by side.
        int parts = pool.partsFor(d.count(), DEMOTIONS_PER_PART);
        pool.run(parts, p -> {
            float[] row = new float[dim];
            for (int e = 0; e < d.count(); e++) {
                long key = d.keys()[e];
                if (parts > 1 && BatchPool.partOf(key, parts) != p) {
                    continue;
                }
                if (d.dirty()[e]) {
                    d.rows().get(e * dim, row);
                    host.putDemoted(key, row, 0, true, now);
                    hbm.markDemoted(key);
                    hbm.countWriteBack();
                } else if (cleanMayMove) {
                    d.rows().get(e * dim, row);
                    host.putDemoted(key, row, 0, false, now);
                }
            }
        });
        host.countDramMove(System.nanoTime() - started);
    }

    /** Evicted entries below which a demotion stays on the caller's thread. */
    private static final int DEMOTIONS_PER_PART = 1024;

    /** The part of a device read below HBM; see {@link #multiGet(CUdeviceptr, long, CUdeviceptr, CUdeviceptr)}. */
    private long readDeviceMisses(DeviceMisses m, long n, CUdeviceptr out, CUdeviceptr found, long movesBefore) {
        int misses = m.count();
        if (misses == 0) {
            return n;
        }
        host.countDramHits(m.dramHits());
        dramReadsOnGpu.add(m.dramHits());
        if (m.allFromDram() && spill == null && !m.moveOverlappedLookup()) {
            // The output is complete: the GPU read every miss from DRAM (which holds no reserved
            // key), and no dirty entry was on its way down during the HBM lookup (no write-back,
            // or no install that may evict dirty entries overlapped it).
            promoteDeviceRead(m, null, null, null);
            return n;
        }
        ReservedKeys.check("multiGet", m.keys());
        // Rows the GPU read from the mapped DRAM tier are in `out` already; the rest are read
        // on the CPU (or from the spill log) and scattered. Host rows are needed only for those,
        // for re-reads (write-back) and for promotions that cannot install from device staging.
        int fromBelow = m.dramHits();
        // Host rows only for what the CPU reads or reads again: rows the GPU read from DRAM stay in
        // device staging (a 1M-key batch's rows are 256 MB at dim 64, zeroed on every allocation).
        float[] rows = fromBelow < misses ? new float[misses * dim] : null;
        boolean[] below = m.fromDram().clone();
        boolean[] scatter = new boolean[misses];
        if (spill != null && fromBelow < misses) {
            // Spilled rows go from the log straight to device memory and are scattered there.
            int fromSpill = reads.readSpilled(m, below, rows, spill, out, found);
            spillReadsOnGpu.add(fromSpill);
            fromBelow += fromSpill;
        }
        if (fromBelow < misses) {
            fromBelow += readRestBelow(m.keys(), rows, below, misses - fromBelow, Promotion.BELOW, scatter);
        }
        if (m.moveOverlappedLookup()) {
            if (rows == null) {
                rows = new float[misses * dim];
            }
            fromBelow = rereadDemoted(m.keys(), rows, below, movesBefore, fromBelow, scatter);
        }
        if (fromBelow > 0) {
            promoteDeviceRead(m, rows, below, scatter);
        }
        int toScatter = 0;
        for (boolean b : scatter) {
            toScatter += b ? 1 : 0;
        }
        reads.scatterBelow(m, rows, scatter, toScatter, out, found);
        return n - misses + fromBelow;
    }

    /**
     * Promotes what a device read found below HBM. Rows the GPU read from DRAM (and that were
     * not read again on the CPU) are installed straight from device staging under the mutation
     * lock, waiting for it when another caller holds it: with several training callers that
     * measured faster than copying those rows to the host for the promoter thread
     * (docs/BENCHMARKS.md, run 92). Rows read on the CPU go to the promoter thread. A null
     * {@code scatter} (and {@code below}) means that the GPU read every miss from DRAM and none was
     * read again: then no per-miss array is built here.
     */
    private void promoteDeviceRead(DeviceMisses m, float[] rows, boolean[] below, boolean[] scatter) {
        int misses = m.count();
        boolean[] onDevice = null; // null: every miss
        boolean[] onHost = null;
        int device = 0;
        int host = 0;
        if (scatter == null) {
            device = misses;
        } else {
            onDevice = new boolean[misses];
            onHost = new boolean[misses];
            for (int j = 0; j < misses; j++) {
                if (m.fromDram()[j] && !scatter[j]) {
                    onDevice[j] = true;
                    device++;
                } else if (below[j]) {
                    onHost[j] = true;
                    host++;
                }
            }
        }
        if (device > 0) {
            mutation.lock();
            try {
                installFromDevice(m, onDevice, device);
            } finally {
                mutation.unlock();
            }
        }
        if (host > 0) {
            long[] expected = m.versions();
            if (m.dramSeqs() != null) {
                expected = expected.clone();
                for (int j = 0; j < misses; j++) {
                    if (m.fromDram()[j]) {
                        expected[j] = m.dramSeqs()[j];
                    }
                }
            }
            schedulePromotion(m.keys(), rows, onHost, ReadStamps.mixed(expected, m.fromDram()), host);
        }
    }

    /**
     * Installs from device staging those of the {@code count} flagged misses of {@code m} (null:
     * every miss, all read from DRAM) whose DRAM bucket did not change since the GPU read their row (so they were not written) and that
     * admission takes, as {@link #installUnwritten} does for host rows.
     * Caller holds the mutation lock.
     */
    private void installFromDevice(DeviceMisses m, boolean[] flagged, int count) {
        int[] at = null;
        long[] install = null;
        int p = count;
        // Every miss, each read from DRAM and unchanged since, all admitted: no key needs a look on the CPU.
        boolean everyMiss = count == m.count() && spill == null && admitsEveryMiss && reads.dramUnchangedSince(m);
        if (!everyMiss) {
            if (flagged == null) {
                flagged = m.fromDram();
            }
            boolean[] unchanged = reads.unchangedInDram(m);
            at = new int[count];
            install = new long[count];
            p = 0;
            for (int j = 0; j < flagged.length && p < count; j++) {
                long key = m.keys()[j];
                if (flagged[j] && unchanged[j] && promotionFilter.test(key)) {
                    at[p] = j;
                    install[p++] = key;
                }
            }
            if (p == 0) {
                return;
            }
            if (spill != null) {
                spill.invalidate(install, p);
            }
        }
        hbm.beginMove();
        try {
            demote(hbm.installFromDevice(m, at, install, p, spill, key -> !host.inDram(key),
                    spill == null && !host.dramHoldsEveryKey(), host::inDram));
        } finally {
            hbm.endMove();
        }
        host.writePending();
    }

    /**
     * With an HBM tier, prefetching means having the keys in HBM when the future completes:
     * keys not there are read from the tiers below (which promote into DRAM per policy) and
     * installed, except those written since they were read. Caller is inside the store's lifecycle.
     */
    public int prefetch(long[] keys) {
        boolean[] inHbm = new boolean[keys.length];
        hbm.contains(keys, inHbm);
        int misses = 0;
        int[] missIdx = new int[keys.length];
        for (int i = 0; i < keys.length; i++) {
            if (!inHbm[i]) {
                missIdx[misses++] = i;
            }
        }
        if (misses == 0) {
            return 0;
        }
        long[] missKeys = Batches.gather(keys, missIdx, misses);
        long[] versions = new long[misses];
        for (int m = 0; m < misses; m++) {
            versions[m] = host.version(missKeys[m]);
        }
        float[] rows = new float[misses * dim];
        boolean[] below = new boolean[misses];
        int found = host.read(missKeys, rows, below, true);
        if (found == 0) {
            return 0;
        }
        mutation.lock();
        try {
            // Asked for explicitly: no admission filter.
            return installUnwritten(missKeys, rows, below, ReadStamps.versions(versions), found, key -> true, false);
        } finally {
            mutation.unlock();
        }
    }

    /**
     * Write-back: writes every dirty HBM entry below, where DRAM holds the key into DRAM (as
     * dirty, so the DRAM flush that follows carries it on), otherwise straight into RocksDB, and
     * marks it clean; the HBM copies stay. A range of slots that fails stays dirty. Caller holds
     * the mutation lock, after {@link HostTiers#writePending()} (an older value of a key there must
     * not land in RocksDB after the newer one from HBM).
     */
    public void writeDirty() {
        if (hbm.writeBack()) {
            hbm.writeBackDirty(host::writeDown);
        }
    }

    /** Whether device writes may write keys DRAM holds into the mapped DRAM tier on the GPU (see {@link HbmTier#writeInDram}). */
    boolean dramWritableOnGpu() {
        return hbm.writesDramOnGpu(spill);
    }

    /** Whether the store has a spill log, whose rows of keys written into HBM must be dropped on the host. */
    boolean spills() {
        return spill != null;
    }

    /** Drops the spill log's rows of keys about to be written into HBM (they would be older). */
    void invalidateSpilled(long[] keys, int count) {
        if (spill != null) {
            spill.invalidate(keys, count);
        }
    }

    /**
     * Installs {@code count} distinct keys at {@code keys} (device staging of {@code st}) with
     * their rows at {@code rows} in {@code state}, those HBM does not hold, and moves what that
     * evicts down as {@link #installInHbm} does. Caller holds the mutation lock and has told
     * {@link HbmTier#noteDirtyWrites()} before installing dirty rows.
     */
    void installStaged(Staging st, CUdeviceptr keys, int count, CUdeviceptr rows, EntryState state) {
        hbm.beginMove();
        try {
            demote(hbm.installStaged(st, keys, count, rows, state, spill, key -> !host.inDram(key),
                    spill == null && !host.dramHoldsEveryKey(), host::inDram, false));
        } finally {
            hbm.endMove();
        }
        host.writePending();
    }
}
