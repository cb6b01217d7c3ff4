package io.mlkv.core.hbm;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.PinnedMemory;
import io.mlkv.gpu.cufile.DeviceRegion;
import io.mlkv.gpu.cufile.HostRegion;
import io.mlkv.gpu.dram.MappedDramTier;
import io.mlkv.gpu.spill.SpillLog;
import io.mlkv.storage.dram.DramTier;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.util.concurrent.atomic.LongAdder;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;

/**
 * The device read path of the HBM tier, from the lookup to the scatter of rows found below: a
 * device batch is looked up in HBM ({@link #findDevice}), its misses in the mapped DRAM tier on
 * the GPU, then in the spill log ({@link #readSpilled}); what the tiers below return on the CPU
 * goes back to the GPU and is scattered into the caller's output ({@link #scatterBelow}). The
 * misses, their staging and what was read for them travel in a {@link DeviceMisses}, which
 * {@link HbmMigration} uses to promote them and then {@link #release}s.
 *
 * <p>Lock rule: lookups run without the store's mutation lock (the table serialises its own
 * calls; each read has its own staging set); {@link #unchangedInDram} needs it.
 */
final class DeviceReads {
    /**
     * Whether DRAM probes skip the per-row check when no DRAM change is under way
     * ({@link MappedDramTier.Probe#UNCHECKED}); on by default, {@code -Dmlkv.uncheckedDramProbes=false}
     * turns it off (docs/BENCHMARKS.md has the measurements).
     */
    private static final boolean UNCHECKED_PROBES = !"false".equals(System.getProperty("mlkv.uncheckedDramProbes"));
    /**
     * Whether a device lookup whose misses the GPU all read from DRAM leaves the missed keys,
     * positions and sequence counts on the device (copied when first asked for,
     * {@link DeviceMisses}): a uniform 1M-key read copies about 10 MB less to the host, which the
     * read waits for (on an H200, 3.61 -> 3.43 ms a call, run 133). On by default;
     * {@code -Dmlkv.lazyMissCopies=false} copies them at once.
     */
    private static final boolean LAZY_MISS_COPIES = !"false".equals(System.getProperty("mlkv.lazyMissCopies"));
    private final HbmTier hbm;
    private final ProbeChoice probeChoice = new ProbeChoice();
    private final LongAdder dramProbeNanos = new LongAdder();
    private final LongAdder spillReadNanos = new LongAdder();

    DeviceReads(HbmTier hbm) {
        this.hbm = hbm;
    }

    /** Time spent probing the mapped DRAM tier from the GPU, copies back included. */
    long dramProbeNanos() {
        return dramProbeNanos.sum();
    }

    /** Time device reads spent reading the spill log into device memory and scattering it. */
    long spillReadNanos() {
        return spillReadNanos.sum();
    }

