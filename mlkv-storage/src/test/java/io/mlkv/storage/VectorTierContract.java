package io.mlkv.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What every tier promises, run against each tier alone and against the composed store. A
 * subclass says how to open its implementation; the tier must hold at least
 * {@link #REQUIRED_CAPACITY} entries of dim {@link #DIM} without losing any.
 */
public abstract class VectorTierContract {
    protected static final int DIM = 8;
    protected static final int REQUIRED_CAPACITY = 4096;

    @TempDir
    protected Path dir;

    private final List<VectorTier> opened = new ArrayList<>();

    /** Opens the implementation under test, storing anything persistent under {@code dir}. */
    protected abstract VectorTier open(Path dir, int dim);

    protected final VectorTier tier() {
        VectorTier t = open(dir, DIM);
        opened.add(t);
        return t;
    }

    @AfterEach
    void closeAll() {
        for (VectorTier t : opened) {
            t.close();
        }
    }

    protected static float[] rows(long[] keys, int dim, int salt) {
        float[] v = new float[keys.length * dim];
        for (int i = 0; i < keys.length; i++) {
            for (int d = 0; d < dim; d++) {
                v[i * dim + d] = keys[i] * 0.5f + d + salt * 1000f;
            }
        }
        return v;
    }

    protected static long[] range(long from, int n) {
        long[] k = new long[n];
        for (int i = 0; i < n; i++) {
            k[i] = from + i;
        }
        return k;
    }

    @Test
    void putThenGetReturnsTheSameVectors() {
        VectorTier t = tier();
        long[] keys = {1, -7, 1L << 40, Long.MAX_VALUE, 0};
        float[] values = rows(keys, DIM, 1);
        t.multiPut(keys, values);
        float[] out = new float[values.length];
        boolean[] found = new boolean[keys.length];
        assertEquals(keys.length, t.multiGet(keys, out, found));
        assertArrayEquals(values, out);
        for (boolean f : found) {
            assertTrue(f);
        }
    }

    @Test
    void valuesRoundTripBitForBitIncludingNaNAndInfinities() {
        VectorTier t = tier();
        float[] special = new float[DIM];
        special[0] = Float.NaN;
        special[1] = Float.intBitsToFloat(0x7fc00123);
        special[2] = Float.POSITIVE_INFINITY;
        special[3] = Float.NEGATIVE_INFINITY;
        special[4] = -0.0f;
        special[5] = Float.MIN_VALUE;
        special[6] = Float.MAX_VALUE;
        special[7] = 1.5f;
        t.multiPut(new long[] {42}, special);
        float[] out = new float[DIM];
        boolean[] found = new boolean[1];
        t.multiGet(new long[] {42}, out, found);
        assertTrue(found[0]);
        for (int d = 0; d < DIM; d++) {
            assertEquals(Float.floatToRawIntBits(special[d]), Float.floatToRawIntBits(out[d]), "element " + d);
        }
    }

    @Test
    void missingKeysAreNotFoundAndTheirRowsAreLeftUntouched() {
        VectorTier t = tier();
        t.multiPut(new long[] {5}, rows(new long[] {5}, DIM, 0));
        long[] keys = {5, 6};
        float[] out = new float[2 * DIM];
        java.util.Arrays.fill(out, -3f);
        boolean[] found = new boolean[2];
        assertEquals(1, t.multiGet(keys, out, found));
        assertTrue(found[0]);
        assertFalse(found[1]);
        for (int d = DIM; d < 2 * DIM; d++) {
            assertEquals(-3f, out[d]);
        }
    }

    @Test
    void theLastDuplicateInABatchWins() {
        VectorTier t = tier();
        long[] keys = {9, 10, 9, 9};
        float[] values = rows(keys, DIM, 0);
        for (int d = 0; d < DIM; d++) {
            values[3 * DIM + d] = 777f + d;
        }
        t.multiPut(keys, values);
        float[] out = new float[DIM];
        boolean[] found = new boolean[1];
        t.multiGet(new long[] {9}, out, found);
        assertEquals(777f, out[0]);
        assertEquals(777f + DIM - 1, out[DIM - 1]);
        assertEquals(2, t.size());
    }

    @Test
    void deleteRemovesKeysAndIgnoresAbsentOnes() {
        VectorTier t = tier();
        long[] keys = range(100, 10);
        t.multiPut(keys, rows(keys, DIM, 0));
        t.multiDelete(new long[] {100, 105, 100, 5000});
        boolean[] present = new boolean[keys.length];
        assertEquals(8, t.contains(keys, present));
        assertFalse(present[0]);
        assertFalse(present[5]);
        assertTrue(present[1]);
        assertEquals(8, t.size());
    }

    @Test
    void overwriteReplacesTheWholeVector() {
        VectorTier t = tier();
        long[] keys = range(0, 100);
        t.multiPut(keys, rows(keys, DIM, 1));
        t.multiPut(keys, rows(keys, DIM, 2));
        float[] out = new float[keys.length * DIM];
        t.multiGet(keys, out, new boolean[keys.length]);
        assertArrayEquals(rows(keys, DIM, 2), out);
        assertEquals(100, t.size());
    }

    @Test
    void sizeAndForEachSeeEveryEntryExactlyOnce() {
        VectorTier t = tier();
        long[] keys = range(-1000, REQUIRED_CAPACITY / 2);
        float[] values = rows(keys, DIM, 3);
        t.multiPut(keys, values);
        assertEquals(keys.length, t.size());
        Map<Long, float[]> seen = new HashMap<>();
        t.forEach((key, vector) -> {
            if (seen.put(key, java.util.Arrays.copyOf(vector, DIM)) != null) {
                fail("key " + key + " visited twice");
            }
        });
        assertEquals(keys.length, seen.size());
        for (int i = 0; i < keys.length; i++) {
            assertArrayEquals(java.util.Arrays.copyOfRange(values, i * DIM, (i + 1) * DIM),
                    seen.get(keys[i]), "key " + keys[i]);
        }
    }

    @Test
    void emptyBatchesAreAccepted() {
        VectorTier t = tier();
        t.multiPut(new long[0], new float[0]);
        assertEquals(0, t.multiGet(new long[0], new float[0], new boolean[0]));
        t.multiDelete(new long[0]);
        assertEquals(0, t.size());
    }

    @Test
    void badArgumentsAreRejectedAndChangeNothing() {
        VectorTier t = tier();
        long[] keys = {1, 2};
        assertThrows(IllegalArgumentException.class, () -> t.multiPut(null, new float[0]));
        assertThrows(IllegalArgumentException.class, () -> t.multiPut(keys, null));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> t.multiPut(keys, new float[2 * DIM - 1]));
        assertTrue(e.getMessage().contains("keys.length * dim"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> t.multiGet(keys, new float[DIM], new boolean[2]));
        assertThrows(IllegalArgumentException.class, () -> t.multiGet(keys, new float[2 * DIM], new boolean[1]));
        assertThrows(IllegalArgumentException.class, () -> t.multiGet(keys, null, new boolean[2]));
        assertThrows(IllegalArgumentException.class, () -> t.contains(keys, new boolean[1]));
        assertThrows(IllegalArgumentException.class, () -> t.multiDelete(null));
        assertEquals(0, t.size());
    }

    @Test
    void operationsAfterCloseFailAndCloseIsIdempotent() {
        VectorTier t = tier();
        t.multiPut(new long[] {1}, new float[DIM]);
        t.close();
        t.close();
        assertThrows(IllegalStateException.class, () -> t.multiGet(new long[] {1}, new float[DIM], new boolean[1]));
        assertThrows(IllegalStateException.class, () -> t.multiPut(new long[] {1}, new float[DIM]));
        assertThrows(IllegalStateException.class, t::size);
    }

    @Test
    void concurrentWritersNeverProduceATornVector() throws Exception {
        VectorTier t = tier();
        int writers = 3;
        long[] keys = range(0, 64);
        AtomicBoolean stop = new AtomicBoolean();
        ExecutorService pool = Executors.newFixedThreadPool(writers + 1);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int w = 0; w < writers; w++) {
                final float mark = w + 1;
                futures.add(pool.submit(() -> {
                    float[] v = new float[keys.length * DIM];
                    java.util.Arrays.fill(v, mark);
                    for (int round = 0; round < 200; round++) {
                        t.multiPut(keys, v);
                    }
                    return null;
                }));
            }
            Future<?> reader = pool.submit(() -> {
                float[] out = new float[keys.length * DIM];
                boolean[] found = new boolean[keys.length];
                while (!stop.get()) {
                    t.multiGet(keys, out, found);
                    for (int i = 0; i < keys.length; i++) {
                        if (!found[i]) {
                            continue;
                        }
                        float first = out[i * DIM];
                        for (int d = 1; d < DIM; d++) {
                            if (out[i * DIM + d] != first) {
                                fail("torn vector for key " + keys[i] + ": " + first + " and " + out[i * DIM + d]);
                            }
                        }
                    }
                }
                return null;
            });
            for (Future<?> f : futures) {
                f.get(60, TimeUnit.SECONDS);
            }
            stop.set(true);
            reader.get(60, TimeUnit.SECONDS);
        } finally {
            stop.set(true);
            pool.shutdownNow();
        }
        float[] out = new float[keys.length * DIM];
        assertEquals(keys.length, t.multiGet(keys, out, new boolean[keys.length]));
        for (float f : out) {
            assertTrue(f >= 1 && f <= writers, "value " + f + " was never written");
        }
    }
}
