package io.mlkv.gpu.dram;

import static jcuda.driver.JCudaDriver.cuMemHostGetDevicePointer;
import static jcuda.driver.JCudaDriver.cuMemHostRegister;
import static jcuda.driver.JCudaDriver.cuMemHostUnregister;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemsetD32Async;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.OwnedResources;
import io.mlkv.gpu.cufile.HostPointers;
import io.mlkv.storage.dram.DramTier;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;
import org.agrona.CloseHelper;

/**
 * A {@link DramTier} pinned and mapped into the GPU's address space, so that a kernel looks keys
 * up in it and copies their rows without the CPU ({@code mlkv_dram_probe}): the DRAM tier read the
 * way HBM misses need it, over PCIe, with the tier's sequence counts guarding against rows that
 * the CPU changes meanwhile (such keys are reported as not read, and the caller reads them on the
 * CPU). Lookups do not refresh the tier's recency scores.
 *
 * <p>Owns the registrations: {@link #close()} unregisters the memory, and must run before the
 * tier is closed. The CUDA context it was made in must be current on calling threads. Probes run
 * on the caller's stream, so calls from several threads with their own streams overlap.
 */
public final class MappedDramTier implements AutoCloseable {
    private static final int BLOCK = 256;
    private static final int TILE = DramTier.BUCKET_SLOTS;

    /**
     * Whether {@link #map(DramTier)} keeps a copy of the tier's keys in device memory for unchecked
     * probes, in-place writes and {@link #contains} ({@link DramKeysOnDevice}): on by default (on an
     * H200 it cut a uniform read's DRAM probes from 4.7 to 2.9 ms a million keys, run 122);
     * {@code -Dmlkv.dramKeysOnDevice=false} reads the keys from host memory instead.
     */
    private static final boolean KEYS_ON_DEVICE = !"false".equals(System.getProperty("mlkv.dramKeysOnDevice"));

    private final DramTier.NativeLayout layout;
    private final Kernels kernels;
    /** The copy of the keys unchecked probes read, or null where they read host memory. */
    private final DramKeysOnDevice keysOnDevice;
    private final List<Pointer> registered = new ArrayList<>();
    private final OwnedResources owned = new OwnedResources();
    /**
     * Most claim slots of {@link #writeRows}: one per bucket up to this many (buckets beyond share
     * them by their low bits, and writes then take one entry per claim slot per round).
     */
    private static final long MAX_CLAIMS = 1L << 26;
    /** Claim slots: a power of two, one per bucket where {@link #sharedClaims}. */
    private final long claimSlots;
    /** Whether every bucket has its own claim slot, so that replacing writes share claims (one round). */
    private final boolean sharedClaims;
    /** States of {@link #writeRows}' entries, as the {@code mlkv_dram_write_*} kernels have them. */
    public static final byte WRITE_SKIPPED = 0;
    public static final byte WRITE_WANTED = 1;
    public static final byte WRITE_DONE = 2;
    public static final byte WRITE_NOT_HELD = 3;
    private final CUdeviceptr keys;
    private final CUdeviceptr values;
    /** Each bucket's sequence count and version, side by side (DramTier.NativeLayout#countsAddress). */
    private final CUdeviceptr counts;
    private final CUdeviceptr flags;
    /** One claim per bucket group for {@link #writeRows}: zeroed before each launch. */
    private final DeviceMemory claims;
    private final DeviceMemory retries;
    /** Scratch of {@link #writeRows}, grown to the largest batch; guarded by the store's mutation lock. */
    private DeviceMemory slotScratch;
    private DeviceMemory seqScratch;
    private DeviceMemory versionScratch;
    private final AtomicBoolean closed = new AtomicBoolean();

    private MappedDramTier(DramTier tier, boolean keysOnDevice) {
        this.layout = tier.nativeLayout();
        this.kernels = Kernels.load();
        try {
            long slots = layout.slots();
            keys = map(layout.keysAddress(), slots * 8, "keys");
            this.keysOnDevice = keysOnDevice ? owned.add(new DramKeysOnDevice(tier, registered.get(0), slots * 8)) : null;
            values = map(layout.valuesAddress(), slots * layout.dim() * 4L, "values");
            counts = map(layout.countsAddress(), layout.countsBytes(), "sequence counts and versions");
            flags = map(layout.flagsAddress(), slots, "flags");
            long wanted = Long.highestOneBit(Math.max(1, layout.buckets() - 1)) << 1;
            claimSlots = Math.min(MAX_CLAIMS, Math.max(1 << 10, wanted));
            sharedClaims = claimSlots >= layout.buckets();
            claims = owned.add(new DeviceMemory(claimSlots * 4L, "DRAM write claims"));
            retries = owned.add(new DeviceMemory(8, "DRAM write retries"));
        } catch (RuntimeException e) {
            release(e);
            throw e;
        }
    }

