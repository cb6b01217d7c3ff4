package io.mlkv.core.hbm;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.PinnedMemory;
import io.mlkv.gpu.cufile.DeviceRegion;
import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.gpu.cufile.HostRegion;
import io.mlkv.gpu.cufile.Region;
import io.mlkv.gpu.dram.MappedDramTier;
import io.mlkv.gpu.spill.SpillLog;
import io.mlkv.gpu.table.EntryState;
import io.mlkv.gpu.table.GpuHashTable;
import io.mlkv.gpu.table.ScoreMode;
import io.mlkv.gpu.table.TableSnapshot;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.dram.DramTier;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongPredicate;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import org.agrona.CloseHelper;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The HBM tier of the store: a {@link GpuHashTable} over the DRAM and RocksDB tiers. Copies are
 * installed only when no write of the key happened since they were read, so a copy here is never
 * older than the entry below it. Installs use {@code insertAndEvict}, and the store copies what
 * they push out down to DRAM.
 *
 * <p>Without write-back, every entry here is clean: the store updates or erases the HBM copy in
 * the same locked batch that writes the entry below. With write-back, a write of a key held here
 * updates only this tier and marks the entry dirty, on the GPU, beside the entry; its value
 * reaches DRAM when the table evicts it (the eviction returns the mark with the row), or on flush
 * (a kernel finds the marked entries). Installs never overwrite a present entry, so a copy read
 * below cannot replace a newer one here. Readers that missed here while an install was evicting
 * could have missed a dirty entry on its way down; {@link #moves()} lets them tell.
 *
 * <p>Methods that change the table or the dirty set are called with the store's mutation lock
 * held; lookups may run at any time (the table serialises its own calls).
 */
public final class HbmTier implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(HbmTier.class);

    private final GpuHashTable table;
    private final boolean writeBack;
    /** Dirty keys and the moves and stamps that let readers see entries in transit (write-back only). */
    private final WriteBackTransit transit = new WriteBackTransit();
    private final LongAdder hits = new LongAdder();
    private final LongAdder misses = new LongAdder();
    private final LongAdder installs = new LongAdder();
    private final LongAdder writeBacks = new LongAdder();
    private final LongAdder lookupNanos = new LongAdder();
    private final LongAdder installNanos = new LongAdder();
    private final LongAdder spillAppendNanos = new LongAdder();

    private HbmTier(GpuHashTable table, boolean writeBack) {
        this.table = table;
        this.writeBack = writeBack;
    }

    /**
     * Opens the tier on the current CUDA device; call {@link #unavailableReason()} first.
     *
     * @param writeBack whether writes of keys held here stay here until eviction or flush
     */
    public static HbmTier open(int dim, long capacity, boolean writeBack) {
        GpuHashTable table = GpuHashTable.create(dim, capacity, ScoreMode.LRU, 1 << 16);
        // Reads count as use: a full bucket evicts its least recently read or written entry.
        table.scoreReads(true);
        LOG.info("HBM tier on {}: {} slots of dim {}, {}", table.deviceName(), table.capacity(), dim,
                writeBack ? "write-back" : "clean copies only");
        return new HbmTier(table, writeBack);
    }

    /** Why no HBM tier can be opened here (no kernels built, no usable CUDA device), or null if one can. */
    public static String unavailableReason() {
        return !Kernels.built() ? "the GPU kernels were not built (no nvcc when mlkv-gpu was packaged)"
                : CudaDevice.unavailableReason();
    }

    /** Looks up a batch; returns the number found. Rows of missing keys are left untouched. */
    public int find(long[] keys, float[] out, boolean[] found) {
        long started = System.nanoTime();
        int n = table.find(keys, out, found);
        lookupNanos.add(System.nanoTime() - started);
        hits.add(n);
        misses.add(keys.length - n);
        return n;
    }

    /** Which keys the tier holds, without counting hits or misses. */
    public void contains(long[] keys, boolean[] out) {
        table.containsKeys(keys, out);
    }

    /** Whether writes of keys held here stay here until eviction or flush. */
    public boolean writeBack() {
        return writeBack;
    }

    /** Looks up a batch without counting hits or misses (the store's own reads under its lock). */
    public int peek(long[] keys, float[] out, boolean[] found) {
        return table.peek(keys, out, found);
    }

    /**
     * What an install pushed out of HBM, in the order it left; entries {@code [0, count)}, entry
     * {@code e}'s row at {@code rows[e * dim ..]} (read with absolute gets: several threads may
     * read it at once), with {@code dirty[e]} telling whether it was dirty. Rows from device
     * staging stay in its pinned buffer, valid while the caller holds the staging set. Installs
     * from device staging leave {@code rows} (and {@code dirty}) null when no evicted entry has
     * to move down. When
     * nobody needs to see the evicted entries at all (no spill log, nothing dirty, and clean
     * entries stay where they are) the insert is queued without waiting, and {@code keys} and
     * {@code values} are null and {@code count} 0: the evicted entries never leave the GPU, and
     * the table counts them.
     */
    public record Demoted(long[] keys, FloatBuffer rows, boolean[] dirty, int count) {
        static final Demoted NONE = new Demoted(new long[0], FloatBuffer.allocate(0), new boolean[0], 0);

        /** This with its rows copied to the heap, for use after the staging set is given back. */
        Demoted detached(int dim) {
            if (rows == null || !rows.isDirect()) {
                return this;
            }
            float[] copy = new float[count * dim];
            rows.get(0, copy);
            return new Demoted(keys, FloatBuffer.wrap(copy), dirty, count);
        }
    }

    /**
     * Installs clean copies of rows {@code [0, count)} whose keys HBM does not hold (present ones
     * are left as they are) and returns the entries evicted to make room. With a {@code spill} log, the evicted rows are also
     * appended to it straight from device memory, indexed for the clean ones that
     * {@code spillable} accepts. Caller holds the mutation lock and brackets the call, and the
     * handling of what it returns, with {@link #beginMove()} and {@link #endMove()}.
     */
    public Demoted install(long[] keys, float[] values, int count, SpillLog spill, LongPredicate spillable) {
        if (count == 0) {
            return Demoted.NONE;
        }
        long started = System.nanoTime();
        try {
            if (spill != null) {
                return installSpilling(keys, values, count, spill, spillable);
            }
            int dim = table.dim();
            long[] evictedKeys = new long[count];
            float[] evictedValues = new float[count * dim];
            boolean[] evictedDirty = new boolean[count];
            int evicted = table.installAbsent(Arrays.copyOf(keys, count), Arrays.copyOf(values, count * dim),
                    evictedKeys, evictedValues, evictedDirty);
            installs.add(count);
            return new Demoted(evictedKeys, FloatBuffer.wrap(evictedValues), evictedDirty, evicted);
        } finally {
            installNanos.add(System.nanoTime() - started);
        }
    }

    /**
     * {@link #install} through device staging, so that what the table evicts is still in device
     * memory when it is written to the spill log (by cuFile where the log uses it). The evicted
     * keys and rows are copied to the host too: the caller writes dirty ones down to DRAM.
     */
    private Demoted installSpilling(long[] keys, float[] values, int count, SpillLog spill, LongPredicate spillable) {
        int dim = table.dim();
        Staging st = acquire(count);
        try {
            st.ensureInstall();
            st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().put(0, keys, 0, count);
            st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer().put(0, values, 0, count * dim);
            Cuda.check(cuMemcpyHtoD(st.missedKeys.pointer(), st.hostKeys.pointer(), count * 8L), "cuMemcpyHtoD (install keys)");
            Cuda.check(cuMemcpyHtoD(st.rowsIn.pointer(), st.hostRows.pointer(), count * dim * 4L), "cuMemcpyHtoD (install rows)");
            // Clean evictees need no host copy: the spill log takes them (the caller moves dirty ones down).
            // The rows are read after the staging set is given back: off its pinned buffer first.
            return installStaged(st, st.missedKeys.pointer(), count, st.rowsIn.pointer(), EntryState.CLEAN, spill, spillable,
                    false, null).detached(dim);
        } finally {
            giveBack(st);
        }
    }

    /**
     * Installs the {@code count} distinct keys at {@code keys} with their rows at {@code rows}
     * (device memory), those HBM does not hold, in {@code state}; appends what the table evicts
     * to the {@code spill} log (if any; indexed for the clean keys {@code spillable} accepts) and
     * returns the evicted keys and marks, with their rows if any of them must move down (a dirty
     * one, or with {@code demoteClean} a clean one DRAM lacks) and null rows otherwise. Which keys
     * DRAM holds is asked on the GPU where the tier is mapped (one probe of the evicted keys), of
     * {@code inDram} otherwise. Caller holds the mutation lock, inside {@link #beginMove()}.
     */
    Demoted installStaged(Staging st, CUdeviceptr keys, int count, CUdeviceptr rows, EntryState state, SpillLog spill,
            LongPredicate spillable, boolean demoteClean, LongPredicate inDram) {
        int dim = table.dim();
        long rowBytes = dim * 4L;
        installs.add(count);
        if (state == EntryState.CLEAN && spill == null && !demoteClean && !transit.mayHaveDirty()) {
            // Nothing evicted needs a look: no wait for the insert. The next use of this staging
            // waits for it (acquire), and the table's later calls run behind it on its stream.
            table.installAbsentAsync(keys, rows, count, st.installed);
            st.installQueued = true;
            return new Demoted(null, null, null, 0);
        }
        if (state == EntryState.DIRTY) {
            transit.noteDirtyWrites();
        }
        int evicted = (int) table.installAbsent(keys, rows, count, state,
                GpuHashTable.Evictions.withMarks(st.evictedKeys.pointer(), st.evictedRows.pointer(), st.evictedDirty.pointer()));
        if (evicted == 0) {
            return Demoted.NONE;
        }
        long[] evictedKeys = new long[evicted];
        boolean[] evictedDirty = new boolean[evicted];
        table.makeDeviceCurrent();
        Cuda.check(cuMemcpyDtoH(st.hostKeys.pointer(), st.evictedKeys.pointer(), evicted * 8L), "cuMemcpyDtoH (evicted keys)");
        Cuda.check(cuMemcpyDtoH(st.hostEvictedDirty.pointer(), st.evictedDirty.pointer(), evicted),
                "cuMemcpyDtoH (evicted dirty marks)");
        st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().get(0, evictedKeys);
        ByteBuffer marks = st.hostEvictedDirty.buffer();
        for (int e = 0; e < evicted; e++) {
            evictedDirty[e] = marks.get(e) != 0;
        }
        boolean posixSpill = spill != null && !spill.path().equals("cufile");
        boolean needRows = posixSpill;
        ByteBuffer present = null;
        if (demoteClean && !needRows && mappedDram != null) {
            mappedDram.contains(st.evictedKeys.pointer(), evicted, st.flags.pointer(), st.stream);
            Cuda.check(cuMemcpyDtoH(st.hostFlags.pointer(), st.flags.pointer(), evicted), "cuMemcpyDtoH (evicted keys in DRAM)");
            present = st.hostFlags.buffer();
        }
        for (int e = 0; e < evicted && !needRows; e++) {
            needRows = evictedDirty[e]
                    || demoteClean && (present != null ? present.get(e) == 0 : !inDram.test(evictedKeys[e]));
        }
        FloatBuffer evictedRows = null;
        if (needRows) {
            Cuda.check(cuMemcpyDtoH(st.hostRows.pointer(), st.evictedRows.pointer(), evicted * rowBytes),
                    "cuMemcpyDtoH (evicted rows)");
            evictedRows = st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
        }
        if (spill != null) {
            boolean[] keep = new boolean[evicted];
            for (int e = 0; e < evicted; e++) {
                keep[e] = !evictedDirty[e] && spillable.test(evictedKeys[e]);
            }
            // cuFile writes from device memory; the POSIX path writes the host copy made above.
            Region source = posixSpill ? new HostRegion(st.hostRows.buffer())
                    : new DeviceRegion(st.evictedRows.pointer(), evicted * rowBytes);
            long appendStarted = System.nanoTime();
            try {
                spill.append(evictedKeys, keep, evicted, source);
            } catch (MlkvException e) {
                // The rows are clean copies: losing them costs reads from below, not data. The log
                // stays consistent (SpillLog.append indexes nothing it did not write).
                if (spillFailures.getAndIncrement() == 0) {
                    LOG.warn("HBM spill log write failed; evicted rows are dropped instead ({})", e.getMessage());
                }
            } finally {
                spillAppendNanos.add(System.nanoTime() - appendStarted);
            }
        }
        return new Demoted(evictedKeys, evictedRows, evictedRows == null ? null : evictedDirty, evicted);
    }

    /**
     * Device reads: reads those misses of {@code m} not yet found ({@code below[j]} false) that
     * the spill log holds into device staging (straight, with cuFile; through pinned staging
     * and one copy on the POSIX path) and scatters them into {@code out}, setting their
     * {@code found} bytes. Copies of the rows go to
     * {@code rows} (at the miss's position, for promotion) and their {@code below} flags are set.
     * Returns how many were found.
     */
    public int readSpilled(DeviceMisses m, boolean[] below, float[] rows, SpillLog spill, CUdeviceptr out, CUdeviceptr found) {
        int count = m.count();
        int[] candidates = new int[count];
        int c = 0;
        for (int j = 0; j < count; j++) {
            if (!below[j]) {
                candidates[c++] = j;
            }
        }
        SpillLog.Hits inLog = spill.lookup(m.keys(), candidates, c);
        int hits = inLog.count();
        if (hits == 0) {
            return 0;
        }
        int[] at = inLog.at();
        long[] hitPositions = inLog.positions();
        int dim = table.dim();
        long rowBytes = dim * 4L;
        boolean[] valid = new boolean[hits];
        int ok;
        Staging st = acquire(count);
        try {
            long started = System.nanoTime();
            boolean direct = spill.path().equals("cufile");
            ok = spill.read(hitPositions, hits, direct ? new DeviceRegion(st.rowsIn.pointer(), hits * rowBytes)
                    : new HostRegion(st.hostRows.buffer()), valid);
            if (direct) {
                Cuda.check(cuMemcpyDtoH(st.hostRows.pointer(), st.rowsIn.pointer(), hits * rowBytes), "cuMemcpyDtoH (spilled rows)");
            } else if (ok == hits) {
                Cuda.check(cuMemcpyHtoD(st.rowsIn.pointer(), st.hostRows.pointer(), hits * rowBytes), "cuMemcpyHtoD (spilled rows)");
            }
            if (ok == hits) {
                IntBuffer ix = st.hostRowsIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer();
                for (int h = 0; h < hits; h++) {
                    ix.put(h, m.index()[at[h]]);
                }
                Cuda.check(cuMemcpyHtoD(st.rowsIndex.pointer(), st.hostRowsIndex.pointer(), hits * 4L),
                        "cuMemcpyHtoD (spilled row positions)");
                table.scatterRows(st.rowsIn.pointer(), st.rowsIndex.pointer(), hits, out, found);
            }
            FloatBuffer r = st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
            for (int h = 0; h < hits; h++) {
                if (valid[h]) {
                    r.get(h * dim, rows, at[h] * dim, dim);
                    below[at[h]] = true;
                }
            }
            if (ok < hits && ok > 0) {
                // Rare: the ring overwrote some rows while they were read; scatter the valid ones from the host copies.
                boolean[] mask = new boolean[count];
                for (int h = 0; h < hits; h++) {
                    mask[at[h]] = valid[h];
                }
                scatterHostRows(st, rows, mask, m.index(), ok, out, found);
            }
            spillReadNanos.add(System.nanoTime() - started);
        } finally {
            giveBack(st);
        }
        return ok;
    }

    /** Spill log appends that failed (their rows were dropped). */
    public long spillFailures() {
        return spillFailures.get();
    }

    /** Time spent appending evicted rows to the spill log. */
    public long spillAppendNanos() {
        return spillAppendNanos.sum();
    }

    /** Time device reads spent reading the spill log into device memory and scattering it. */
    public long spillReadNanos() {
        return spillReadNanos.sum();
    }

    /** Starts an install that may evict dirty entries; see {@link WriteBackTransit}. */
    public void beginMove() {
        transit.beginMove();
    }

    /** Ends what {@link #beginMove()} started. */
    public void endMove() {
        transit.endMove();
    }

    /** The moves count; see {@link WriteBackTransit}. */
    public long moves() {
        return transit.moves();
    }

    /** Waits until no install that may evict dirty entries is running. */
    public void awaitSettled() {
        transit.awaitSettled();
    }

    /** The demotion stamp of {@code key}; see {@link WriteBackTransit}. */
    public long demotionStamp(long key) {
        return transit.demotionStamp(key);
    }

    /** Records that dirty {@code key} has been written below after leaving HBM. */
    public void markDemoted(long key) {
        transit.markDemoted(key);
    }

    /** Overwrites the copies of those of rows {@code [0, count)} that are present. Caller holds the mutation lock. */
    public void update(long[] keys, float[] values, int count) {
        if (count == 0) {
            return;
        }
        int dim = table.dim();
        table.assign(Arrays.copyOf(keys, count), Arrays.copyOf(values, count * dim), null, null);
    }

    /**
     * Write-back: overwrites the rows of {@code [0, count)} whose keys are held here, marks them
     * dirty and sets {@code held[r]}; the others are the caller's to write below. Caller holds the
     * mutation lock.
     */
    public void writeHeld(long[] keys, float[] values, int count, boolean[] held) {
        if (count == 0) {
            return;
        }
        int dim = table.dim();
        transit.noteDirtyWrites();
        table.assignDirty(Arrays.copyOf(keys, count), Arrays.copyOf(values, count * dim), held);
    }

    /** Where {@link #writeBackDirty} writes dirty entries: rows {@code [0, keys.length)}. */
    public interface DirtySink {
        void write(long[] keys, float[] rows);
    }

    /**
     * Writes every dirty entry with {@code sink}, a range of slots at a time (a kernel finds the
     * marked entries), and marks a range clean once {@code sink} has returned; the entries stay
     * here. A range whose sink throws stays dirty. Caller holds the mutation lock.
     */
    public void writeBackDirty(DirtySink sink) {
        if (!transit.mayHaveDirty()) {
            return;
        }
        int dim = table.dim();
        long capacity = table.capacity();
        // Slots per pass: at most 16M floats of rows on the host.
        long chunk = Math.min(capacity, Math.max(1024, (1L << 24) / dim));
        Staging st = acquire(chunk);
        try {
            for (long offset = 0; offset < capacity; offset += chunk) {
                long count = Math.min(chunk, capacity - offset);
                int n = (int) table.exportDirty(offset, count, st.missedKeys.pointer(), st.rowsIn.pointer());
                if (n == 0) {
                    continue;
                }
                table.makeDeviceCurrent();
                Cuda.check(cuMemcpyDtoH(st.hostKeys.pointer(), st.missedKeys.pointer(), n * 8L), "cuMemcpyDtoH (dirty keys)");
                Cuda.check(cuMemcpyDtoH(st.hostRows.pointer(), st.rowsIn.pointer(), n * dim * 4L), "cuMemcpyDtoH (dirty rows)");
                long[] keys = new long[n];
                float[] rows = new float[n * dim];
                st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().get(0, keys);
                st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer().get(0, rows);
                sink.write(keys, rows);
                table.markClean(offset, count);
                writeBacks.add(n);
            }
            transit.allClean();
        } finally {
            giveBack(st);
        }
    }

    /** Counts a dirty entry written below after it left HBM. */
    public void countWriteBack() {
        writeBacks.increment();
    }

    /** Drops the copies of {@code keys}, dirty or not. Caller holds the mutation lock. */
    public void erase(long[] keys) {
        table.erase(keys);
    }

    /**
     * Staging of the device-pointer paths: one set per call in flight, taken from a pool and
     * given back, so concurrent calls overlap their copies and probes (the table serialises only
     * its own kernels). Each set grows (never shrinks) when a batch is larger than it.
     */
    private final ConcurrentLinkedQueue<Staging> idleStaging = new ConcurrentLinkedQueue<>();
    private final List<Staging> allStaging = new ArrayList<>();
    private MappedDramTier mappedDram;
    /** The tier {@link #mappedDram} maps. */
    private DramTier dramTier;
    private String dramMapFailure;
    private final LongAdder dramProbeNanos = new LongAdder();
    private final LongAdder spillReadNanos = new LongAdder();
    private final AtomicLong spillFailures = new AtomicLong();

    /**
     * What a device lookup left for the tiers below: the missed keys and their batch positions;
     * for those the GPU did not read from DRAM, the DRAM bucket version, read before any row
     * below (for those it did, {@code dramSeqs}: the bucket's sequence count the row was read at);
     * with write-back, their demotion stamps read at the same point (else null); and, where the
     * DRAM tier is mapped, which of them the GPU read from DRAM in place ({@code fromDram}, rows
     * already in the output, and in device staging at the miss's position: see
     * {@link #dramRowsToHost} and {@link #installFromDevice}) and the tier's
     * {@link DramTier#changes()} read just before.
     *
     * <p>The per-miss arrays are built from the staging set's pinned copies when first asked
     * for: a read whose misses the GPU all read from DRAM, promoted straight from staging, never
     * builds them. Used by the reading thread only. Holds the staging set until {@link #release}.
     */
    public static final class DeviceMisses {
        private final int count;
        private final int dramHits;
        private final long dramChanges;
        private final long[] stamps;
        private final Staging staging;
        private long[] keys;
        private int[] index;
        private long[] versions;
        private boolean[] fromDram;
        private long[] dramSeqs;

        private DeviceMisses(int count, int dramHits, long dramChanges, long[] stamps, Staging staging) {
            this.count = count;
            this.dramHits = dramHits;
            this.dramChanges = dramChanges;
            this.stamps = stamps;
            this.staging = staging;
        }

        /** Number of misses. */
        public int count() {
            return count;
        }

        /** Whether there were misses and the GPU read every one of them from DRAM. */
        public boolean allFromDram() {
            return count > 0 && dramHits == count;
        }

        public long[] keys() {
            if (keys == null) {
                keys = new long[count];
                staging.hostMissKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().get(0, keys);
            }
            return keys;
        }

        public int[] index() {
            if (index == null) {
                index = new int[count];
                staging.hostIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer().get(0, index);
            }
            return index;
        }

        public long[] versions() {
            if (versions == null) {
                versions = new long[count];
            }
            return versions;
        }

        public long[] stamps() {
            return stamps;
        }

        public boolean[] fromDram() {
            if (fromDram == null) {
                fromDram = new boolean[count];
                if (dramHits == count) {
                    Arrays.fill(fromDram, true);
                } else if (dramHits > 0) {
                    ByteBuffer h = staging.hostHits.buffer();
                    for (int j = 0; j < count; j++) {
                        fromDram[j] = h.get(j) != 0;
                    }
                }
            }
            return fromDram;
        }

        /** The sequence counts the rows read from DRAM were read at; null if none was. */
        public long[] dramSeqs() {
            if (dramSeqs == null && dramHits > 0) {
                dramSeqs = new long[count];
                staging.hostSeqs.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().get(0, dramSeqs);
            }
            return dramSeqs;
        }

        public long dramChanges() {
            return dramChanges;
        }

        public int dramHits() {
            return dramHits;
        }

        Staging staging() {
            return staging;
        }
    }

    /**
     * Whether the GPU read rows of {@code m} from DRAM and no bucket of the tier changed since
     * just before it did, so every row it read is still what DRAM holds.
     */
    public boolean dramUnchangedSince(DeviceMisses m) {
        return m.dramHits() > 0 && dramTier.changes() == m.dramChanges();
    }


    /**
     * For each miss of {@code m}: whether it was read from DRAM on the GPU and its DRAM bucket has
     * not changed since (asked on the GPU). Caller holds the mutation lock, so DRAM does not
     * change meanwhile, and calls it before {@link #installFromDevice}.
     */
    public boolean[] unchangedInDram(DeviceMisses m) {
        int count = m.count();
        boolean[] same = new boolean[count];
        if (m.dramHits() == 0) {
            return same;
        }
        if (dramUnchangedSince(m)) {
            return m.fromDram().clone();
        }
        Staging st = m.staging();
        table.makeDeviceCurrent();
        mappedDram.unchanged(st.missedKeys.pointer(), st.probeSeqs.pointer(), count, st.flags.pointer(), st.stream);
        Cuda.check(cuMemcpyDtoH(st.hostFlags.pointer(), st.flags.pointer(), count), "cuMemcpyDtoH (DRAM buckets unchanged)");
        ByteBuffer f = st.hostFlags.buffer();
        for (int j = 0; j < count; j++) {
            same[j] = m.fromDram()[j] && f.get(j) != 0;
        }
        return same;
    }

    /** Gives the staging of a device lookup back; call once per {@link #findDevice}, when done with it. */
    public void release(DeviceMisses m) {
        giveBack(m.staging());
    }

    /** Copies the rows the GPU read from DRAM for the misses with {@code which[j]} into {@code rows} at {@code j}. */
    public void dramRowsToHost(DeviceMisses m, float[] rows, boolean[] which) {
        Staging st = m.staging();
        int dim = table.dim();
        table.makeDeviceCurrent();
        Cuda.check(cuMemcpyDtoH(st.hostRows.pointer(), st.rowsIn.pointer(), (long) m.count() * dim * 4),
                "cuMemcpyDtoH (rows read from DRAM)");
        FloatBuffer b = st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
        for (int j = 0; j < which.length; j++) {
            if (which[j]) {
                b.get(j * dim, rows, j * dim, dim);
            }
        }
    }

    /**
     * Installs, straight from device staging, the rows the GPU read from DRAM for misses
     * {@code at[0, count)} of {@code m} (whose keys are {@code keys[0, count)}; both may be null
     * when {@code count} is every miss), and returns what that evicts, as {@link #install} does.
     * Caller holds the mutation lock, brackets the call with {@link #beginMove()}/{@link #endMove()}
     * and has not released {@code m}.
     *
     * @param demoteClean whether clean evicted keys that DRAM lacks move down to it (no spill log)
     * @param inDram      whether DRAM holds a key; asked on the GPU instead where the tier is mapped
     */
    public Demoted installFromDevice(DeviceMisses m, int[] at, long[] keys, int count, SpillLog spill, LongPredicate spillable,
            boolean demoteClean, LongPredicate inDram) {
        long started = System.nanoTime();
        Staging st = m.staging();
        st.ensureInstall();
        table.makeDeviceCurrent();
        if (count == m.count()) {
            // Every miss goes in (then at[j] == j): its key and row are in place in staging already.
            try {
                return installStaged(st, st.missedKeys.pointer(), count, st.rowsIn.pointer(), EntryState.CLEAN, spill,
                        spillable, demoteClean, inDram);
            } finally {
                installNanos.add(System.nanoTime() - started);
            }
        }
        st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().put(0, keys, 0, count);
        st.hostRowsIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer().put(0, at, 0, count);
        try {
            Cuda.check(cuMemcpyHtoD(st.missedKeys.pointer(), st.hostKeys.pointer(), count * 8L), "cuMemcpyHtoD (install keys)");
            Cuda.check(cuMemcpyHtoD(st.rowsIndex.pointer(), st.hostRowsIndex.pointer(), count * 4L),
                    "cuMemcpyHtoD (install positions)");
            table.gatherRows(st.rowsIn.pointer(), st.rowsIndex.pointer(), count, st.installRows.pointer());
            return installStaged(st, st.missedKeys.pointer(), count, st.installRows.pointer(), EntryState.CLEAN, spill,
                    spillable, demoteClean, inDram);
        } finally {
            installNanos.add(System.nanoTime() - started);
        }
    }

    /**
     * Looks up {@code n} device keys in HBM, writing found rows to {@code out} and 1/0 to
     * {@code found}; then, where the DRAM tier is mapped ({@link #mapDram}), looks the misses up
     * in DRAM on the GPU too. Returns the misses (copied to the host through pinned buffers) for
     * the tiers below. Caller then calls {@link #scatterBelow} with what it found there.
     */
    public DeviceMisses findDevice(CUdeviceptr keys, long n, CUdeviceptr out, CUdeviceptr found, DramTier dram) {
        Staging st = acquire(n);
        try {
            long started = System.nanoTime();
            long missed = table.find(keys, n, out, found, st.missedKeys.pointer(), st.missedIndex.pointer());
            lookupNanos.add(System.nanoTime() - started);
            hits.add(n - missed);
            misses.add(missed);
            int count = (int) missed;
            long[] stamps = writeBack ? new long[count] : null;
            long dramChanges = -1;
            int dramHits = 0;
            if (count > 0) {
                table.makeDeviceCurrent();
                // Copies and the probe are queued on the staging stream, with one wait for all of them.
                copyToHost(st.hostMissKeys, st.missedKeys, missed * 8, "missed keys", st.stream);
                copyToHost(st.hostIndex, st.missedIndex, missed * 4, "missed positions", st.stream);
                if (writeBack) {
                    // Stamps are read before any row below, the GPU's reads of DRAM included.
                    await(st, "missed keys");
                    LongBuffer k = st.hostMissKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer();
                    for (int m = 0; m < count; m++) {
                        stamps[m] = demotionStamp(k.get(m));
                    }
                }
                if (mappedDram != null) {
                    long probeStarted = System.nanoTime();
                    dramChanges = dramTier.changes();
                    Cuda.check(cuMemsetD8Async(st.hitCount.pointer(), (byte) 0, 8, st.stream),
                            "cuMemsetD8Async (DRAM probe hit count)");
                    mappedDram.probe(st.missedKeys.pointer(), st.missedIndex.pointer(), missed, st.rowsIn.pointer(), out,
                            found, st.flags.pointer(), st.probeSeqs.pointer(), st.hitCount.pointer(), st.stream);
                    copyToHost(st.hostHits, st.flags, missed, "DRAM probe hits", st.stream);
                    copyToHost(st.hostSeqs, st.probeSeqs, missed * 8, "DRAM probe sequence counts", st.stream);
                    copyToHost(st.hostHitCount, st.hitCount, 8, "DRAM probe hit count", st.stream);
                    await(st, "mlkv_dram_probe (n=" + missed + ")");
                    dramHits = (int) st.hostHitCount.buffer().order(ByteOrder.nativeOrder()).getLong(0);
                    dramProbeNanos.add(System.nanoTime() - probeStarted);
                } else {
                    await(st, "missed keys");
                }
            }
            DeviceMisses result = new DeviceMisses(count, dramHits, dramChanges, stamps, st);
            if (dramHits < count) {
                // Keys the GPU did not read from DRAM are read on the CPU later: their versions first.
                long[] k = result.keys();
                boolean[] fromDram = result.fromDram();
                long[] versions = result.versions();
                for (int m = 0; m < count; m++) {
                    if (!fromDram[m]) {
                        versions[m] = dram.version(k[m]);
                    }
                }
            }
            return result;
        } catch (RuntimeException | Error e) {
            giveBack(st);
            throw e;
        }
    }

    /** Queues a copy of {@code bytes} from {@code from} to pinned {@code to} on {@code stream}. */
    private static void copyToHost(PinnedMemory to, DeviceMemory from, long bytes, String what, CUstream stream) {
        Cuda.check(cuMemcpyDtoHAsync(to.pointer(), from.pointer(), bytes, stream), "cuMemcpyDtoHAsync (" + what + ")");
    }

    /** Waits for what was queued on {@code st}'s stream, the last of it being {@code what}. */
    private static void await(Staging st, String what) {
        Cuda.check(cuStreamSynchronize(st.stream), "cuStreamSynchronize after " + what);
    }

    /** Copies {@code n} device keys to the host. */
    public long[] keysToHost(CUdeviceptr keys, long n) {
        Staging st = acquire(n);
        try {
            Cuda.check(cuMemcpyDtoH(st.hostKeys.pointer(), keys, n * 8), "cuMemcpyDtoH (keys)");
            long[] k = new long[(int) n];
            st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().get(0, k);
            return k;
        } finally {
            giveBack(st);
        }
    }

    /** Copies rows {@code rows} (positions into a device batch of {@code n} rows) of {@code values} to the host, packed. */
    public float[] rowsToHost(CUdeviceptr values, long n, int[] rows) {
        int dim = table.dim();
        float[] out = new float[rows.length * dim];
        Staging st = acquire(n);
        try {
            Cuda.check(cuMemcpyDtoH(st.hostRows.pointer(), values, n * dim * 4L), "cuMemcpyDtoH (rows)");
            FloatBuffer b = st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
            for (int r = 0; r < rows.length; r++) {
                b.get(rows[r] * dim, out, r * dim, dim);
            }
        } finally {
            giveBack(st);
        }
        return out;
    }

    /** The table (for the device write path of this package). */
    GpuHashTable table() {
        return table;
    }

    /** Records that a write is about to mark entries dirty. Caller holds the mutation lock. */
    void noteDirtyWrites() {
        transit.noteDirtyWrites();
    }

    /**
     * Pins and maps the DRAM tier so that device lookups read HBM misses from it on the GPU. If
     * that fails (for example where the host cannot pin that much memory), logs why and keeps
     * reading DRAM on the CPU.
     */
    public void mapDram(DramTier dram) {
        long started = System.nanoTime();
        try {
            table.makeDeviceCurrent();
            mappedDram = MappedDramTier.map(dram);
            dramTier = dram;
            LOG.info("DRAM tier mapped for GPU reads: {} bytes pinned in {} ms", mappedDram.pinnedBytes(),
                    (System.nanoTime() - started) / 1_000_000);
        } catch (RuntimeException e) {
            dramMapFailure = e.toString();
            LOG.warn("DRAM tier not mapped for GPU reads; HBM misses are read on the CPU ({})", dramMapFailure);
        }
    }

    /** Why the DRAM tier could not be mapped, or null. */
    public String dramMapFailure() {
        return dramMapFailure;
    }

    /** Time spent probing the mapped DRAM tier from the GPU, copies back included. */
    public long dramProbeNanos() {
        return dramProbeNanos.sum();
    }

    /**
     * Copies rows found below (row {@code m} of {@code rows} for each {@code m} with
     * {@code below[m]}) to the GPU through {@code m}'s pinned staging and scatters them into {@code out} at
     * their batch positions, setting their {@code found} bytes.
     */
    public void scatterBelow(DeviceMisses m, float[] rows, boolean[] below, int count, CUdeviceptr out, CUdeviceptr found) {
        if (count > 0) {
            scatterHostRows(m.staging(), rows, below, m.index(), count, out, found);
        }
    }

    /** Copies the {@code count} rows {@code j} of {@code rows} with {@code which[j]} through {@code st} and scatters them to {@code index[j]}. */
    private void scatterHostRows(Staging st, float[] rows, boolean[] which, int[] index, int count, CUdeviceptr out,
            CUdeviceptr found) {
        int dim = table.dim();
        table.makeDeviceCurrent();
        st.awaitInstall(); // an install of this read's misses may still read rowsIn and rowsIndex
        FloatBuffer r = st.hostRows.buffer().order(ByteOrder.nativeOrder()).asFloatBuffer();
        IntBuffer ix = st.hostRowsIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer();
        int c = 0;
        for (int j = 0; j < which.length; j++) {
            if (which[j]) {
                r.put(c * dim, rows, j * dim, dim);
                ix.put(c, index[j]);
                c++;
            }
        }
        Cuda.check(cuMemcpyHtoD(st.rowsIn.pointer(), st.hostRows.pointer(), (long) c * dim * 4), "cuMemcpyHtoD (rows from below)");
        Cuda.check(cuMemcpyHtoD(st.rowsIndex.pointer(), st.hostRowsIndex.pointer(), c * 4L), "cuMemcpyHtoD (row positions)");
        table.scatterRows(st.rowsIn.pointer(), st.rowsIndex.pointer(), c, out, found);
    }

    /** A staging set with room for {@code n} keys, from the pool or new; the CUDA context is made current. */
    Staging acquire(long n) {
        table.makeDeviceCurrent();
        Staging st = idleStaging.poll();
        if (st == null) {
            st = new Staging(table);
            synchronized (allStaging) {
                allStaging.add(st);
            }
        }
        try {
            st.awaitInstall();
            st.ensure(n);
        } catch (RuntimeException e) {
            giveBack(st);
            throw e;
        }
        return st;
    }

    void giveBack(Staging st) {
        idleStaging.offer(st);
    }

    /** Makes the tier's CUDA context current on the calling thread. */
    public void makeCurrent() {
        table.makeDeviceCurrent();
    }

    /** Subdirectory of a checkpoint (and of a store restored from one) holding the HBM tier's entries. */
    public static final String CHECKPOINT_DIR = "hbm";

    /**
     * Writes the tier's entries, straight from HBM, to {@code dir/hbm} ({@link TableSnapshot}).
     * Caller holds the store's mutation lock, so the table does not change meanwhile.
     *
     * @return the path that moved the data ({@code cufile} or {@code posix})
     */
    public String checkpoint(Path dir, FileIo io) throws IOException {
        TableSnapshot.write(table, dir.resolve(CHECKPOINT_DIR), io);
        return io.lastPath();
    }

    /**
     * Loads entries written by {@link #checkpoint} from {@code dir/hbm} straight into HBM, so a
     * restored store starts with its hot set on the GPU.
     *
     * @return entries loaded
     */
    public long warm(Path dir, FileIo io) throws IOException {
        long n = TableSnapshot.load(table, dir.resolve(CHECKPOINT_DIR), io);
        installs.add(n);
        return n;
    }

    /**
     * The tier's counters since it opened.
     *
     * @param installs   entries installed from below
     * @param evictions  entries the table evicted
     * @param writeBacks dirty entries written below
     */
    public record Counters(long hits, long misses, long installs, long evictions, long writeBacks, long entries,
            long capacity, long lookupNanos, long installNanos) {
    }

    /** A snapshot of {@link Counters}. */
    public Counters counters() {
        return new Counters(hits.sum(), misses.sum(), installs.sum(), table.evictions(), writeBacks.sum(), table.size(),
                table.capacity(), lookupNanos.sum(), installNanos.sum());
    }

    @Override
    public void close() {
        // The store closes this tier with no call in flight, so every staging set is idle.
        table.makeDeviceCurrent();
        List<AutoCloseable> parts;
        synchronized (allStaging) {
            parts = new ArrayList<>(allStaging);
            allStaging.clear();
            idleStaging.clear();
        }
        parts.add(mappedDram);
        parts.add(table);
        CloseHelper.closeAll(parts);
    }
}