    /**
     * Device reads: reads those misses of {@code m} not yet found ({@code below[j]} false) that
     * the spill log holds into device staging (straight, with cuFile; through pinned staging
     * and one copy on the POSIX path) and scatters them into {@code out}, setting their
     * {@code found} bytes. Copies of the rows go to
     * {@code rows} (at the miss's position, for promotion) and their {@code below} flags are set.
     * Returns how many were found.
     */
    int readSpilled(DeviceMisses m, boolean[] below, float[] rows, SpillLog spill, CUdeviceptr out, CUdeviceptr found) {
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
        int dim = hbm.table().dim();
        long rowBytes = dim * 4L;
        boolean[] valid = new boolean[hits];
        int ok;
        Staging st = hbm.acquire(count);
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
                hbm.table().scatterRows(st.rowsIn.pointer(), st.rowsIndex.pointer(), hits, out, found);
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
            hbm.giveBack(st);
        }
        return ok;
    }

    /**
     * Whether the GPU read rows of {@code m} from DRAM and no bucket of the tier changed since
     * just before it did, so every row it read is still what DRAM holds.
     */
    boolean dramUnchangedSince(DeviceMisses m) {
        return m.dramHits() > 0 && hbm.dramTier().changes() == m.dramChanges();
    }


    /**
     * For each miss of {@code m}: whether it was read from DRAM on the GPU and its DRAM bucket has
     * not changed since (asked on the GPU). Caller holds the mutation lock, so DRAM does not
     * change meanwhile, and calls it before {@link HbmTier#installFromDevice}.
     */
    boolean[] unchangedInDram(DeviceMisses m) {
        int count = m.count();
        boolean[] same = new boolean[count];
        if (m.dramHits() == 0) {
            return same;
        }
        if (dramUnchangedSince(m)) {
            return m.fromDram().clone();
        }
        Staging st = m.staging();
        hbm.table().makeDeviceCurrent();
        hbm.mappedDram().unchanged(st.missedKeys.pointer(), st.probeSeqs.pointer(), count, st.flags.pointer(), st.stream);
        Cuda.check(cuMemcpyDtoH(st.hostFlags.pointer(), st.flags.pointer(), count), "cuMemcpyDtoH (DRAM buckets unchanged)");
        ByteBuffer f = st.hostFlags.buffer();
        for (int j = 0; j < count; j++) {
            same[j] = m.fromDram()[j] && f.get(j) != 0;
        }
        return same;
    }

    /** Gives the staging of a device lookup back; call once per {@link #findDevice}, when done with it. */
    void release(DeviceMisses m) {
        hbm.giveBack(m.staging());
    }

    /**
     * Looks up {@code n} device keys in HBM, writing found rows to {@code out} and 1/0 to
     * {@code found}; then, where the DRAM tier is mapped ({@link HbmTier#mapDram}), looks the misses up
     * in DRAM on the GPU too. Returns the misses (copied to the host through pinned buffers) for
     * the tiers below. Caller then calls {@link #scatterBelow} with what it found there.
     * {@code movesBefore} is {@link HbmTier#moves()} read before the call: the misses say whether
     * a move overlapped the lookup.
     */
    DeviceMisses findDevice(CUdeviceptr keys, long n, CUdeviceptr out, CUdeviceptr found, DramTier dram, long movesBefore) {
        Staging st = hbm.acquire(n);
        try {
            long started = System.nanoTime();
            // An install held back by an earlier read runs behind this lookup, beside the probe below.
            long missed = hbm.table().findThenDeferred(keys, n, out, found, st.missedKeys.pointer(),
                    st.missedIndex.pointer());
            boolean moveOverlapped = hbm.movedSince(movesBefore);
            hbm.countLookup(n - missed, missed, System.nanoTime() - started);
            int count = (int) missed;
            long dramChanges = -1;
            int dramHits = 0;
            boolean lazy = LAZY_MISS_COPIES && count > 0 && hbm.mappedDram() != null;
            if (count > 0) {
                hbm.table().makeDeviceCurrent();
                // Copies and the probe are queued on the staging stream, with one wait for all of them.
                if (!lazy) {
                    copyMisses(st, missed);
                }
                if (hbm.mappedDram() != null) {
                    long probeStarted = System.nanoTime();
                    DramTier tier = hbm.dramTier();
                    long quiet = UNCHECKED_PROBES && probeChoice.mayRunUnchecked() ? tier.changesIfQuiet() : -1;
                    dramChanges = quiet >= 0 ? quiet : tier.changes();
                    probe(st, missed, out, found, quiet >= 0 ? MappedDramTier.Probe.UNCHECKED : MappedDramTier.Probe.CHECKED, !lazy);
                    if (quiet >= 0 && tier.changes() != quiet) {
                        // A change began while the GPU read rows unchecked: read them all again, checked.
                        probeChoice.overtaken();
                        probe(st, missed, out, found, MappedDramTier.Probe.CHECKED_RESETTING_FOUND, !lazy);
                    }
                    dramHits = (int) st.hostHitCount.buffer().order(ByteOrder.nativeOrder()).getLong(0);
                    if (lazy && dramHits < count) {
                        // The CPU reads some misses: it needs every per-miss copy now (the flags are reused).
                        copyMisses(st, missed);
                        copyProbeResults(st, missed);
                        await(st, "copies of the DRAM probe's results");
                        lazy = false;
                    }
                    dramProbeNanos.add(System.nanoTime() - probeStarted);
                } else {
                    await(st, "missed keys");
                }
            }
            DeviceMisses result = new DeviceMisses(count, dramHits, dramChanges, moveOverlapped, st, lazy);
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
            hbm.giveBack(st);
            throw e;
        }
    }

    /**
     * Probes the mapped DRAM tier for the {@code missed} keys staged in {@code st} (after the
     * copies of the misses queued on its stream), copies the results to the host and waits.
     */
    private void probe(Staging st, long missed, CUdeviceptr out, CUdeviceptr found, MappedDramTier.Probe how,
            boolean copyResults) {
        Cuda.check(cuMemsetD8Async(st.hitCount.pointer(), (byte) 0, 8, st.stream), "cuMemsetD8Async (DRAM probe hit count)");
        hbm.mappedDram().probe(st.missedKeys.pointer(), st.missedIndex.pointer(), missed, st.rowsIn.pointer(), out,
                found, st.flags.pointer(), st.probeSeqs.pointer(), st.hitCount.pointer(), how, st.stream);
        if (copyResults) {
            copyProbeResults(st, missed);
        }
        copyToHost(st.hostHitCount, st.hitCount, 8, "DRAM probe hit count", st.stream);
        await(st, "mlkv_dram_probe (n=" + missed + ", " + how + ")");
    }

    /** Queues the copies of the missed keys and positions to the host. */
    private static void copyMisses(Staging st, long missed) {
        copyToHost(st.hostMissKeys, st.missedKeys, missed * 8, "missed keys", st.stream);
        copyToHost(st.hostIndex, st.missedIndex, missed * 4, "missed positions", st.stream);
    }

    /** Queues the copies of the DRAM probe's per-miss hits and sequence counts to the host. */
    private static void copyProbeResults(Staging st, long missed) {
        copyToHost(st.hostHits, st.flags, missed, "DRAM probe hits", st.stream);
        copyToHost(st.hostSeqs, st.probeSeqs, missed * 8, "DRAM probe sequence counts", st.stream);
    }

    /** Queues a copy of {@code bytes} from {@code from} to pinned {@code to} on {@code stream}. */
    private static void copyToHost(PinnedMemory to, DeviceMemory from, long bytes, String what, CUstream stream) {
        Cuda.check(cuMemcpyDtoHAsync(to.pointer(), from.pointer(), bytes, stream), "cuMemcpyDtoHAsync (" + what + ")");
    }

    /** Waits for what was queued on {@code st}'s stream, the last of it being {@code what}. */
    private static void await(Staging st, String what) {
        Cuda.check(cuStreamSynchronize(st.stream), "cuStreamSynchronize after " + what);
    }

    /**
     * Copies rows found below (row {@code m} of {@code rows} for each {@code m} with
     * {@code below[m]}) to the GPU through {@code m}'s pinned staging and scatters them into {@code out} at
     * their batch positions, setting their {@code found} bytes.
     */
    void scatterBelow(DeviceMisses m, float[] rows, boolean[] below, int count, CUdeviceptr out, CUdeviceptr found) {
        if (count > 0) {
            scatterHostRows(m.staging(), rows, below, m.index(), count, out, found);
        }
    }

    /** Copies the {@code count} rows {@code j} of {@code rows} with {@code which[j]} through {@code st} and scatters them to {@code index[j]}. */
    private void scatterHostRows(Staging st, float[] rows, boolean[] which, int[] index, int count, CUdeviceptr out,
            CUdeviceptr found) {
        int dim = hbm.table().dim();
        hbm.table().makeDeviceCurrent();
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
        hbm.table().scatterRows(st.rowsIn.pointer(), st.rowsIndex.pointer(), c, out, found);
    }
}