    /**
     * Pins and maps the tier's arrays (which commits all of its memory). The CUDA context of the
     * GPU that will read them must be current.
     *
     * @throws io.mlkv.storage.MlkvException {@code DEVICE_ERROR} naming the call and code, for
     *                                       example where the host cannot pin that much memory
     */
    public static MappedDramTier map(DramTier tier) {
        return map(tier, KEYS_ON_DEVICE);
    }

    /**
     * {@link #map(DramTier)}, whatever {@code -Dmlkv.dramKeysOnDevice} says: with
     * {@code keysOnDevice}, {@link Probe#UNCHECKED} probes, {@link #writeRows} and {@link #contains}
     * read the buckets' keys from a copy in device memory where it is current
     * ({@link DramKeysOnDevice}: 8 bytes of device memory a slot); without, from host memory.
     */
    public static MappedDramTier map(DramTier tier, boolean keysOnDevice) {
        return new MappedDramTier(tier, keysOnDevice);
    }

    private CUdeviceptr map(long address, long bytes, String what) {
        long span = DramTier.NativeLayout.pageSpan(bytes);
        Pointer host = HostPointers.to(address, span);
        Cuda.check(cuMemHostRegister(host, span, JCudaDriver.CU_MEMHOSTREGISTER_PORTABLE
                | JCudaDriver.CU_MEMHOSTREGISTER_DEVICEMAP), "cuMemHostRegister (DRAM tier " + what + ", " + span + " bytes)");
        registered.add(host);
        CUdeviceptr device = new CUdeviceptr();
        Cuda.check(cuMemHostGetDevicePointer(device, host, 0), "cuMemHostGetDevicePointer (DRAM tier " + what + ")");
        return device;
    }

    /** Bytes of host memory pinned for the tier. */
    public long pinnedBytes() {
        long slots = layout.slots();
        return DramTier.NativeLayout.pageSpan(slots * 8) + DramTier.NativeLayout.pageSpan(slots * layout.dim() * 4L)
                + DramTier.NativeLayout.pageSpan(layout.countsBytes()) + DramTier.NativeLayout.pageSpan(slots);
    }

    /**
     * Looks up {@code n} keys ({@code query}, int64 on the device) in the tier. For each key found
     * with a row that did not change while it was read, copies the row to row {@code index[q]} of
     * {@code out}, sets byte {@code index[q]} of {@code found} and byte {@code q} of {@code hit} to
     * 1, and (if {@code seqOut} is not null) int64 {@code q} of {@code seqOut} to the bucket's
     * sequence count the row was read at (see {@link #unchanged}), and adds one to the int64 at
     * {@code hitCount} (if not null; the caller zeroes it first); other keys get
     * {@code hit[q] = 0} and leave {@code out} untouched, and {@code found} too unless {@code how}
     * resets it ({@link Probe}). {@code scratch} holds {@code n} rows. Queued on {@code stream} (calls on different streams overlap); returns
     * without waiting, so the caller can queue the copies of the results behind it and wait
     * once: the results are there when {@code stream} has been synchronized.
     */
    public void probe(CUdeviceptr query, CUdeviceptr index, long n, CUdeviceptr scratch, CUdeviceptr out,
            CUdeviceptr found, CUdeviceptr hit, CUdeviceptr seqOut, CUdeviceptr hitCount, Probe how, CUstream stream) {
        if (closed.get()) {
            throw new IllegalStateException("MappedDramTier is closed");
        }
        if (n <= 0) {
            return;
        }
        CUdeviceptr keyCopy = how == Probe.UNCHECKED && keysOnDevice != null ? keysOnDevice.current(n, stream) : null;
        kernels.launch("mlkv_dram_probe", n * TILE, BLOCK, stream, query, index, n, keys, values, counts,
                layout.buckets(), layout.dim(), scratch, out, found, hit, seqOut, hitCount, how == Probe.UNCHECKED ? 0 : 1,
                how == Probe.CHECKED_RESETTING_FOUND ? 1 : 0, keyCopy);
    }

