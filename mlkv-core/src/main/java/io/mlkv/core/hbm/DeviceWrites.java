package io.mlkv.core.hbm;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD8;

import io.mlkv.core.tiers.BatchPool;
import io.mlkv.core.tiers.HostTiers;
import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.dram.MappedDramTier;
import io.mlkv.gpu.table.EntryState;
import io.mlkv.gpu.table.GpuHashTable;
import io.mlkv.storage.ReservedKeys;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import jcuda.driver.CUdeviceptr;
import org.agrona.collections.Long2LongHashMap;

/**
 * The write half of a training step on the GPU: device-pointer {@code multiPut} and
 * {@code accumulate} with write-back, where HBM takes every write of a key it holds (or a put
 * installs), the mapped DRAM tier takes accumulates of the keys it holds that HBM lacks, and
 * RocksDB sees only what the tiers above evict or a flush writes back.
 *
 * <p>A call runs, under the store's mutation lock:
 * <ol>
 *   <li>before the lock, a kernel looks for a reserved key (one 8-byte copy back; the batch is
 *       refused before anything is written);</li>
 *   <li>one kernel writes (or adds to) every key HBM holds and marks it dirty on the GPU, and
 *       compacts the positions it missed;</li>
 *   <li>an accumulate adds the deltas of missed keys that the mapped DRAM tier holds into it in
 *       place, on the GPU ({@link HbmTier#writeInDram}; a write does not promote, reads do), so
 *       only the misses DRAM lacks go on;</li>
 *   <li>only the missed keys come to the host, deduplicated there. A put installs each missed
 *       key's last row dirty, straight from the caller's device rows. An accumulate reads the
 *       missed keys' current rows below in one batch (zeros for new keys), installs them dirty
 *       (a row equal to the one below costs one extra write-back at most; a new key then exists
 *       whichever way it leaves), and adds the missed positions' deltas on the GPU. What an install
 *       evicts moves down in bulk, dirty entries as dirty ({@link HbmMigration#installStaged}).</li>
 *   <li>a key an install of the same call evicted again before its delta was added (a bucket full
 *       of this call's keys) takes the host write path: rare, and correct, since its installed row
 *       moved down as dirty.</li>
 * </ol>
 *
 * <p>Lock rule: HBM's and DRAM's contents change only under the mutation lock, so the misses of
 * step 2 still stand in steps 3 and 4. The host work is proportional to the misses, not to the batch.
 */
public final class DeviceWrites {
    /** The host write path, for the rare keys step 5 hands over: rows {@code [0, keys.length)}. */
    public interface HostWrite {
        void apply(long[] keys, float[] rows);
    }

    private final int dim;
    private final HbmTier hbm;
    private final HbmMigration migration;
    private final HostTiers host;
    private final ReentrantLock mutation;
    private final AtomicLong mutationEpoch;
    private final AtomicLong entryCount;
    /** Splits the DRAM writes of {@link #writeClean} over the store's threads. */
    private final BatchPool pool;

    public DeviceWrites(int dim, HbmTier hbm, HbmMigration migration, HostTiers host, ReentrantLock mutation,
            AtomicLong mutationEpoch, AtomicLong entryCount, BatchPool pool) {
        this.pool = pool;
        this.dim = dim;
        this.hbm = hbm;
        this.migration = migration;
        this.host = host;
        this.mutation = mutation;
        this.mutationEpoch = mutationEpoch;
        this.entryCount = entryCount;
    }

    /**
     * Refuses a device batch holding a reserved key, naming the key and its position.
     *
     * @throws IllegalArgumentException for the first reserved key
     */
    public void checkReserved(String op, CUdeviceptr keys, long n) {
        long at = hbm.table().firstReservedKey(keys, n);
        if (at >= 0) {
            throw ReservedKeys.refused(op, hbm.keysToHost(keys.withByteOffset(at * 8), 1)[0], at);
        }
    }

