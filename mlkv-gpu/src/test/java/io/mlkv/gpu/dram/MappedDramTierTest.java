package io.mlkv.gpu.dram;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD8;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.table.RequiresGpu;
import io.mlkv.storage.dram.DramTier;
import java.util.Arrays;
import jcuda.Pointer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.extension.ExtendWith;

/** The GPU reads the DRAM tier in place: present keys' rows, absent keys untouched. */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class MappedDramTierTest {
    private static final sun.misc.Unsafe UNSAFE = unsafe();

    private static sun.misc.Unsafe unsafe() {
        try {
            java.lang.reflect.Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            return (sun.misc.Unsafe) f.get(null);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Rows of whole float4s up to 128 floats are read into registers, others element by element: both paths. */
    @ParameterizedTest(name = "dim {0}")
    @ValueSource(ints = {12, 13, 64, 200})
    void theGpuFindsWhatTheTierHoldsAndLeavesAbsentKeysUntouched(int dim) {
        try (CudaDevice dev = CudaDevice.open(0);
             DramTier tier = new DramTier(dim, 256 * DramTier.bucketBytes(dim), "lru")) {
            dev.makeCurrent();
            int n = 3000;
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = 1_000_003L * i - 77;
                float[] row = new float[dim];
                for (int d = 0; d < dim; d++) {
                    row[d] = valueOf(i, d);
                }
                tier.put(keys[i], row, 0, false, -1, tier.tick(), (k, v, d) -> { });
            }
            int[] index = new int[n];
            for (int i = 0; i < n; i++) {
                index[i] = n - 1 - i; // rows land in reverse order
            }
            try (MappedDramTier mapped = MappedDramTier.map(tier);
                 DeviceMemory dKeys = new DeviceMemory(n * 8L, "keys");
                 DeviceMemory dIndex = new DeviceMemory(n * 4L, "index");
                 DeviceMemory scratch = new DeviceMemory((long) n * dim * 4, "scratch");
                 DeviceMemory out = new DeviceMemory((long) n * dim * 4, "out");
                 DeviceMemory found = new DeviceMemory(n, "found");
                 DeviceMemory hit = new DeviceMemory(n, "hit");
                 DeviceMemory hitCount = new DeviceMemory(8, "hit count")) {
                assertTrue(mapped.pinnedBytes() >= 256L * DramTier.bucketBytes(dim) / 2, "pinned " + mapped.pinnedBytes());
                cuMemcpyHtoD(dKeys.pointer(), Pointer.to(keys), n * 8L);
                cuMemcpyHtoD(dIndex.pointer(), Pointer.to(index), n * 4L);
                float[] sentinel = new float[n * dim];
                Arrays.fill(sentinel, -9f);
                cuMemcpyHtoD(out.pointer(), Pointer.to(sentinel), sentinel.length * 4L);
                cuMemsetD8(found.pointer(), (byte) 0, n);
                cuMemsetD8(hitCount.pointer(), (byte) 0, 8);
                jcuda.driver.CUstream stream = new jcuda.driver.CUstream();
                jcuda.driver.JCudaDriver.cuStreamCreate(stream, 0);
                byte[] held = new byte[n];
                byte[] same = new byte[n];
                byte[] sameAfter = new byte[n];
                long[] seqs = new long[n];
                int changed = -1;
                try (DeviceMemory dSeqs = new DeviceMemory(n * 8L, "seqs");
                     DeviceMemory dHeld = new DeviceMemory(n, "held");
                     DeviceMemory dSame = new DeviceMemory(n, "same")) {
                    mapped.probe(dKeys.pointer(), dIndex.pointer(), n, scratch.pointer(), out.pointer(), found.pointer(),
                            hit.pointer(), dSeqs.pointer(), hitCount.pointer(), MappedDramTier.Probe.CHECKED, stream);
                    cuStreamSynchronize(stream);
                    mapped.contains(dKeys.pointer(), n, dHeld.pointer(), stream);
                    cuMemcpyDtoH(Pointer.to(held), dHeld.pointer(), n);
                    mapped.unchanged(dKeys.pointer(), dSeqs.pointer(), n, dSame.pointer(), stream);
                    cuMemcpyDtoH(Pointer.to(same), dSame.pointer(), n);
                    cuMemcpyDtoH(Pointer.to(seqs), dSeqs.pointer(), n * 8L);
                    for (int i = 0; i < n && changed < 0; i++) {
                        if (tier.contains(keys[i])) {
                            changed = i;
                        }
                    }
                    tier.put(keys[changed], new float[dim], 0, false, -1, tier.tick(), (k, v, d) -> { });
                    mapped.unchanged(dKeys.pointer(), dSeqs.pointer(), n, dSame.pointer(), stream);
                    cuMemcpyDtoH(Pointer.to(sameAfter), dSame.pointer(), n);
                }
                jcuda.driver.JCudaDriver.cuStreamDestroy(stream);
                int unchangedAfter = 0;
                for (int i = 0; i < n; i++) {
                    boolean inTier = i == changed || tier.contains(keys[i]);
                    assertEquals(inTier, held[i] == 1, "contains() of key " + keys[i]);
                    if (inTier) {
                        assertEquals(0, seqs[i] & 1, "a row is read at an even sequence count, key " + keys[i]);
                        assertEquals(1, same[i], "nothing changed yet, key " + keys[i]);
                        assertEquals(tier.sequence(keys[i]) == seqs[i] ? 1 : 0, sameAfter[i],
                                "after the put of key " + keys[changed] + ", key " + keys[i]);
                        unchangedAfter += sameAfter[i];
                    }
                }
                assertEquals(0, sameAfter[changed], "the bucket of the key just written changed");
                assertTrue(unchangedAfter > n / 3, "the other buckets did not change: " + unchangedAfter);
                float[] rows = new float[n * dim];
                byte[] hits = new byte[n];
                byte[] founds = new byte[n];
                cuMemcpyDtoH(Pointer.to(rows), out.pointer(), rows.length * 4L);
                cuMemcpyDtoH(Pointer.to(hits), hit.pointer(), n);
                cuMemcpyDtoH(Pointer.to(founds), found.pointer(), n);
                int present = 0;
                for (int i = 0; i < n; i++) {
                    boolean inTier = tier.contains(keys[i]);
                    present += inTier ? 1 : 0;
                    assertEquals(inTier, hits[i] == 1, "hit flag of key " + keys[i]);
                    assertEquals(inTier, founds[index[i]] == 1, "found flag at position " + index[i]);
                    for (int d = 0; d < dim; d++) {
                        assertEquals(inTier ? valueOf(i, d) : -9f, rows[index[i] * dim + d], "row of key " + keys[i] + ", element " + d);
                    }
                }
                assertTrue(present > n / 2, "most keys fit in the tier: " + present);
                long[] counted = new long[1];
                cuMemcpyDtoH(Pointer.to(counted), hitCount.pointer(), 8);
                assertEquals(present, counted[0], "the probe's hit count");
            }
        }
    }

    /**
     * writeRows on the GPU: distinct keys replacing rows (several per bucket: one round with
     * shared claims) and repeated keys adding rows (one per bucket per round); keys the tier lacks
     * come back NOT_HELD and are not added; written entries are dirty, each written bucket's
     * sequence count is even again and moved on by two per round that wrote it.
     */
    @ParameterizedTest(name = "dim {0}")
    @ValueSource(ints = {13, 64})
    void writeRowsReplacesAndAddsRowsOfKeysTheTierHolds(int dim) {
        try (CudaDevice dev = CudaDevice.open(0);
             DramTier tier = new DramTier(dim, 64 * DramTier.bucketBytes(dim), "lru")) {
            dev.makeCurrent();
            int n = 600; // about 9 keys per bucket
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = 7_919L * i + 3;
                float[] row = new float[dim];
                for (int d = 0; d < dim; d++) {
                    row[d] = valueOf(i, d);
                }
                tier.put(keys[i], row, 0, false, -1, tier.tick(), (k, v, d) -> { });
            }
            // Replace: every held key once, in reverse order, plus absent keys.
            int absent = 40;
            long[] replace = new long[n + absent];
            float[] replaceRows = new float[(n + absent) * dim];
            for (int j = 0; j < n + absent; j++) {
                replace[j] = j < n ? keys[n - 1 - j] : -1_000L - j;
                for (int d = 0; d < dim; d++) {
                    replaceRows[j * dim + d] = -valueOf(j, d);
                }
            }
            byte[] replaceState = write(tier, replace, replaceRows, false, dim);
            float[] expected = new float[n * dim];
            for (int j = 0; j < n + absent; j++) {
                if (j >= n) {
                    assertEquals(MappedDramTier.WRITE_NOT_HELD, replaceState[j], "absent key " + replace[j]);
                    assertEquals(false, tier.contains(replace[j]), "absent key stays absent");
                    continue;
                }
                int i = n - 1 - j;
                boolean held = tier.contains(keys[i]);
                assertEquals(held ? MappedDramTier.WRITE_DONE : MappedDramTier.WRITE_NOT_HELD, replaceState[j], "key " + keys[i]);
                System.arraycopy(replaceRows, j * dim, expected, i * dim, dim);
            }
            // Add: each key 1 + (i % 3) times, interleaved, adding 0.25 * (i % 5 + 1) each time.
            int total = 0;
            for (int i = 0; i < n; i++) {
                total += 1 + i % 3;
            }
            long[] adds = new long[total];
            float[] addRows = new float[total * dim];
            int at = 0;
            for (int rep = 0; rep < 3; rep++) {
                for (int i = 0; i < n; i++) {
                    if (rep <= i % 3) {
                        adds[at] = keys[i];
                        Arrays.fill(addRows, at * dim, (at + 1) * dim, 0.25f * (i % 5 + 1));
                        at++;
                    }
                }
            }
            long[] seqBefore = new long[n];
            for (int i = 0; i < n; i++) {
                seqBefore[i] = tier.contains(keys[i]) ? tier.sequence(keys[i]) : 0;
            }
            byte[] addState = write(tier, adds, addRows, true, dim);
            int held = 0;
            for (int j = 0; j < total; j++) {
                assertEquals(tier.contains(adds[j]) ? MappedDramTier.WRITE_DONE : MappedDramTier.WRITE_NOT_HELD, addState[j],
                        "add entry " + j + " of key " + adds[j]);
            }
            float[] got = new float[dim];
            for (int i = 0; i < n; i++) {
                if (!tier.contains(keys[i])) {
                    continue;
                }
                held++;
                for (int d = 0; d < dim; d++) {
                    expected[i * dim + d] += (1 + i % 3) * 0.25f * (i % 5 + 1);
                }
                assertTrue(tier.getOrVersion(keys[i], got, 0, tier.tick()) == DramTier.HIT, "key " + keys[i]);
                assertEquals(0, tier.sequence(keys[i]) & 1, "even count after the writes, key " + keys[i]);
                assertTrue(tier.sequence(keys[i]) > seqBefore[i], "the bucket of key " + keys[i] + " changed");
                for (int d = 0; d < dim; d++) {
                    assertEquals(expected[i * dim + d], got[d], "key " + keys[i] + ", element " + d);
                }
            }
            assertTrue(held > n / 2, "most keys fit in the tier: " + held);
            long[] dirty = new long[1];
            tier.forEachDirty(0, tier.buckets(), (k, v) -> dirty[0]++);
            assertEquals(held, dirty[0], "every written entry is dirty");
        }
    }

    /** Runs {@link MappedDramTier#writeRows} of every entry; returns the final states. */
    private static byte[] write(DramTier tier, long[] keys, float[] rows, boolean add, int dim) {
        try (MappedDramTier mapped = MappedDramTier.map(tier)) {
            return write(mapped, tier, keys, rows, add, dim);
        }
    }

    /** {@link #write(DramTier, long[], float[], boolean, int)} through {@code mapped}. */
    private static byte[] write(MappedDramTier mapped, DramTier tier, long[] keys, float[] rows, boolean add, int dim) {
        int n = keys.length;
        try (DeviceMemory dKeys = new DeviceMemory(n * 8L, "keys");
             DeviceMemory dRows = new DeviceMemory((long) n * dim * 4, "rows");
             DeviceMemory dState = new DeviceMemory(n, "state")) {
            cuMemcpyHtoD(dKeys.pointer(), Pointer.to(keys), n * 8L);
            cuMemcpyHtoD(dRows.pointer(), Pointer.to(rows), (long) n * dim * 4);
            cuMemsetD8(dState.pointer(), MappedDramTier.WRITE_WANTED, n);
            jcuda.driver.CUstream stream = new jcuda.driver.CUstream();
            jcuda.driver.JCudaDriver.cuStreamCreate(stream, 0);
            try {
                tier.beginDeviceChanges(n);
                mapped.writeRows(dKeys.pointer(), dRows.pointer(), n, dState.pointer(), add, stream);
            } finally {
                jcuda.driver.JCudaDriver.cuStreamDestroy(stream);
            }
            byte[] state = new byte[n];
            cuMemcpyDtoH(Pointer.to(state), dState.pointer(), n);
            return state;
        }
    }

    /**
     * The probe's three ways on a tier nothing changes: an unchecked probe reads the same rows,
     * flags, hit count and sequence counts as a checked one; a checked probe that resets found
     * bytes leaves exactly the held keys' bytes set, whatever they held before (the reprobe after
     * an unchecked probe that a change overtook). A bucket whose count is odd (a writer in it) is
     * a miss either way.
     */
    @ParameterizedTest(name = "dim {0}")
    @ValueSource(ints = {13, 64})
    void uncheckedAndResettingProbesAgreeWithTheCheckedOne(int dim) {
        try (CudaDevice dev = CudaDevice.open(0);
             DramTier tier = new DramTier(dim, 128 * DramTier.bucketBytes(dim), "lru")) {
            dev.makeCurrent();
            int n = 2500; // more than the tier's 2048 slots: some keys are absent
            long[] keys = new long[n];
            int[] index = new int[n];
            for (int i = 0; i < n; i++) {
                keys[i] = 7_000_001L * i + 5;
                index[i] = (i * 7) % n; // 7 and 2500 share no factor: a permutation
                float[] row = new float[dim];
                for (int d = 0; d < dim; d++) {
                    row[d] = valueOf(i, d);
                }
                tier.put(keys[i], row, 0, false, -1, tier.tick(), (k, v, d) -> { });
            }
            DramTier.NativeLayout layout = tier.nativeLayout(); // changes are counted from here on
            assertEquals(tier.changes(), tier.changesIfQuiet(), "no change under way");
            int busy = -1;
            for (int i = 0; i < n && busy < 0; i++) {
                if (tier.contains(keys[i])) {
                    busy = i;
                }
            }
            // A writer inside the bucket of keys[busy]: its count odd for the probes below.
            long seqAddr = layout.seqAddress(bucketOf(keys[busy], layout.buckets()));
            long seqBefore = UNSAFE.getLongVolatile(null, seqAddr);
            // Keys read from host memory: a probe through a device copy reads no counts.
            try (MappedDramTier mapped = MappedDramTier.map(tier, false);
                 DeviceMemory dKeys = new DeviceMemory(n * 8L, "keys");
                 DeviceMemory dIndex = new DeviceMemory(n * 4L, "index");
                 DeviceMemory scratch = new DeviceMemory((long) n * dim * 4, "scratch")) {
                cuMemcpyHtoD(dKeys.pointer(), Pointer.to(keys), n * 8L);
                cuMemcpyHtoD(dIndex.pointer(), Pointer.to(index), n * 4L);
                UNSAFE.putLongVolatile(null, seqAddr, seqBefore + 1);
                ProbeResult checked = probe(mapped, dKeys, dIndex, scratch, n, dim, MappedDramTier.Probe.CHECKED, (byte) 0);
                ProbeResult unchecked = probe(mapped, dKeys, dIndex, scratch, n, dim, MappedDramTier.Probe.UNCHECKED, (byte) 0);
                ProbeResult resetting = probe(mapped, dKeys, dIndex, scratch, n, dim,
                        MappedDramTier.Probe.CHECKED_RESETTING_FOUND, (byte) 1);
                UNSAFE.putLongVolatile(null, seqAddr, seqBefore);
                int present = 0;
                for (int i = 0; i < n; i++) {
                    boolean readable = i != busy && inAnotherBucket(tier, keys, busy, i) && tier.contains(keys[i]);
                    present += readable ? 1 : 0;
                    for (ProbeResult r : new ProbeResult[] {checked, unchecked, resetting}) {
                        assertEquals(readable, r.hits[i] == 1, r.how + ": hit flag of key " + keys[i]);
                        assertEquals(readable, r.found[index[i]] == 1, r.how + ": found byte at " + index[i]);
                        if (readable) {
                            assertEquals(tier.sequence(keys[i]), r.seqs[i], r.how + ": sequence count of key " + keys[i]);
                            for (int d = 0; d < dim; d++) {
                                assertEquals(valueOf(i, d), r.rows[index[i] * dim + d], r.how + ": key " + keys[i] + ", element " + d);
                            }
                        }
                    }
                }
                assertTrue(present > n / 2, "most keys are held: " + present);
                for (ProbeResult r : new ProbeResult[] {checked, unchecked, resetting}) {
                    assertEquals(present, r.hitCount, r.how + ": hit count");
                }
            }
        }
    }

    /**
     * Unchecked probes of a tier mapped with its keys on the device: the first look finds no copy
     * (keys read from host memory, real sequence counts reported), the next takes the copy and
     * reads the keys from it (every hit's sequence count reported as -1, a count no bucket has);
     * after the CPU inserts and removes keys, the next probe reads host memory again and the one
     * after it a new copy. Every probe finds exactly the keys the tier holds then, with their rows.
     */
    @ParameterizedTest(name = "dim {0}")
    @ValueSource(ints = {13, 64})
    void uncheckedProbesReadTheKeysFromTheDeviceOnlyWhileTheCopyIsCurrent(int dim) {
        try (CudaDevice dev = CudaDevice.open(0);
             DramTier tier = new DramTier(dim, 256 * DramTier.bucketBytes(dim), "lru")) {
            dev.makeCurrent();
            int n = 3000;
            long[] keys = new long[n];
            int[] index = new int[n];
            for (int i = 0; i < n; i++) {
                keys[i] = 7_000_001L * i + 5;
                index[i] = (i * 7) % n; // 7 and 3000 share no factor: a permutation
            }
            for (int i = 0; i < n / 2; i++) {
                put(tier, keys[i], i, dim);
            }
            tier.nativeLayout(); // changes are counted from here on
            try (MappedDramTier mapped = MappedDramTier.map(tier, true);
                 Queries q = Queries.of(keys, index, dim)) {
                assertProbes(mapped, tier, q, false, "first look");
                assertProbes(mapped, tier, q, true, "copy taken");
                assertProbes(mapped, tier, q, true, "copy kept");
                // The CPU changes keys: inserts the second half, removes every fifth of the first.
                for (int i = n / 2; i < n; i++) {
                    put(tier, keys[i], i, dim);
                }
                for (int i = 0; i < n / 2; i += 5) {
                    tier.remove(keys[i]);
                }
                assertProbes(mapped, tier, q, false, "after keys changed");
                assertProbes(mapped, tier, q, true, "new copy taken");
            }
        }
    }

    /**
     * A copy is taken only once the probes since the keys last changed have read a sixteenth of
     * the slots' keys from host memory: probes of 100 keys into a tier of 4,096 slots read host
     * memory three times (100, 200, 300 keys) and the copy from the fourth on; a key change starts
     * the count again.
     */
    @Test
    void smallProbesTakeACopyOnlyOnceTheyHaveReadAsManyKeysAsItMoves() {
        int dim = 16;
        try (CudaDevice dev = CudaDevice.open(0);
             DramTier tier = new DramTier(dim, 256 * DramTier.bucketBytes(dim), "lru")) {
            dev.makeCurrent();
            int n = 100;
            long[] keys = new long[n];
            int[] index = new int[n];
            for (int i = 0; i < n; i++) {
                keys[i] = 104_729L * i + 11;
                index[i] = i;
                put(tier, keys[i], i, dim);
            }
            assertEquals(4096, tier.nativeLayout().slots(), "slots: a copy is worth 256 probed keys");
            try (MappedDramTier mapped = MappedDramTier.map(tier, true);
                 Queries q = Queries.of(keys, index, dim)) {
                assertProbes(mapped, tier, q, false, "100 keys probed");
                assertProbes(mapped, tier, q, false, "200 keys probed");
                assertProbes(mapped, tier, q, false, "300 keys probed: enough, but counted after this look");
                assertProbes(mapped, tier, q, true, "copy taken");
                tier.remove(keys[0]);
                assertProbes(mapped, tier, q, false, "keys changed: the count starts again");
                assertProbes(mapped, tier, q, false, "200 keys probed since the change");
                assertProbes(mapped, tier, q, false, "300 keys probed since the change");
                assertProbes(mapped, tier, q, true, "new copy taken");
            }
        }
    }

    /**
     * With a current copy of the keys on the device (taken by probes), writeRows finds each
     * key's slot in the copy, and contains looks there: it replaces and adds the rows of the keys
     * the tier holds and reports the others NOT_HELD, as without the copy; a key hidden from host
     * memory meanwhile (not counted as a change) shows that the copy is what they read.
     */
    @Test
    void writeRowsFindsSlotsInACurrentCopyOfTheKeys() {
        int dim = 64;
        try (CudaDevice dev = CudaDevice.open(0);
             DramTier tier = new DramTier(dim, 64 * DramTier.bucketBytes(dim), "lru")) {
            dev.makeCurrent();
            int n = 600;
            long[] keys = new long[n];
            int[] index = new int[n];
            for (int i = 0; i < n; i++) {
                keys[i] = 7_919L * i + 3;
                index[i] = i;
                put(tier, keys[i], i, dim);
            }
            tier.nativeLayout();
            try (MappedDramTier mapped = MappedDramTier.map(tier, true);
                 Queries q = Queries.of(keys, index, dim)) {
                assertProbes(mapped, tier, q, false, "first look");
                assertProbes(mapped, tier, q, true, "copy taken");
                long[] writes = Arrays.copyOf(keys, n + 1);
                writes[n] = -5L; // a key the tier lacks
                float[] rows = new float[(n + 1) * dim];
                Arrays.fill(rows, 2f);
                // Hide a held key from host memory, uncounted, while the GPU writes: only the copy still shows it.
                int shown = 0;
                while (!tier.contains(keys[shown])) {
                    shown++;
                }
                DramTier.NativeLayout layout = tier.nativeLayout();
                long hidden = -1;
                long bucket = bucketOf(keys[shown], layout.buckets());
                for (long slot = bucket * DramTier.BUCKET_SLOTS; slot < (bucket + 1) * DramTier.BUCKET_SLOTS; slot++) {
                    if (UNSAFE.getLong(layout.keysAddress() + slot * 8) == keys[shown]) {
                        hidden = slot;
                    }
                }
                assertTrue(hidden >= 0, "key " + keys[shown] + " is in its bucket");
                UNSAFE.putLong(layout.keysAddress() + hidden * 8, io.mlkv.storage.ReservedKeys.EMPTY);
                byte[] replaced = write(mapped, tier, writes, rows, false, dim);
                byte[] added = write(mapped, tier, writes, rows, true, dim);
                byte[] present = new byte[2];
                try (DeviceMemory asked = new DeviceMemory(16, "asked");
                     DeviceMemory answer = new DeviceMemory(2, "present")) {
                    cuMemcpyHtoD(asked.pointer(), Pointer.to(new long[] {keys[shown], -5L}), 16);
                    mapped.contains(asked.pointer(), 2, answer.pointer(), null);
                    cuMemcpyDtoH(Pointer.to(present), answer.pointer(), 2);
                }
                UNSAFE.putLong(layout.keysAddress() + hidden * 8, keys[shown]);
                assertEquals(1, present[0], "contains finds key " + keys[shown] + " in the copy");
                assertEquals(0, present[1], "contains: a key the tier lacks");
                assertEquals(MappedDramTier.WRITE_DONE, replaced[shown], "key " + keys[shown] + " found in the copy, not in host memory");
                assertEquals(MappedDramTier.WRITE_NOT_HELD, replaced[n], "absent key, replacing");
                assertEquals(MappedDramTier.WRITE_NOT_HELD, added[n], "absent key, adding");
                float[] got = new float[dim];
                int held = 0;
                for (int i = 0; i < n; i++) {
                    boolean holds = tier.contains(keys[i]);
                    assertEquals(holds ? MappedDramTier.WRITE_DONE : MappedDramTier.WRITE_NOT_HELD, replaced[i], "key " + keys[i]);
                    assertEquals(replaced[i], added[i], "key " + keys[i] + ", adding");
                    if (holds) {
                        held++;
                        assertEquals(DramTier.HIT, tier.getOrVersion(keys[i], got, 0, tier.tick()));
                        for (int d = 0; d < dim; d++) {
                            assertEquals(4f, got[d], "key " + keys[i] + ", element " + d + ": replaced by 2, then 2 added");
                        }
                    }
                }
                assertTrue(held > n / 2, "most keys fit in the tier: " + held);
            }
        }
    }

    private static void put(DramTier tier, long key, int i, int dim) {
        float[] row = new float[dim];
        for (int d = 0; d < dim; d++) {
            row[d] = valueOf(i, d);
        }
        tier.put(key, row, 0, false, -1, tier.tick(), (k, v, dirty) -> { });
    }

    /** Query keys (row {@code i} of key {@code i} written at {@code index[i]}) on the device, with a probe's scratch. */
    private record Queries(long[] keys, int[] index, int dim, DeviceMemory dKeys, DeviceMemory dIndex, DeviceMemory scratch)
            implements AutoCloseable {
        static Queries of(long[] keys, int[] index, int dim) {
            int n = keys.length;
            DeviceMemory k = new DeviceMemory(n * 8L, "keys");
            DeviceMemory i = new DeviceMemory(n * 4L, "index");
            DeviceMemory s = new DeviceMemory((long) n * dim * 4, "scratch");
            cuMemcpyHtoD(k.pointer(), Pointer.to(keys), n * 8L);
            cuMemcpyHtoD(i.pointer(), Pointer.to(index), n * 4L);
            return new Queries(keys, index, dim, k, i, s);
        }

        @Override
        public void close() {
            org.agrona.CloseHelper.closeAll(scratch, dIndex, dKeys);
        }
    }

    /** One unchecked probe of every key: each key the tier holds found with its row, the keys read from the copy or not. */
    private static void assertProbes(MappedDramTier mapped, DramTier tier, Queries q, boolean fromCopy, String when) {
        long[] keys = q.keys();
        int[] index = q.index();
        int dim = q.dim();
        int n = keys.length;
        ProbeResult r = probe(mapped, q.dKeys(), q.dIndex(), q.scratch(), n, dim, MappedDramTier.Probe.UNCHECKED, (byte) 0);
        int held = 0;
        for (int i = 0; i < n; i++) {
            boolean holds = tier.contains(keys[i]);
            held += holds ? 1 : 0;
            assertEquals(holds, r.hits[i] == 1, when + ": hit flag of key " + keys[i]);
            assertEquals(holds, r.found[index[i]] == 1, when + ": found byte at " + index[i]);
            if (holds) {
                assertEquals(fromCopy ? -1 : tier.sequence(keys[i]), r.seqs[i], when + ": sequence count of key " + keys[i]);
                for (int d = 0; d < dim; d++) {
                    assertEquals(valueOf(i, d), r.rows[index[i] * dim + d], when + ": key " + keys[i] + ", element " + d);
                }
            }
        }
        assertTrue(held > 0, when + ": some keys are held");
        assertEquals(held, r.hitCount, when + ": hit count");
    }

    /** Whether key {@code i} lives in another bucket than key {@code busy}. */
    private static boolean inAnotherBucket(DramTier tier, long[] keys, int busy, int i) {
        return bucketOf(keys[i], tier.nativeLayout().buckets()) != bucketOf(keys[busy], tier.nativeLayout().buckets());
    }

    private static long bucketOf(long key, long buckets) {
        long h = key * 0x9E3779B97F4A7C15L;
        h ^= h >>> 29;
        return ((h >>> 32) * buckets) >>> 32;
    }

    private record ProbeResult(MappedDramTier.Probe how, float[] rows, byte[] found, byte[] hits, long[] seqs, long hitCount) { }

    /** One probe of every key into fresh buffers, found bytes preset to {@code foundBefore}. */
    private static ProbeResult probe(MappedDramTier mapped, DeviceMemory dKeys, DeviceMemory dIndex, DeviceMemory scratch, int n,
            int dim, MappedDramTier.Probe how, byte foundBefore) {
        try (DeviceMemory out = new DeviceMemory((long) n * dim * 4, "out");
             DeviceMemory found = new DeviceMemory(n, "found");
             DeviceMemory hit = new DeviceMemory(n, "hit");
             DeviceMemory seqs = new DeviceMemory(n * 8L, "seqs");
             DeviceMemory hitCount = new DeviceMemory(8, "hit count")) {
            cuMemsetD8(found.pointer(), foundBefore, n);
            cuMemsetD8(hitCount.pointer(), (byte) 0, 8);
            jcuda.driver.CUstream stream = new jcuda.driver.CUstream();
            jcuda.driver.JCudaDriver.cuStreamCreate(stream, 0);
            try {
                mapped.probe(dKeys.pointer(), dIndex.pointer(), n, scratch.pointer(), out.pointer(), found.pointer(),
                        hit.pointer(), seqs.pointer(), hitCount.pointer(), how, stream);
                cuStreamSynchronize(stream);
            } finally {
                jcuda.driver.JCudaDriver.cuStreamDestroy(stream);
            }
            ProbeResult r = new ProbeResult(how, new float[n * dim], new byte[n], new byte[n], new long[n], 0);
            cuMemcpyDtoH(Pointer.to(r.rows), out.pointer(), (long) n * dim * 4);
            cuMemcpyDtoH(Pointer.to(r.found), found.pointer(), n);
            cuMemcpyDtoH(Pointer.to(r.hits), hit.pointer(), n);
            cuMemcpyDtoH(Pointer.to(r.seqs), seqs.pointer(), n * 8L);
            long[] count = new long[1];
            cuMemcpyDtoH(Pointer.to(count), hitCount.pointer(), 8);
            return new ProbeResult(how, r.rows, r.found, r.hits, r.seqs, count[0]);
        }
    }

    /** Element {@code d} of key {@code i}'s row: exact in float32, and different for every element of a row. */
    private static float valueOf(int i, int d) {
        return i * 0.5f + d;
    }
}