    /** How {@link #probe} trusts the rows it reads. */
    public enum Probe {
        /** Each row checked against its bucket's sequence count, read before and after it. */
        CHECKED,
        /** The same, and each miss's {@code found} byte set to 0 (a probe again after an {@link #UNCHECKED} one). */
        CHECKED_RESETTING_FOUND,
        /**
         * The count read once, beside the keys, not checked again: only where no bucket change
         * was under way when the probe was queued ({@link DramTier#changesIfQuiet}) and the
         * caller uses the results only if {@link DramTier#changes} shows that none began until
         * the probe finished; otherwise it probes again with {@link #CHECKED_RESETTING_FOUND},
         * which rewrites every result. One PCIe request a key fewer. Where the tier was mapped
         * with its keys on the device and that copy is current ({@link DramKeysOnDevice}), the
         * keys are read from it and the count not at all: only the row crosses PCIe, and the
         * reported sequence counts are ones no bucket has (a later {@link #unchanged} check
         * finds every such bucket changed).
         */
        UNCHECKED
    }

    /**
     * Sets byte {@code q} of {@code present} to 1 where the tier holds {@code query[q]} (or its
     * bucket is being changed at that moment), 0 otherwise, for {@code q < n}, on the GPU over
     * PCIe; waits for the result. Exact while the tier does not change, as under the store's
     * mutation lock; only there may it be called on a tier mapped with its keys on the device,
     * whose current copy it then reads instead of host memory.
     */
    public void contains(CUdeviceptr query, long n, CUdeviceptr present, CUstream stream) {
        if (closed.get()) {
            throw new IllegalStateException("MappedDramTier is closed");
        }
        if (n <= 0) {
            return;
        }
        // Keys do not change while the caller holds off the tier's writers: a copy current now stays so.
        CUdeviceptr keyCopy = keysOnDevice != null ? keysOnDevice.currentWithoutCopying() : null;
        kernels.launch("mlkv_dram_contains", n * TILE, BLOCK, stream, query, n, keys, counts, layout.buckets(), present,
                keyCopy);
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after mlkv_dram_contains (n=" + n + ")");
    }

    /**
     * Sets byte {@code q} of {@code same} to 1 where the bucket of {@code query[q]} still has
     * the sequence count {@code seq[q]} that {@link #probe} reported (no slot of it changed since
     * the row was read), 0 otherwise, for {@code q < n}; waits for the result.
     */
    public void unchanged(CUdeviceptr query, CUdeviceptr seq, long n, CUdeviceptr same, CUstream stream) {
        if (closed.get()) {
            throw new IllegalStateException("MappedDramTier is closed");
        }
        if (n <= 0) {
            return;
        }
        kernels.launch("mlkv_dram_unchanged", n, BLOCK, stream, query, seq, n, counts, layout.buckets(), same);
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after mlkv_dram_unchanged (n=" + n + ")");
    }

    /**
     * Writes rows of keys the tier holds into it in place, from the GPU: for each {@code q < n}
     * whose byte {@code q} of {@code state} is {@link #WRITE_WANTED}, row {@code q} of
     * {@code rows} (device memory) replaces the value of {@code keys[q]} and marks it dirty, and
     * the byte becomes {@link #WRITE_DONE}, or {@link #WRITE_NOT_HELD} where the tier does not hold
     * the key. Keys must be distinct. Only while no CPU thread writes the tier (the store's
     * mutation lock) and after {@link DramTier#beginDeviceChanges}; CPU and GPU readers see each
     * bucket's sequence count odd while it is written. Runs rounds of three launches (claim and
     * make counts odd, copy, make counts even) until every wanted entry is done (one round where
     * every bucket has its own claim slot; otherwise a round writes one entry per claim slot); waits.
     * Where the tier was mapped with its keys on the device and a copy taken by an earlier probe
     * is still current, the claims find each key's slot in that copy instead of over PCIe.
     */
    public void writeRows(CUdeviceptr keys, CUdeviceptr rows, long n, CUdeviceptr state, CUstream stream) {
        writeRows(keys, rows, n, state, false, stream);
    }

