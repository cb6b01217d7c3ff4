package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.DeviceMemory;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import jcuda.Pointer;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Installs held back until the table's next call ({@link GpuHashTable#installAbsentDeferred}):
 * queued behind the next lookup, which therefore misses them; queued ahead of any other call;
 * dropped when their rows are no longer valid; forced by {@link GpuHashTable#settle}; dropped at close.
 */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class DeferredInstallTest {
    private static final int DIM = 4;
    private static final int HELD = 100;
    private static final int NEW = 200;

    private static long[] keys(long from, int n) {
        long[] k = new long[n];
        for (int i = 0; i < n; i++) {
            k[i] = from + 7L * i;
        }
        return k;
    }

    private static float[] rows(long[] keys, float tag) {
        float[] r = new float[keys.length * DIM];
        for (int i = 0; i < keys.length; i++) {
            for (int d = 0; d < DIM; d++) {
                r[i * DIM + d] = keys[i] + d * 0.25f + tag;
            }
        }
        return r;
    }

    /** A table holding {@link #HELD} keys, device copies of {@link #NEW} absent keys and their rows, and an event. */
    private static final class Fixture implements AutoCloseable {
        final GpuHashTable table = GpuHashTable.create(DIM, 4096, ScoreMode.LRU);
        final long[] held = keys(1, HELD);
        final long[] absent = keys(100_001, NEW);
        final float[] absentRows = rows(absent, 0.5f);
        final DeviceMemory keys;
        final DeviceMemory rows;
        final CUevent done = new CUevent();

        Fixture() {
            table.insertOrAssign(held, rows(held, 0), null);
            table.makeDeviceCurrent();
            keys = new DeviceMemory(NEW * 8L, "deferred keys");
            rows = new DeviceMemory(NEW * DIM * 4L, "deferred rows");
            cuMemcpyHtoD(keys.pointer(), Pointer.to(absent), NEW * 8L);
            cuMemcpyHtoD(rows.pointer(), Pointer.to(absentRows), NEW * DIM * 4L);
            cuEventCreate(done, CUevent_flags.CU_EVENT_DISABLE_TIMING);
        }

        GpuHashTable.DeferredInstall defer(boolean valid) {
            return table.installAbsentDeferred(keys.pointer(), rows.pointer(), NEW, done, false, () -> valid);
        }

        /** Host lookup of the absent keys: how many the table holds, checking the rows of those it holds. */
        int heldOfAbsent() {
            float[] out = new float[NEW * DIM];
            boolean[] found = new boolean[NEW];
            int hits = table.find(absent, out, found);
            for (int i = 0; i < NEW; i++) {
                if (found[i]) {
                    assertArrayEquals(Arrays.copyOfRange(absentRows, i * DIM, (i + 1) * DIM),
                            Arrays.copyOfRange(out, i * DIM, (i + 1) * DIM), "row of key " + absent[i]);
                }
            }
            return hits;
        }

        @Override
        public void close() {
            table.makeDeviceCurrent();
            cuEventDestroy(done);
            keys.close();
            rows.close();
            table.close();
        }
    }

    @Test
    void theNextLookupRunsFirstAndMissesTheKeysThenTheInstallFollowsIt() {
        try (Fixture f = new Fixture()) {
            GpuHashTable.DeferredInstall d = f.defer(true);
            assertFalse(d.settled());
            long[] batch = new long[HELD + NEW];
            System.arraycopy(f.held, 0, batch, 0, HELD);
            System.arraycopy(f.absent, 0, batch, HELD, NEW);
            int n = batch.length;
            f.table.makeDeviceCurrent();
            try (DeviceMemory k = new DeviceMemory(n * 8L, "keys"); DeviceMemory out = new DeviceMemory(n * DIM * 4L, "out");
                 DeviceMemory found = new DeviceMemory(n, "found"); DeviceMemory missed = new DeviceMemory(n * 8L, "missed");
                 DeviceMemory missedAt = new DeviceMemory(n * 4L, "missed at")) {
                cuMemcpyHtoD(k.pointer(), Pointer.to(batch), n * 8L);
                long misses = f.table.findThenDeferred(k.pointer(), n, out.pointer(), found.pointer(), missed.pointer(),
                        missedAt.pointer());
                assertTrue(d.settled(), "the lookup settles the install it ran ahead of");
                assertEquals(NEW, misses, "the lookup ran before the install");
                long[] missedKeys = new long[NEW];
                f.table.makeDeviceCurrent();
                cuMemcpyDtoH(Pointer.to(missedKeys), missed.pointer(), NEW * 8L);
                Set<Long> expected = new HashSet<>();
                Arrays.stream(f.absent).forEach(expected::add);
                Set<Long> got = new HashSet<>();
                Arrays.stream(missedKeys).forEach(got::add);
                assertEquals(expected, got);
                cuEventSynchronize(f.done);
            }
            assertEquals(NEW, f.heldOfAbsent(), "then the install ran");
            assertEquals(1, f.table.deferredQueued());
            assertEquals(0, f.table.deferredDropped());
        }
    }

    @Test
    void anyOtherCallQueuesItAheadOfItsOwnWork() {
        try (Fixture f = new Fixture()) {
            f.defer(true);
            long[] some = Arrays.copyOf(f.absent, 10);
            // Erased only if the install ran first.
            assertEquals(10, f.table.erase(some));
            assertEquals(NEW - 10, f.heldOfAbsent());
            assertEquals(HELD + NEW - 10, f.table.size());
        }
    }

    @Test
    void anInstallWhoseRowsAreNoLongerValidIsDropped() {
        try (Fixture f = new Fixture()) {
            GpuHashTable.DeferredInstall d = f.defer(false);
            assertEquals(0, f.heldOfAbsent());
            assertTrue(d.settled());
            assertEquals(1, f.table.deferredDropped());
            assertEquals(0, f.table.deferredQueued());
            assertEquals(HELD, f.table.size());
        }
    }

    @Test
    void settleForcesItAndALaterDeferralSettlesTheEarlierOne() {
        try (Fixture f = new Fixture()) {
            GpuHashTable.DeferredInstall first = f.defer(true);
            f.table.settle(first);
            assertTrue(first.settled());
            f.table.makeDeviceCurrent();
            cuEventSynchronize(f.done);
            assertEquals(NEW, f.heldOfAbsent());
            f.table.erase(f.absent);
            GpuHashTable.DeferredInstall second = f.defer(true);
            GpuHashTable.DeferredInstall third = f.defer(false);
            assertTrue(second.settled(), "one install is held back at a time");
            assertFalse(third.settled());
            f.table.settle(third);
            assertEquals(NEW, f.heldOfAbsent(), "the second was queued, the third dropped");
            assertEquals(2, f.table.deferredQueued());
            assertEquals(1, f.table.deferredDropped());
        }
    }

    @Test
    void closingTheTableDropsAnInstallStillHeldBack() {
        Fixture f = new Fixture();
        GpuHashTable.DeferredInstall d = f.defer(true);
        f.close(); // frees the install's buffers, then closes the table still holding it back
        assertTrue(d.settled());
        assertEquals(0, f.table.deferredQueued());
    }
}