    /**
     * Device multiPut with write-back: a repeated key keeps its last row. Caller is inside the
     * lifecycle and checked the keys.
     *
     * <p>The missed keys stay on the GPU where they can: deduplicated there (each with its last
     * position), counted as new or existing by the mapped DRAM tier (only the keys it lacks come
     * to the host, for the write-back buffer and RocksDB), their rows gathered from the caller's
     * and installed. With a spill log (whose rows of the keys must be dropped on the host) or more
     * misses than one deduplication takes, the keys come to the host.
     */
    public void put(CUdeviceptr keys, long n, CUdeviceptr values) {
        GpuHashTable table = hbm.table();
        underLock(n, st -> {
            hbm.noteDirtyWrites();
            int missed = (int) table.assignHeld(keys, values, n, EntryState.DIRTY, st.missedKeys.pointer(), st.missedIndex.pointer());
            if (missed > 0 && !migration.spills() && missed <= table.maxDistinctBatch()) {
                int unique = (int) table.lastOccurrencesAt(st.missedKeys.pointer(), st.missedIndex.pointer(), missed,
                        st.installKeys.pointer(), st.rowsIndex.pointer());
                long added = unique - existingBelow(st, unique);
                table.gatherRows(values, st.rowsIndex.pointer(), unique, st.installRows.pointer());
                migration.installStaged(st, st.installKeys.pointer(), unique, st.installRows.pointer(), EntryState.DIRTY);
                entryCount.addAndGet(added);
            } else if (missed > 0) {
                Misses m = misses(st, missed);
                migration.invalidateSpilled(m.keys, m.unique);
                long added = m.unique - host.existing(m.keys, m.unique, new boolean[m.unique], true);
                // The last occurrence of each missed key is the row it keeps. A put installs its
                // misses (a write-only workload caches its hot keys in HBM); an accumulate adds into
                // DRAM in place instead (a training step reads first, and reads promote).
                stageLastRows(st, values, m.keys, m.lastAt, m.unique);
                migration.installStaged(st, st.installKeys.pointer(), m.unique, st.installRows.pointer(), EntryState.DIRTY);
                entryCount.addAndGet(added);
            }
        });
    }

    /**
     * How many of the {@code n} distinct keys at {@code st.installKeys}, which HBM lacks, exist
     * below it: the mapped DRAM tier answers on the GPU for the keys it holds, the host tiers
     * for the rest (the write-back buffer, and RocksDB unless DRAM holds every key). Caller holds
     * the mutation lock, so DRAM does not change meanwhile.
     */
    private int existingBelow(Staging st, int n) {
        MappedDramTier mapped = hbm.mappedDram();
        int inDram = 0;
        hbm.table().makeDeviceCurrent();
        if (mapped != null) {
            mapped.contains(st.installKeys.pointer(), n, st.flags.pointer(), st.stream);
            Cuda.check(cuMemcpyDtoH(st.hostFlags.pointer(), st.flags.pointer(), n), "cuMemcpyDtoH (keys DRAM holds)");
            java.nio.ByteBuffer held = st.hostFlags.buffer();
            for (int j = 0; j < n; j++) {
                inDram += held.get(j);
            }
            if (inDram == n) {
                return n;
            }
        }
        Cuda.check(cuMemcpyDtoH(st.hostMissKeys.pointer(), st.installKeys.pointer(), n * 8L), "cuMemcpyDtoH (keys DRAM lacks)");
        LongBuffer all = st.hostMissKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer();
        long[] rest = new long[n - inDram];
        int r = 0;
        for (int j = 0; j < n; j++) {
            if (mapped == null || st.hostFlags.buffer().get(j) == 0) {
                rest[r++] = all.get(j);
            }
        }
        return inDram + host.existing(rest, r, new boolean[r], true);
    }