    /**
     * {@link #writeRows(CUdeviceptr, CUdeviceptr, long, CUdeviceptr, CUstream)}, or with
     * {@code add} the same adding each row to the value instead of replacing it; then a key may
     * repeat among the entries, and each of its entries adds its row once (one per round).
     */
    public void writeRows(CUdeviceptr keys, CUdeviceptr rows, long n, CUdeviceptr state, boolean add, CUstream stream) {
        if (closed.get()) {
            throw new IllegalStateException("MappedDramTier is closed");
        }
        if (n <= 0) {
            return;
        }
        ensureWriteScratch(n);
        // Keys do not change while the GPU writes (no CPU writer runs): a copy current now stays so.
        CUdeviceptr keyCopy = keysOnDevice != null ? keysOnDevice.currentWithoutCopying() : null;
        // Distinct keys replacing rows, each bucket with its own claim: all of a bucket's entries
        // write in one round. Adds (a key may repeat) take one entry per bucket per round.
        int shared = !add && sharedClaims ? 1 : 0;
        long[] left = new long[1];
        for (int round = 1; ; round++) {
            // Three launches, the host waiting for each: a finished kernel's writes to host
            // memory are visible to the host before the next one writes (see the kernel source).
            Cuda.check(cuMemsetD32Async(claims.pointer(), 0, claimSlots, stream), "cuMemsetD32Async (DRAM write claims)");
            Cuda.check(cuMemsetD8Async(retries.pointer(), (byte) 0, 8, stream), "cuMemsetD8Async (DRAM write retries)");
            kernels.launch("mlkv_dram_write_claim", n * TILE, BLOCK, stream, keys, n, state, claims.pointer(),
                    claimSlots - 1, retries.pointer(), slotScratch.pointer(), seqScratch.pointer(), versionScratch.pointer(), this.keys, counts,
                    layout.buckets(), shared, keyCopy);
            Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after mlkv_dram_write_claim (n=" + n + ")");
            kernels.launch("mlkv_dram_write_copy", n * TILE, BLOCK, stream, keys, rows, n, layout.dim(), state,
                    slotScratch.pointer(), values, flags, add ? 1 : 0);
            Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after mlkv_dram_write_copy (n=" + n + ")");
            kernels.launch("mlkv_dram_write_release", n, BLOCK, stream, n, state, slotScratch.pointer(),
                    seqScratch.pointer(), versionScratch.pointer(), counts, shared);
            Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after mlkv_dram_write_release (n=" + n + ")");
            Cuda.check(cuMemcpyDtoH(Pointer.to(left), retries.pointer(), 8), "cuMemcpyDtoH (DRAM write retries)");
            if (left[0] == 0) {
                return;
            }
            if (round > 1000) {
                throw new IllegalStateException("DRAM writes on the GPU: " + left[0] + " entries still unwritten after "
                        + round + " rounds");
            }
        }
    }

    /**
     * Sets byte {@code q} of {@code state} to {@link #WRITE_WANTED} where byte {@code q} of
     * {@code marks} is not 0 (a dirty entry, as the table's evictions report them) and to
     * {@link #WRITE_SKIPPED} elsewhere, for {@code q < n}, on the GPU, ready for
     * {@link #writeRows}; waits and returns how many are wanted.
     */
    public long wantMarked(CUdeviceptr marks, long n, CUdeviceptr state, CUstream stream) {
        if (closed.get()) {
            throw new IllegalStateException("MappedDramTier is closed");
        }
        if (n <= 0) {
            return 0;
        }
        Cuda.check(cuMemsetD8Async(retries.pointer(), (byte) 0, 8, stream), "cuMemsetD8Async (wanted count)");
        kernels.launch("mlkv_dram_write_want_marked", n, BLOCK, stream, marks, n, state, retries.pointer());
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize after mlkv_dram_write_want_marked (n=" + n + ")");
        long[] wanted = new long[1];
        Cuda.check(cuMemcpyDtoH(Pointer.to(wanted), retries.pointer(), 8), "cuMemcpyDtoH (wanted count)");
        return wanted[0];
    }

    /** Per-entry slot, sequence count and version of {@link #writeRows}, for {@code n} entries. */
    private void ensureWriteScratch(long n) {
        if (slotScratch != null && slotScratch.bytes() >= n * 8) {
            return;
        }
        CloseHelper.closeAll(slotScratch, seqScratch, versionScratch);
        slotScratch = null;
        seqScratch = null;
        versionScratch = null;
        slotScratch = new DeviceMemory(n * 8, "DRAM write slots");
        seqScratch = new DeviceMemory(n * 8, "DRAM write sequence counts");
        versionScratch = new DeviceMemory(n * 8, "DRAM write versions");
    }

    /** Unregisters the memory and frees the module. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            release(null);
        }
    }

    private void release(RuntimeException pending) {
        RuntimeException failure = pending;
        try {
            CloseHelper.closeAll(slotScratch, seqScratch, versionScratch);
        } catch (RuntimeException e) {
            failure = keep(failure, e);
        }
        try {
            owned.close();
        } catch (RuntimeException e) {
            failure = keep(failure, e);
        }
        for (int i = registered.size() - 1; i >= 0; i--) {
            try {
                Cuda.check(cuMemHostUnregister(registered.get(i)), "cuMemHostUnregister (DRAM tier)");
            } catch (RuntimeException e) {
                failure = keep(failure, e);
            }
        }
        registered.clear();
        try {
            kernels.close();
        } catch (RuntimeException e) {
            failure = keep(failure, e);
        }
        if (failure != null && failure != pending) {
            throw failure;
        }
    }

    private static RuntimeException keep(RuntimeException first, RuntimeException next) {
        if (first == null) {
            return next;
        }
        first.addSuppressed(next);
        return first;
    }
}
