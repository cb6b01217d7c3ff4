package io.mlkv.core.hbm;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cufile.DeviceRegion;
import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.gpu.cufile.HostRegion;
import io.mlkv.gpu.cufile.Region;
import io.mlkv.gpu.dram.MappedDramTier;
import io.mlkv.gpu.spill.SpillLog;
import io.mlkv.gpu.table.EntryState;
import io.mlkv.gpu.table.Evictions;
import io.mlkv.gpu.table.GpuHashTable;
import io.mlkv.gpu.table.ScoreMode;
import io.mlkv.gpu.table.TableSnapshot;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.dram.DramTier;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongPredicate;
import jcuda.driver.CUdeviceptr;
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
    private final LongAdder dramWriteNanos = new LongAdder();
    /**
     * Whether evicted dirty rows are written into the mapped DRAM tier from the GPU
     * ({@link #writeDirtyInPlace}); on unless the system property {@code mlkv.dramWritesOnGpu} is
     * {@code false} (docs/BENCHMARKS.md has the measurements: a clear gain on uniform keys, within
     * the spread of runs on zipfian ones).
     */
    private static final boolean DRAM_WRITES_ON_GPU = !"false".equals(System.getProperty("mlkv.dramWritesOnGpu"));
    /**
     * Whether a clean install of rows the GPU read from the mapped DRAM tier, which returns without
     * waiting, is held back until the table's next call ({@link GpuHashTable#installAbsentDeferred}):
     * the next device read's lookup then runs first and the install overlaps that read's DRAM probe,
     * instead of the lookup waiting for it. The install is dropped if DRAM changed meanwhile.
     * {@code -Dmlkv.deferredInstalls=false} queues it at once.
     */
    private static final boolean DEFERRED_INSTALLS = !"false".equals(System.getProperty("mlkv.deferredInstalls"));
    private final DeviceReads reads = new DeviceReads(this);

    private HbmTier(GpuHashTable table, boolean writeBack) {
        this.table = table;
        this.writeBack = writeBack;
    }

    /**
     * Opens the tier on CUDA device {@code deviceOrdinal}; call {@link #unavailableReason()} first.
     *
     * @param writeBack whether writes of keys held here stay here until eviction or flush
     */
    public static HbmTier open(int dim, long capacity, boolean writeBack, int deviceOrdinal) {
        GpuHashTable table = GpuHashTable.create(dim, capacity, ScoreMode.LRU, 1 << 16, deviceOrdinal);
        // Reads count as use: a full bucket evicts its least recently read or written entry.
        table.scoreReads(true);
        LOG.info("HBM tier on {}: {} slots of dim {}, {}", table.deviceName(), table.capacity(), dim,
                writeBack ? "write-back" : "clean copies only");
        return new HbmTier(table, writeBack);
    }

    /**
     * Admission by frequency ({@code HbmAdmission.FREQUENCY}): the table counts every lookup in a
     * frequency sketch, and a promotion that would evict a full bucket's least recently used entry
     * goes in only if its key was looked up more often than that entry's.
     */
    public void admitByFrequency() {
        table.admitByFrequency();
    }

    /** Installs held back until the table's next call and queued then, and those dropped then (for tests). */
    public long[] deferredInstalls() {
        return new long[] {table.deferredQueued(), table.deferredDropped()};
    }

    /** Promotions refused by frequency admission since the tier opened. */
    public long admissionRejections() {
        return table.rejections();
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
     * {@code spillable} accepts. With {@code screened} (an admission decision, not a prefetch)
     * and {@link #admitByFrequency()} on, the table may refuse a row whose key it has seen less
     * often than the entry it would evict; the row stays where it was read from (every row here is
     * a clean copy of what a tier below holds). Caller holds the mutation lock and brackets the
     * call, and the handling of what it returns, with {@link #beginMove()} and {@link #endMove()}.
     */
    public Demoted install(long[] keys, float[] values, int count, SpillLog spill, LongPredicate spillable,
            boolean screened) {
        if (count == 0) {
            return Demoted.NONE;
        }
        long started = System.nanoTime();
        long dramBefore = dramWriteNanos.sum();
        try {
            if (spill != null) {
                return installSpilling(keys, values, count, spill, spillable, screened);
            }
            int dim = table.dim();
            long[] evictedKeys = new long[count];
            float[] evictedValues = new float[count * dim];
            boolean[] evictedDirty = new boolean[count];
            int evicted = table.installAbsent(Arrays.copyOf(keys, count), Arrays.copyOf(values, count * dim),
                    evictedKeys, evictedValues, evictedDirty, screened);
            installs.add(count);
            return new Demoted(evictedKeys, FloatBuffer.wrap(evictedValues), evictedDirty, evicted);
        } finally {
            addInstallTime(started, dramBefore);
        }
    }

    /**
     * {@link #install} through device staging, so that what the table evicts is still in device
     * memory when it is written to the spill log (by cuFile where the log uses it). The evicted
     * keys and rows are copied to the host too: the caller writes dirty ones down to DRAM.
     */
    private Demoted installSpilling(long[] keys, float[] values, int count, SpillLog spill, LongPredicate spillable,
            boolean screened) {
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
                    false, null, screened).detached(dim);
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
     * {@code inDram} otherwise. {@code screened} clean rows may be refused as {@link #install}
     * says. Caller holds the mutation lock, inside {@link #beginMove()}.
     */
    Demoted installStaged(Staging st, CUdeviceptr keys, int count, CUdeviceptr rows, EntryState state, SpillLog spill,
            LongPredicate spillable, boolean demoteClean, LongPredicate inDram, boolean screened) {
        return installStaged(st, keys, count, rows, state, spill, spillable, demoteClean, inDram, screened, false);
    }

    /**
     * {@link #installStaged(Staging, CUdeviceptr, int, CUdeviceptr, EntryState, SpillLog, LongPredicate, boolean,
     * LongPredicate, boolean)}; with {@code fromDram} (the rows are what the mapped DRAM tier holds
     * now, read by the GPU and checked under the mutation lock the caller holds), an install that
     * would return without waiting is held back until the table's next call (see
     * {@link #DEFERRED_INSTALLS}), to be dropped then if DRAM changed meanwhile.
     */
    private Demoted installStaged(Staging st, CUdeviceptr keys, int count, CUdeviceptr rows, EntryState state,
            SpillLog spill, LongPredicate spillable, boolean demoteClean, LongPredicate inDram, boolean screened,
            boolean fromDram) {
        int dim = table.dim();
        long rowBytes = dim * 4L;
        installs.add(count);
        if (state == EntryState.CLEAN && spill == null && !demoteClean && !transit.mayHaveDirty()) {
            // Nothing evicted needs a look: no wait for the insert. The next use of this staging
            // waits for it (acquire), and the table's later calls run behind it on its stream.
            st.installQueued = true;
            // Only large installs (GpuHashTable.isLargeInstall) are held back: small ones take little
            // GPU time, and a key they bring that the next read asks for again would miss.
            if (fromDram && DEFERRED_INSTALLS && dramTier != null && table.isLargeInstall(count)) {
                DramTier dram = dramTier;
                long changes = dram.changes();
                st.deferred = table.installAbsentDeferred(keys, rows, count, st.installed, screened,
                        () -> dram.changes() == changes);
            } else {
                table.installAbsentAsync(keys, rows, count, st.installed, screened);
            }
            return new Demoted(null, null, null, 0);
        }
        if (state == EntryState.DIRTY) {
            transit.noteDirtyWrites();
        }
        int evicted = (int) table.installAbsent(keys, rows, count, state,
                Evictions.withMarks(st.evictedKeys.pointer(), st.evictedRows.pointer(), st.evictedDirty.pointer()), screened);
        if (evicted == 0) {
            return Demoted.NONE;
        }
        boolean gpuWrites = DRAM_WRITES_ON_GPU && mappedDram != null && spill == null;
        int wanted = 0;
        if (gpuWrites) {
            // Dirty evicted rows go into DRAM on the GPU, picked there by their marks; where that
            // settles everything, neither the evicted keys nor their marks come to the host. Their
            // keys are distinct, as those writes need: an install takes distinct keys absent from
            // HBM, so a key leaves at most once dirty (an entry held before, or one put there dirty).
            table.makeDeviceCurrent();
            wanted = (int) mappedDram.wantMarked(st.evictedDirty.pointer(), evicted, st.flags.pointer(), st.stream);
            if (wanted > 0) {
                writeInDram(st, st.evictedKeys.pointer(), st.evictedRows.pointer(), evicted, wanted, false);
            }
            if (!demoteClean && (wanted == 0 || settledOnGpu(st, evicted, wanted))) {
                return new Demoted(null, null, null, 0);
            }
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
        if (wanted > 0) {
            settleDramWrites(st, evictedKeys, evictedDirty, evicted);
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
     * After {@link #writeInDram} of the {@code wanted} dirty evicted entries of {@code n}: whether
     * DRAM took every one of them and they are too many for per-key demotion stamps, so the host
     * needs nothing of them; then records them (every stamp set, write-backs counted).
     */
    private boolean settledOnGpu(Staging st, int n, int wanted) {
        if (wanted < WriteBackTransit.DEMOTION_STAMPS) {
            return false;
        }
        byte[] states = new byte[n];
        st.hostFlags.buffer().get(0, states);
        for (byte s : states) {
            if (s == MappedDramTier.WRITE_NOT_HELD) {
                return false;
            }
        }
        transit.markAllDemoted();
        writeBacks.add(wanted);
        return true;
    }

    /**
     * After {@link #writeInDram} of the dirty ones among the {@code n} evicted entries (final
     * states in {@code st.hostFlags}): those DRAM took are clean now ({@code dirty[e]} cleared),
     * their stamps and write-backs recorded; the caller writes the rest down on the host.
     */
    private void settleDramWrites(Staging st, long[] keys, boolean[] dirty, int n) {
        ByteBuffer state = st.hostFlags.buffer();
        boolean[] done = new boolean[n];
        int written = 0;
        for (int e = 0; e < n; e++) {
            if (state.get(e) == MappedDramTier.WRITE_DONE) {
                done[e] = true;
                dirty[e] = false;
                written++;
            }
        }
        transit.markDemoted(keys, done, written);
        writeBacks.add(written);
    }

    /**
     * Whether device writes may write rows of keys DRAM holds straight into the mapped DRAM tier
     * ({@link #writeInDram}): the tier is mapped, GPU DRAM writes are on, and there is no spill
     * log (whose rows of those keys would be older).
     */
    boolean writesDramOnGpu(SpillLog spill) {
        return DRAM_WRITES_ON_GPU && mappedDram != null && spill == null;
    }

    /**
     * Writes into the mapped DRAM tier, on the GPU, row {@code q} of {@code rows} as the value of
     * {@code keys[q]} (dirty there; with {@code add}, added to its value) for each of the
     * {@code n} entries whose byte of {@code st.flags} (device) is
     * {@link MappedDramTier#WRITE_WANTED} ({@code wanted} of them; distinct keys unless
     * {@code add}), and copies the entries' final states to {@code st.hostFlags}:
     * {@link MappedDramTier#WRITE_DONE}, or {@link MappedDramTier#WRITE_NOT_HELD} where DRAM lacks
     * the key (the caller writes those another way). Caller holds the mutation lock and checked
     * {@link #writesDramOnGpu}.
     */
    void writeInDram(Staging st, CUdeviceptr keys, CUdeviceptr rows, int n, int wanted, boolean add) {
        long started = System.nanoTime();
        table.makeDeviceCurrent();
        dramTier.beginDeviceChanges(wanted);
        mappedDram.writeRows(keys, rows, n, st.flags.pointer(), add, st.stream);
        dramTier.endDeviceChanges(wanted);
        Cuda.check(cuMemcpyDtoH(st.hostFlags.pointer(), st.flags.pointer(), n), "cuMemcpyDtoH (in-place write states)");
        dramWriteNanos.add(System.nanoTime() - started);
    }

    /** Time spent writing rows into the mapped DRAM tier from the GPU ({@link #writeInDram}: demotions and device writes). */
    public long dramWriteNanos() {
        return dramWriteNanos.sum();
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
        return reads.spillReadNanos();
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

    /**
     * With write-back: whether an install that may have evicted dirty entries ran since
     * {@code movesBefore} (a {@link #moves()} count). Asked right after an HBM lookup, with the
     * count read just before it, it says whether a dirty entry can have been in transit, in
     * neither HBM nor the tiers below, while the lookup ran: only such an entry can be missed in
     * HBM and read stale below. A move that starts after the lookup evicts only entries the
     * lookup would have found.
     */
    public boolean movedSince(long movesBefore) {
        return writeBack && ((movesBefore & 1) == 1 || transit.moves() != movesBefore);
    }

    /** Waits until no install that may evict dirty entries is running. */
    public void awaitSettled() {
        transit.awaitSettled();
    }

    /** Whether a dirty entry of {@code key} may have reached the tiers below since {@code movesBefore}; see {@link WriteBackTransit}. */
    public boolean demotedSince(long key, long movesBefore) {
        return transit.demotedSince(key, movesBefore);
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
    /** Whether {@link #mappedDram} is another tier's ({@link #mapDram(DramTier, HbmTier)}), closed by it. */
    private boolean sharedMapping;
    private final AtomicLong spillFailures = new AtomicLong();

    /**
     * Installs, straight from device staging, the rows the GPU read from DRAM for misses
     * {@code at[0, count)} of {@code m} (whose keys are {@code keys[0, count)}; both may be null
     * when {@code count} is every miss), and returns what that evicts, as {@link #install} does
     * (screened: these are read promotions).
     * Caller holds the mutation lock, brackets the call with {@link #beginMove()}/{@link #endMove()}
     * and has not released {@code m}.
     *
     * @param demoteClean whether clean evicted keys that DRAM lacks move down to it (no spill log)
     * @param inDram      whether DRAM holds a key; asked on the GPU instead where the tier is mapped
     */
    public Demoted installFromDevice(DeviceMisses m, int[] at, long[] keys, int count, SpillLog spill, LongPredicate spillable,
            boolean demoteClean, LongPredicate inDram) {
        long started = System.nanoTime();
        long dramBefore = dramWriteNanos.sum();
        Staging st = m.staging();
        st.ensureInstall();
        table.makeDeviceCurrent();
        if (count == m.count()) {
            // Every miss goes in (then at[j] == j): its key and row are in place in staging already.
            try {
                return installStaged(st, st.missedKeys.pointer(), count, st.rowsIn.pointer(), EntryState.CLEAN, spill,
                        spillable, demoteClean, inDram, true, true);
            } finally {
                addInstallTime(started, dramBefore);
            }
        }
        m.toHost(); // the missed keys' device buffer is about to hold the keys installed
        st.hostKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().put(0, keys, 0, count);
        st.hostRowsIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer().put(0, at, 0, count);
        try {
            Cuda.check(cuMemcpyHtoD(st.missedKeys.pointer(), st.hostKeys.pointer(), count * 8L), "cuMemcpyHtoD (install keys)");
            Cuda.check(cuMemcpyHtoD(st.rowsIndex.pointer(), st.hostRowsIndex.pointer(), count * 4L),
                    "cuMemcpyHtoD (install positions)");
            table.gatherRows(st.rowsIn.pointer(), st.rowsIndex.pointer(), count, st.installRows.pointer());
            return installStaged(st, st.missedKeys.pointer(), count, st.installRows.pointer(), EntryState.CLEAN, spill,
                    spillable, demoteClean, inDram, true, true);
        } finally {
            addInstallTime(started, dramBefore);
        }
    }

    /**
     * Adds the time since {@code started} to the install time, less the rows written into DRAM on
     * the GPU meanwhile (DRAM's moves, {@link #dramWriteNanos}; the mutation lock the caller holds
     * keeps other threads' DRAM writes out of the difference).
     */
    private void addInstallTime(long started, long dramBefore) {
        installNanos.add(System.nanoTime() - started - (dramWriteNanos.sum() - dramBefore));
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
        mapDram(dram, null);
    }

    /**
     * {@link #mapDram(DramTier)}, or, where {@code mappedBy} (another tier on the same device, or
     * null) has mapped it, the same mapping shared: one registration of the memory per process, one
     * copy of its keys per device. {@code mappedBy} closes the mapping, after this tier.
     */
    public void mapDram(DramTier dram, HbmTier mappedBy) {
        if (mappedBy != null) {
            if (mappedBy.mappedDram == null || mappedBy.deviceOrdinal() != deviceOrdinal()) {
                dramMapFailure = mappedBy.mappedDram == null ? "the DRAM tier could not be mapped: " + mappedBy.dramMapFailure
                        : "the DRAM tier is mapped for CUDA device " + mappedBy.deviceOrdinal() + " only";
                LOG.warn("DRAM tier not mapped for GPU reads of the HBM tier on device {}; its misses are read on the CPU ({})",
                        deviceOrdinal(), dramMapFailure);
                return;
            }
            mappedDram = mappedBy.mappedDram;
            dramTier = dram;
            sharedMapping = true;
            return;
        }
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
        return reads.dramProbeNanos();
    }

    /** The mapped DRAM tier, or null where it is not mapped. */
    MappedDramTier mappedDram() {
        return mappedDram;
    }

    /** The DRAM tier {@link #mappedDram()} maps, or null. */
    DramTier dramTier() {
        return dramTier;
    }

    /** The device read path over this tier. */
    DeviceReads reads() {
        return reads;
    }

    /** Counts one lookup of {@code found + missed} keys that took {@code nanos}. */
    void countLookup(long found, long missed, long nanos) {
        lookupNanos.add(nanos);
        hits.add(found);
        misses.add(missed);
    }

    /** A staging set with room for {@code n} keys, from the pool or new; the CUDA context is made current. */
    Staging acquire(long n) {
        table.makeDeviceCurrent();
        Staging st = idleStaging.poll();
        if (st != null && st.holdsDeferredInstall()) {
            // Its buffers feed an install the table holds back until its next call (normally this
            // caller's next lookup): take another set rather than force that install now, unless
            // a new one would not fit on the device (then awaitInstall below queues the install).
            Staging held = st;
            st = idleStaging.poll();
            if (st == null && !roomForAnotherStaging(n)) {
                st = held;
            } else {
                idleStaging.offer(held);
            }
        }
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

    /** Device memory kept free when a staging set is added only to leave a held-back install be. */
    private static final long STAGING_MARGIN_BYTES = 256L << 20;

    /**
     * Whether the device has room for one more staging set of {@code n} keys with its install
     * buffers ({@link Staging#ensure}, {@link Staging#ensureInstall}: three rows and 42 bytes a
     * key), and {@link #STAGING_MARGIN_BYTES} to spare.
     */
    private boolean roomForAnotherStaging(long n) {
        long perKey = 3L * table.dim() * 4 + 42;
        return table.device().memoryInfo()[0] > Math.max(n, 1024) * perKey + STAGING_MARGIN_BYTES;
    }

    void giveBack(Staging st) {
        idleStaging.offer(st);
    }

    /** Makes the tier's CUDA context current on the calling thread. */
    /** The CUDA device the tier lives on. */
    public int deviceOrdinal() {
        return table.deviceOrdinal();
    }

    public void makeCurrent() {
        table.makeDeviceCurrent();
    }

    /** Subdirectory of a checkpoint (and of a store restored from one) holding the HBM tier's entries. */
    public static final String CHECKPOINT_DIR = "hbm";

    /**
     * Writes the tier's entries, straight from HBM, to {@code target} ({@link TableSnapshot}; a
     * checkpoint's {@code hbm/}, or a shard's directory in it). Caller holds the store's mutation
     * lock, so the table does not change meanwhile.
     *
     * @return the path that moved the data ({@code cufile} or {@code posix})
     */
    public String checkpoint(Path target, FileIo io) throws IOException {
        TableSnapshot.write(table, target, io);
        return io.lastPath();
    }

    /**
     * Loads entries that {@link #checkpoint} wrote to {@code source} straight into HBM, so a
     * restored store starts with its hot set on the GPU.
     *
     * @return entries loaded
     */
    public long warm(Path source, FileIo io) throws IOException {
        long n = TableSnapshot.load(table, source, io);
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
        // Rows offered minus those frequency admission refused.
        return new Counters(hits.sum(), misses.sum(), installs.sum() - table.rejections(), table.evictions(), writeBacks.sum(), table.size(),
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
        if (!sharedMapping) {
            parts.add(mappedDram);
        }
        parts.add(table);
        CloseHelper.closeAll(parts);
    }
}
