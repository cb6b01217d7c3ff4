package io.mlkv.storage.dram;

import static io.mlkv.storage.dram.OffHeapMemory.UNSAFE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * A writer that follows {@link DramTier#beginDeviceChanges}'s protocol on the raw native layout,
 * without the tier's locks (as the GPU kernels {@code mlkv_dram_write_*} do), racing CPU
 * readers: no reader ever copies a torn row, every write lands with its dirty flag and a new
 * bucket version, and the changes are counted.
 */
class DeviceWriterProtocolTest {
    private static final int DIM = 32;
    private static final int KEYS = 64;
    private static final long SEED = Long.getLong("test.seed", System.nanoTime());

    /** Writes {@code value} into every element of {@code key}'s row as the device writer does. */
    private static void deviceWrite(DramTier.NativeLayout l, long key, float value) {
        long h = key * 0x9E3779B97F4A7C15L;
        h ^= h >>> 29;
        long bucket = ((h >>> 32) * l.buckets()) >>> 32;
        long slot = -1;
        for (long s = bucket * DramTier.BUCKET_SLOTS; s < (bucket + 1) * DramTier.BUCKET_SLOTS; s++) {
            if (UNSAFE.getLong(l.keysAddress() + s * 8) == key) {
                slot = s;
            }
        }
        assertTrue(slot >= 0, "key " + key + " is held");
        // Claim: the sequence count and the version are read together (one PCIe request on the
        // GPU), the count made odd; the version changes only at the release.
        long seqAddr = l.seqAddress(bucket);
        long vAddr = l.versionAddress(bucket);
        long seq = UNSAFE.getLongVolatile(null, seqAddr);
        long version = UNSAFE.getLongVolatile(null, vAddr);
        UNSAFE.putLongVolatile(null, seqAddr, seq + 1);
        UNSAFE.storeFence();
        for (int d = 0; d < l.dim(); d++) {
            UNSAFE.putFloat(l.valuesAddress() + (slot * l.dim() + d) * 4, value);
            if (d == l.dim() / 2) {
                Thread.yield(); // give a reader the chance to copy half a row
            }
        }
        UNSAFE.putByte(l.flagsAddress() + slot, (byte) 3);
        UNSAFE.storeFence();
        UNSAFE.putLongVolatile(null, seqAddr, seq + 2);
        UNSAFE.putLongVolatile(null, vAddr, version + 1);
    }

    @Test
    void readersNeverCopyARowADeviceWriterIsHalfwayThrough() throws Exception {
        try (DramTier tier = new DramTier(DIM, 1 << 20, "lru")) {
            float[] row = new float[DIM];
            for (long k = 0; k < KEYS; k++) {
                java.util.Arrays.fill(row, 0f);
                assertEquals(DramTier.PutResult.INSERTED, tier.put(k, row, 0, false, DramTier.ANY_VERSION, 0, (a, b, c) -> { }));
            }
            DramTier.NativeLayout layout = tier.nativeLayout();
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong torn = new AtomicLong();
            AtomicLong reads = new AtomicLong();
            ExecutorService pool = Executors.newFixedThreadPool(3);
            List<Future<?>> readers = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                long seed = SEED + r;
                readers.add(pool.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(seed);
                    float[] out = new float[DIM];
                    while (!stop.get()) {
                        long key = rnd.nextInt(KEYS);
                        assertEquals(DramTier.HIT, tier.getOrVersion(key, out, 0, 1));
                        for (int d = 1; d < DIM; d++) {
                            if (out[d] != out[0]) {
                                torn.incrementAndGet();
                                break;
                            }
                        }
                        reads.incrementAndGet();
                    }
                    return null;
                }));
            }
            long changesBefore = tier.changes();
            long versionBefore = tier.version(5);
            int writes = 20_000;
            Future<?> writer = pool.submit(() -> {
                SplittableRandom rnd = new SplittableRandom(SEED ^ 0x5DEECE66DL);
                for (int w = 1; w <= writes; w++) {
                    long key = w % 16 == 0 ? 5 : rnd.nextInt(KEYS);
                    tier.beginDeviceChanges(1);
                    deviceWrite(layout, key, w);
                }
                return null;
            });
            writer.get(60, TimeUnit.SECONDS);
            stop.set(true);
            for (Future<?> f : readers) {
                f.get(60, TimeUnit.SECONDS);
            }
            pool.shutdown();
            assertEquals(0, torn.get(), "torn rows among " + reads.get() + " reads (seed " + SEED + ")");
            assertTrue(reads.get() > 0);
            assertEquals(changesBefore + writes, tier.changes());
            assertTrue(tier.version(5) > versionBefore, "the bucket's version changed");
            float[] out = new float[DIM];
            tier.getOrVersion(5, out, 0, 2);
            assertEquals((float) writes, out[0], "the last write of key 5 (write " + writes + ") is its value");
            List<Long> dirty = new ArrayList<>();
            tier.forEachDirty(0, tier.buckets(), (k, v) -> dirty.add(k));
            assertTrue(dirty.contains(5L), "a device write leaves the key dirty");
        }
    }
}
