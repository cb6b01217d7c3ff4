package io.mlkv.core;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.table.RequiresGpu;
import io.mlkv.storage.dram.DramTier;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import jcuda.Pointer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Device-pointer calls of several threads at once, which the store combines into groups: each
 * caller gets exactly its own results (its count, its found flags, its rows, and the rows of its
 * missing keys left as it had them), and concurrent accumulates of the same keys add every
 * delta. Seeds are printed on failure.
 */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class GpuCombinedCallsTest {
    private static final int DIM = 8;
    private static final int CALLERS = 6;

    @TempDir
    Path dir;

    private static MlkvStore open(Path d) {
        return MlkvStore.builder().dim(DIM).directory(d).dramCapacityBytes(4096 * DramTier.bucketBytes(DIM))
                .gpu(GpuMode.ON).hbmCapacity(8192).hbmWriteBack(true).build();
    }

    private static long seed() {
        return Long.getLong("mlkv.seed", System.nanoTime());
    }

    /** Runs {@code body(caller)} on {@link #CALLERS} threads started together; rethrows the first failure. */
    private static void together(CallerBody body) throws Exception {
        CyclicBarrier start = new CyclicBarrier(CALLERS);
        ExecutorService pool = Executors.newFixedThreadPool(CALLERS);
        try {
            List<Future<?>> tasks = new ArrayList<>();
            for (int c = 0; c < CALLERS; c++) {
                int caller = c;
                tasks.add(pool.submit(() -> {
                    start.await();
                    body.run(caller);
                    return null;
                }));
            }
            for (Future<?> f : tasks) {
                f.get(180, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private interface CallerBody {
        void run(int caller) throws Exception;
    }

    @Test
    void concurrentDeviceReadsEachGetTheirOwnCountsFlagsAndRowsWithMissingRowsLeftAsTheyWere() throws Exception {
        long seed = seed();
        int present = 20_000;
        try (MlkvStore s = open(dir.resolve("reads"))) {
            long[] keys = new long[present];
            float[] rows = new float[present * DIM];
            for (int k = 0; k < present; k++) {
                keys[k] = k;
                Arrays.fill(rows, k * DIM, (k + 1) * DIM, k);
            }
            s.multiPut(keys, rows);
            together(caller -> {
                SplittableRandom r = new SplittableRandom(seed + caller);
                int n = 500 + 100 * caller;
                s.makeGpuCurrent();
                try (DeviceMemory dk = new DeviceMemory(n * 8L, "test keys");
                     DeviceMemory dout = new DeviceMemory(n * DIM * 4L, "test rows");
                     DeviceMemory dfound = new DeviceMemory(n, "test found")) {
                    for (int call = 0; call < 150; call++) {
                        long[] k = new long[n];
                        int expected = 0;
                        for (int i = 0; i < n; i++) {
                            boolean in = r.nextInt(4) != 0;
                            k[i] = in ? r.nextInt(present) : 1_000_000L + r.nextInt(1_000_000);
                            expected += in ? 1 : 0;
                        }
                        float sentinel = -1 - caller * 1000 - call;
                        float[] out = new float[n * DIM];
                        Arrays.fill(out, sentinel);
                        s.makeGpuCurrent();
                        Cuda.check(cuMemcpyHtoD(dk.pointer(), Pointer.to(k), n * 8L), "cuMemcpyHtoD (keys)");
                        Cuda.check(cuMemcpyHtoD(dout.pointer(), Pointer.to(out), n * DIM * 4L), "cuMemcpyHtoD (rows)");
                        long got = s.multiGet(dk.pointer(), n, dout.pointer(), dfound.pointer());
                        byte[] found = new byte[n];
                        Cuda.check(cuMemcpyDtoH(Pointer.to(out), dout.pointer(), n * DIM * 4L), "cuMemcpyDtoH (rows)");
                        Cuda.check(cuMemcpyDtoH(Pointer.to(found), dfound.pointer(), n), "cuMemcpyDtoH (found)");
                        String where = "caller " + caller + " call " + call + ", seed " + seed;
                        assertEquals(expected, got, where + ": count");
                        for (int i = 0; i < n; i++) {
                            boolean in = k[i] < present;
                            assertEquals(in ? 1 : 0, found[i], where + ": found of key " + k[i]);
                            for (int d = 0; d < DIM; d++) {
                                assertEquals(in ? (float) k[i] : sentinel, out[i * DIM + d], where + ": row of key " + k[i]);
                            }
                        }
                    }
                }
            });
            long[] counts = s.combinedDeviceCalls();
            assertTrue(counts[0] > 0, "reads ran in groups: " + Arrays.toString(counts));
        }
    }

    @Test
    void concurrentDeviceAccumulatesOfTheSameKeysAddEveryDeltaThroughEvictionsAndReopen() throws Exception {
        long seed = seed();
        int shared = 3_000;
        int steps = 80;
        Path d = dir.resolve("accumulates");
        try (MlkvStore s = open(d)) {
            together(caller -> {
                SplittableRandom r = new SplittableRandom(seed + caller);
                int n = 2_000;
                s.makeGpuCurrent();
                try (DeviceMemory dk = new DeviceMemory(n * 8L, "test keys");
                     DeviceMemory dd = new DeviceMemory(n * DIM * 4L, "test deltas")) {
                    float[] deltas = new float[n * DIM];
                    Arrays.fill(deltas, 0.25f);
                    Cuda.check(cuMemcpyHtoD(dd.pointer(), Pointer.to(deltas), deltas.length * 4L), "cuMemcpyHtoD (deltas)");
                    for (int step = 0; step < steps; step++) {
                        // Every caller adds 0.25 to each of the shared keys once a step (in a shuffled
                        // order, some positions of the batch taken by its own churn keys, which evict).
                        long[] k = new long[n];
                        int[] order = shuffled(shared, r);
                        int at = 0;
                        for (int i = 0; i < n; i++) {
                            k[i] = i < 1_000 ? 10_000_000L * (caller + 1) + r.nextInt(200_000) : order[at++];
                        }
                        s.makeGpuCurrent();
                        Cuda.check(cuMemcpyHtoD(dk.pointer(), Pointer.to(k), n * 8L), "cuMemcpyHtoD (keys)");
                        s.accumulate(dk.pointer(), n, dd.pointer());
                        // The rest of the shared keys, in a second call.
                        long[] rest = new long[shared - at];
                        for (int i = 0; i < rest.length; i++) {
                            rest[i] = order[at + i];
                        }
                        Cuda.check(cuMemcpyHtoD(dk.pointer(), Pointer.to(rest), rest.length * 8L), "cuMemcpyHtoD (keys)");
                        s.accumulate(dk.pointer(), rest.length, dd.pointer());
                    }
                }
            });
            assertTrue(s.combinedDeviceCalls()[8] > 0, "accumulates ran in groups: " + Arrays.toString(s.combinedDeviceCalls()));
            assertShared(s, shared, CALLERS * steps * 0.25f, "before close, seed " + seed);
        }
        try (MlkvStore s = MlkvStore.builder().dim(DIM).directory(d).gpu(GpuMode.OFF).build()) {
            assertShared(s, shared, CALLERS * steps * 0.25f, "after reopen without a GPU, seed " + seed);
        }
    }

    private static int[] shuffled(int n, SplittableRandom r) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        return a;
    }

    private static void assertShared(MlkvStore s, int shared, float expected, String where) {
        long[] keys = new long[shared];
        for (int i = 0; i < shared; i++) {
            keys[i] = i;
        }
        float[] out = new float[shared * DIM];
        assertEquals(shared, s.multiGet(keys, out, new boolean[shared]), where);
        for (int i = 0; i < shared * DIM; i++) {
            assertEquals(expected, out[i], where + ": key " + i / DIM);
        }
    }
}