    /**
     * Stages {@code keys[0, n)} at {@code st.installKeys} and the rows of {@code values} at their
     * positions {@code at[0, n)} at {@code st.installRows}.
     */
    private void stageLastRows(Staging st, CUdeviceptr values, long[] keys, int[] at, int n) {
        putKeys(st, keys, n);
        st.hostRowsIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer().put(0, at, 0, n);
        Cuda.check(cuMemcpyHtoD(st.rowsIndex.pointer(), st.hostRowsIndex.pointer(), n * 4L),
                "cuMemcpyHtoD (positions of staged rows)");
        hbm.table().gatherRows(values, st.rowsIndex.pointer(), n, st.installRows.pointer());
    }

    /**
     * Device accumulate with write-back: every occurrence of a key adds its delta; an absent key
     * starts from zeros. Caller is inside the lifecycle and checked the keys; {@code rest} takes
     * the keys of step 5.
     */
    public void accumulate(CUdeviceptr keys, long n, CUdeviceptr deltas, HostWrite rest) {
        GpuHashTable table = hbm.table();
        underLock(n, st -> {
            hbm.noteDirtyWrites();
            int missed = (int) table.accumulateHeld(keys, deltas, n, EntryState.DIRTY, st.missedKeys.pointer(), st.missedIndex.pointer());
            if (missed > 0 && migration.dramWritableOnGpu()) {
                // A write does not promote: keys DRAM holds take their deltas there, in place.
                missed = addInDram(st, deltas, missed);
            }
            if (missed > 0) {
                Misses m = misses(st, missed);
                migration.invalidateSpilled(m.keys, m.unique);
                float[] base = new float[m.unique * dim];
                boolean[] found = new boolean[m.unique];
                host.readCurrent(m.keys, m.unique, base, found);
                long added = 0;
                for (boolean f : found) {
                    added += f ? 0 : 1;
                }
                putKeys(st, m.keys, m.unique);
                st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer().put(0, base, 0, m.unique * dim);
                Cuda.check(cuMemcpyHtoD(st.rowsIn.pointer(), st.hostRows.pointer(), m.unique * dim * 4L),
                        "cuMemcpyHtoD (current rows of missed keys)");
                migration.installStaged(st, st.installKeys.pointer(), m.unique, st.rowsIn.pointer(), EntryState.DIRTY);
                entryCount.addAndGet(added);
                // The missed positions' deltas, added where their keys now are.
                table.gatherRows(deltas, st.missedIndex.pointer(), missed, st.installRows.pointer());
                int again = (int) table.accumulateHeld(st.missedKeys.pointer(), st.installRows.pointer(), missed, EntryState.DIRTY,
                        st.installKeys.pointer(), st.rowsIndex.pointer());
                if (again > 0) {
                    handOver(st, again, rest);
                }
            }
        });
    }

    /**
     * Adds the deltas of the {@code missed} positions at {@code st.missedIndex} (keys at
     * {@code st.missedKeys}) to the values the mapped DRAM tier holds, on the GPU, and moves the
     * misses whose keys it lacks to the front of both (the order kept). Returns how many it
     * lacks. Caller holds the mutation lock and checked {@link HbmMigration#dramWritableOnGpu}.
     */
    private int addInDram(Staging st, CUdeviceptr deltas, int missed) {
        GpuHashTable table = hbm.table();
        table.gatherRows(deltas, st.missedIndex.pointer(), missed, st.installRows.pointer());
        table.makeDeviceCurrent();
        Cuda.check(cuMemsetD8(st.flags.pointer(), MappedDramTier.WRITE_WANTED, missed), "cuMemsetD8 (in-place add states)");
        hbm.writeInDram(st, st.missedKeys.pointer(), st.installRows.pointer(), missed, missed, true);
        java.nio.ByteBuffer state = st.hostFlags.buffer();
        int lacking = 0;
        for (int j = 0; j < missed; j++) {
            lacking += state.get(j) == MappedDramTier.WRITE_DONE ? 0 : 1;
        }
        if (lacking == 0 || lacking == missed) {
            return lacking;
        }
        Cuda.check(cuMemcpyDtoH(st.hostMissKeys.pointer(), st.missedKeys.pointer(), missed * 8L), "cuMemcpyDtoH (missed keys)");
        Cuda.check(cuMemcpyDtoH(st.hostIndex.pointer(), st.missedIndex.pointer(), missed * 4L), "cuMemcpyDtoH (missed positions)");
        LongBuffer k = st.hostMissKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer();
        IntBuffer at = st.hostIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer();
        int left = 0;
        for (int j = 0; j < missed; j++) {
            if (state.get(j) != MappedDramTier.WRITE_DONE) {
                k.put(left, k.get(j));
                at.put(left++, at.get(j));
            }
        }
        Cuda.check(cuMemcpyHtoD(st.missedKeys.pointer(), st.hostMissKeys.pointer(), left * 8L), "cuMemcpyHtoD (missed keys left)");
        Cuda.check(cuMemcpyHtoD(st.missedIndex.pointer(), st.hostIndex.pointer(), left * 4L),
                "cuMemcpyHtoD (missed positions left)");
        return left;
    }

    /** A device write's work under the lock, with a staging set for its batch. */
    private interface LockedWrite {
        void run(Staging st);
    }

    /**
     * Runs {@code write} under the store's mutation lock with a staging set for {@code n} keys
     * (install buffers ready), then gives the set back and bumps the mutation epoch before
     * unlocking, whether it ended or failed.
     */
    private void underLock(long n, LockedWrite write) {
        mutation.lock();
        Staging st = null;
        try {
            st = hbm.acquire(n);
            st.ensureInstall();
            write.run(st);
        } finally {
            if (st != null) {
                hbm.giveBack(st);
            }
            mutationEpoch.incrementAndGet();
            mutation.unlock();
        }
    }

    /** What a device write does with each row. */
    public enum Kind {
        /** The row replaces the value; a repeated key keeps its last row. */
        PUT,
        /** The row is added to the value; a repeated key gets every row. */
        ACCUMULATE
    }

    /** Whether {@link #writeClean} takes a batch of {@code n} keys (else the caller's host path does). */
    public boolean takesClean(long n) {
        return n <= hbm.table().maxDistinctBatch();
    }

    /**
     * Device write without HBM write-back, where HBM holds clean copies: one kernel writes (or
     * adds to) the keys HBM holds, then the final row of each distinct one of them is copied to
     * the host and written into DRAM (dirty there, as every host write), in parts on the store's
     * threads, before the write lock is released, so HBM and DRAM agree again before any reader can
     * miss HBM for those keys (HBM evicts only under the lock). The keys HBM does not hold go
     * through {@code rest}, the host write path, in batch order. For the store's {@code WRITE_BACK}
     * durability; caller is inside the lifecycle, checked the keys and {@link #takesClean} the batch.
     */
    public void writeClean(Kind kind, CUdeviceptr keys, long n, CUdeviceptr rows, HostWrite rest) {
        GpuHashTable table = hbm.table();
        underLock(n, st -> {
            int missed = (int) (kind == Kind.PUT
                    ? table.assignHeld(keys, rows, n, EntryState.CLEAN, st.missedKeys.pointer(), st.missedIndex.pointer())
                    : table.accumulateHeld(keys, rows, n, EntryState.CLEAN, st.missedKeys.pointer(), st.missedIndex.pointer()));
            table.makeDeviceCurrent();
            Cuda.check(cuMemcpyDtoH(st.hostKeys.pointer(), keys, n * 8L), "cuMemcpyDtoH (written keys)");
            if (missed < n) {
                writeHeldDown(st, keys, (int) n);
            }
            if (missed > 0) {
                // In batch order, so that the host path keeps a repeated key's last row.
                table.makeDeviceCurrent();
                Cuda.check(cuMemcpyDtoH(st.hostIndex.pointer(), st.missedIndex.pointer(), missed * 4L),
                        "cuMemcpyDtoH (missed positions)");
                int[] at = new int[missed];
                st.hostIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer().get(0, at);
                Arrays.sort(at);
                handOverPositions(st, rows, at, rest);
            }
        });
    }

    /**
     * The final rows of the distinct keys of the batch that HBM holds (every key of the batch
     * was just written there or missed) into DRAM, dirty: on the GPU into the mapped DRAM tier
     * where it holds them, the rest from host copies on the store's threads. The batch's keys are
     * in {@code st.hostKeys}.
     */
    private void writeHeldDown(Staging st, CUdeviceptr keys, int n) {
        GpuHashTable table = hbm.table();
        int distinct = (int) table.lastOccurrences(keys, n, st.rowsIndex.pointer());
        table.find(keys, n, st.rowsIn.pointer(), st.flags.pointer(), null, null);
        table.gatherRows(st.rowsIn.pointer(), st.rowsIndex.pointer(), distinct, st.installRows.pointer());
        table.makeDeviceCurrent();
        Cuda.check(cuMemcpyDtoH(st.hostFlags.pointer(), st.flags.pointer(), n), "cuMemcpyDtoH (held flags)");
        Cuda.check(cuMemcpyDtoH(st.hostRowsIndex.pointer(), st.rowsIndex.pointer(), distinct * 4L),
                "cuMemcpyDtoH (distinct positions)");
        LongBuffer k = st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer();
        IntBuffer at = st.hostRowsIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer();
        java.nio.ByteBuffer held = st.hostFlags.buffer();
        // Row j of st.installRows is the final row of the key at position at[j]; down[j] says whether it goes down.
        long[] distinctKeys = new long[distinct];
        boolean[] down = new boolean[distinct];
        int wanted = 0;
        for (int j = 0; j < distinct; j++) {
            int pos = at.get(j);
            distinctKeys[j] = k.get(pos);
            down[j] = held.get(pos) != 0;
            wanted += down[j] ? 1 : 0;
        }
        if (wanted > 0 && migration.dramWritableOnGpu()) {
            for (int j = 0; j < distinct; j++) {
                held.put(j, down[j] ? MappedDramTier.WRITE_WANTED : MappedDramTier.WRITE_SKIPPED);
            }
            // Through hostMissKeys: hostKeys holds the batch's keys, which the hand-over of misses reads after this.
            st.hostMissKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().put(0, distinctKeys, 0, distinct);
            Cuda.check(cuMemcpyHtoD(st.installKeys.pointer(), st.hostMissKeys.pointer(), distinct * 8L),
                    "cuMemcpyHtoD (keys written down)");
            Cuda.check(cuMemcpyHtoD(st.flags.pointer(), st.hostFlags.pointer(), distinct), "cuMemcpyHtoD (in-place write states)");
            hbm.writeInDram(st, st.installKeys.pointer(), st.installRows.pointer(), distinct, wanted, false);
            wanted = 0;
            for (int j = 0; j < distinct; j++) {
                // Written in place, or not wanted: only the keys DRAM lacks are left.
                down[j] = held.get(j) == MappedDramTier.WRITE_NOT_HELD;
                wanted += down[j] ? 1 : 0;
            }
        }
        if (wanted > 0) {
            Cuda.check(cuMemcpyDtoH(st.hostRows.pointer(), st.installRows.pointer(), distinct * dim * 4L),
                    "cuMemcpyDtoH (final rows)");
            FloatBuffer finals = st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
            pool.runRanges(distinct, KEYS_PER_PART, (from, to) -> {
                long[] part = new long[to - from];
                float[] values = new float[(to - from) * dim];
                int c = 0;
                for (int j = from; j < to; j++) {
                    if (down[j]) {
                        part[c] = distinctKeys[j];
                        finals.get(j * dim, values, c * dim, dim);
                        c++;
                    }
                }
                host.writeRows(part, values, c, true, new boolean[c]);
            });
        }
        host.writePending();
    }

    /**
     * Positions {@code at} (ascending) of a device batch whose keys are in {@code st.hostKeys}:
     * their keys and rows to the host, then {@code rest}.
     */
    private void handOverPositions(Staging st, CUdeviceptr rows, int[] at, HostWrite rest) {
        GpuHashTable table = hbm.table();
        int count = at.length;
        st.hostRowsIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer().put(0, at, 0, count);
        Cuda.check(cuMemcpyHtoD(st.rowsIndex.pointer(), st.hostRowsIndex.pointer(), count * 4L), "cuMemcpyHtoD (positions)");
        table.gatherRows(rows, st.rowsIndex.pointer(), count, st.rowsIn.pointer());
        table.makeDeviceCurrent();
        Cuda.check(cuMemcpyDtoH(st.hostRows.pointer(), st.rowsIn.pointer(), count * dim * 4L), "cuMemcpyDtoH (rows handed over)");
        LongBuffer all = st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer();
        long[] k = new long[count];
        for (int j = 0; j < count; j++) {
            k[j] = all.get(at[j]);
        }
        float[] r = new float[count * dim];
        st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer().get(0, r);
        rest.apply(k, r);
    }

    /**
     * Step 5: the {@code count} keys at {@code st.installKeys} whose deltas (rows
     * {@code st.rowsIndex[j]} of {@code st.installRows}) found no entry go through {@code rest}.
     */
    private void handOver(Staging st, int count, HostWrite rest) {
        GpuHashTable table = hbm.table();
        table.gatherRows(st.installRows.pointer(), st.rowsIndex.pointer(), count, st.rowsIn.pointer());
        table.makeDeviceCurrent();
        Cuda.check(cuMemcpyDtoH(st.hostKeys.pointer(), st.installKeys.pointer(), count * 8L), "cuMemcpyDtoH (keys handed over)");
        Cuda.check(cuMemcpyDtoH(st.hostRows.pointer(), st.rowsIn.pointer(), count * dim * 4L), "cuMemcpyDtoH (deltas handed over)");
        long[] k = new long[count];
        float[] rows = new float[count * dim];
        st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().get(0, k);
        FloatBuffer r = st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
        r.get(0, rows);
        rest.apply(k, rows);
    }

    /** Rows per part of the DRAM writes of {@link #writeHeldDown}; below twice this the caller writes them all. */
    private static final int KEYS_PER_PART = 2048;

    /** The distinct missed keys of a pass, with the last position of each. */
    private record Misses(long[] keys, int[] lastAt, int unique) {
    }

    /** Copies the {@code missed} keys and positions of {@code st} to the host and deduplicates them. */
    private Misses misses(Staging st, int missed) {
        hbm.table().makeDeviceCurrent();
        Cuda.check(cuMemcpyDtoH(st.hostMissKeys.pointer(), st.missedKeys.pointer(), missed * 8L), "cuMemcpyDtoH (missed keys)");
        Cuda.check(cuMemcpyDtoH(st.hostIndex.pointer(), st.missedIndex.pointer(), missed * 4L), "cuMemcpyDtoH (missed positions)");
        LongBuffer k = st.hostMissKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer();
        IntBuffer at = st.hostIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer();
        Long2LongHashMap slotOf = new Long2LongHashMap(missed * 2, 0.5f, -1);
        long[] keys = new long[missed];
        int[] lastAt = new int[missed];
        int u = 0;
        for (int j = 0; j < missed; j++) {
            long key = k.get(j);
            int pos = at.get(j);
            long slot = slotOf.get(key);
            if (slot < 0) {
                slotOf.put(key, u);
                keys[u] = key;
                lastAt[u++] = pos;
            } else if (pos > lastAt[(int) slot]) {
                lastAt[(int) slot] = pos;
            }
        }
        return new Misses(keys, lastAt, u);
    }

    /** Copies {@code keys[0, n)} to {@code st.installKeys}. */
    private void putKeys(Staging st, long[] keys, int n) {
        st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().put(0, keys, 0, n);
        Cuda.check(cuMemcpyHtoD(st.installKeys.pointer(), st.hostKeys.pointer(), n * 8L), "cuMemcpyHtoD (keys to install)");
    }
}
