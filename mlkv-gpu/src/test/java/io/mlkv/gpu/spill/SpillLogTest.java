package io.mlkv.gpu.spill;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.gpu.cufile.HostRegion;
import io.mlkv.gpu.cufile.Region;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The spill log over the POSIX path with host memory in place of device memory: runs on every machine. */
class SpillLogTest {
    private static final long SEED = Long.getLong("mlkv.seed", System.nanoTime());
    private static final int DIM = 8;

    @TempDir
    Path dir;

    /** Row of {@code key} in generation {@code gen}: every float derived from both, so a row from another key or generation shows. */
    private static float value(long key, int gen, int d) {
        return (float) (key * 31 + gen * 7 + d);
    }

    private static HostRegion rows(long[] keys, int gen) {
        ByteBuffer b = ByteBuffer.allocateDirect(keys.length * DIM * 4).order(ByteOrder.nativeOrder());
        for (long k : keys) {
            for (int d = 0; d < DIM; d++) {
                b.putFloat(value(k, gen, d));
            }
        }
        return new HostRegion(b);
    }

    private static boolean[] all(int n) {
        boolean[] b = new boolean[n];
        java.util.Arrays.fill(b, true);
        return b;
    }

    /** Reads {@code keys} back; returns the rows found (valid) in a buffer, row i at i, and sets found[i]. */
    private static ByteBuffer readBack(SpillLog log, long[] keys, boolean[] found) {
        SpillLog.Hits inLog = log.lookup(keys, null, keys.length);
        int hits = inLog.count();
        int[] which = inLog.at();
        long[] hitPos = inLog.positions();
        ByteBuffer target = ByteBuffer.allocateDirect(Math.max(1, hits) * DIM * 4).order(ByteOrder.nativeOrder());
        boolean[] valid = new boolean[hits];
        log.read(hitPos, hits, new HostRegion(target), valid);
        ByteBuffer out = ByteBuffer.allocate(keys.length * DIM * 4).order(ByteOrder.nativeOrder());
        for (int h = 0; h < hits; h++) {
            found[which[h]] = valid[h];
            for (int d = 0; d < DIM; d++) {
                out.putFloat((which[h] * DIM + d) * 4, target.getFloat((h * DIM + d) * 4));
            }
        }
        return out;
    }

    @Test
    void rowsComeBackUnderTheirKeysAndUnkeptRowsAreNotIndexed() {
        try (SpillLog log = SpillLog.create(dir.resolve("spill"), DIM, 1000, FileIo.Mode.POSIX)) {
            long[] keys = {5, 9, -3, 1L << 40, 77};
            boolean[] keep = {true, true, false, true, true};
            log.append(keys, keep, keys.length, rows(keys, 1));
            assertEquals(4, log.entries());
            boolean[] found = new boolean[keys.length];
            ByteBuffer back = readBack(log, keys, found);
            for (int i = 0; i < keys.length; i++) {
                assertEquals(keep[i], found[i], "key " + keys[i]);
                if (found[i]) {
                    for (int d = 0; d < DIM; d++) {
                        assertEquals(value(keys[i], 1, d), back.getFloat((i * DIM + d) * 4));
                    }
                }
            }
            assertEquals("posix", log.path());
        }
    }

    /** A lookup of some of a batch's keys reports each hit by its index in the batch. */
    @Test
    void aLookupThroughAnIndexArrayNamesHitsByTheirBatchIndex() {
        try (SpillLog log = SpillLog.create(dir.resolve("spill"), DIM, 100, FileIo.Mode.POSIX)) {
            long[] held = {40, 41, 42};
            log.append(held, all(3), 3, rows(held, 1));
            long[] batch = {7, 42, 8, 40, 41, 9};
            SpillLog.Hits hits = log.lookup(batch, new int[] {5, 3, 1, 0}, 4);
            assertEquals(2, hits.count());
            assertArrayEquals(new int[] {3, 1}, java.util.Arrays.copyOf(hits.at(), hits.count()), "keys 40 and 42, in the order asked");
            assertEquals(log.lookup(new long[] {40, 42}, null, 2).positions()[1], hits.positions()[1]);
        }
    }

    @Test
    void invalidatedKeysAreMissesAndAReappendedKeyPointsAtItsNewestRow() {
        try (SpillLog log = SpillLog.create(dir.resolve("spill"), DIM, 100, FileIo.Mode.POSIX)) {
            long[] keys = {1, 2, 3};
            log.append(keys, all(3), 3, rows(keys, 1));
            log.invalidate(new long[] {2}, 1);
            log.append(new long[] {3}, all(1), 1, rows(new long[] {3}, 2));
            boolean[] found = new boolean[3];
            ByteBuffer back = readBack(log, keys, found);
            assertTrue(found[0]);
            assertTrue(!found[1], "invalidated key 2 must miss");
            assertTrue(found[2]);
            assertEquals(value(1, 1, 0), back.getFloat(0));
            assertEquals(value(3, 2, 5), back.getFloat((2 * DIM + 5) * 4), "key 3 must read its second row");
        }
    }

    @Test
    void whenTheRingWrapsTheOldestRowsLeaveAndTheNewestStay() {
        int slots = 10;
        try (SpillLog log = SpillLog.create(dir.resolve("spill"), DIM, slots, FileIo.Mode.POSIX)) {
            long next = 100;
            for (int batch : new int[] {4, 4, 4, 7, 25, 3}) {
                long[] keys = new long[batch];
                for (int i = 0; i < batch; i++) {
                    keys[i] = next++;
                }
                log.append(keys, all(batch), batch, rows(keys, 0));
                assertTrue(log.entries() <= slots, "entries " + log.entries() + " exceed " + slots);
            }
            long[] everything = new long[(int) (next - 100)];
            for (int i = 0; i < everything.length; i++) {
                everything[i] = 100 + i;
            }
            boolean[] found = new boolean[everything.length];
            ByteBuffer back = readBack(log, everything, found);
            for (int i = 0; i < everything.length; i++) {
                boolean newest = i >= everything.length - slots;
                assertEquals(newest, found[i], "key " + everything[i]);
                if (found[i]) {
                    assertEquals(value(everything[i], 0, 3), back.getFloat((i * DIM + 3) * 4));
                }
            }
            assertEquals(slots, log.entries());
        }
    }

    @Test
    void readersNeverTakeARowTheRingOverwroteWhileTheyRead() throws Exception {
        int slots = 256;
        try (SpillLog log = SpillLog.create(dir.resolve("spill"), DIM, slots, FileIo.Mode.POSIX)) {
            AtomicBoolean stop = new AtomicBoolean();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            AtomicLong validReads = new AtomicLong();
            Thread[] readers = new Thread[3];
            for (int t = 0; t < readers.length; t++) {
                long seed = SEED + t;
                readers[t] = new Thread(() -> {
                    SplittableRandom r = new SplittableRandom(seed);
                    try {
                        while (!stop.get()) {
                            long[] keys = new long[64];
                            for (int i = 0; i < keys.length; i++) {
                                keys[i] = r.nextInt(2000);
                            }
                            boolean[] found = new boolean[keys.length];
                            ByteBuffer back = readBack(log, keys, found);
                            for (int i = 0; i < keys.length; i++) {
                                if (found[i]) {
                                    validReads.incrementAndGet();
                                    for (int d = 0; d < DIM; d++) {
                                        assertEquals(value(keys[i], 0, d), back.getFloat((i * DIM + d) * 4),
                                                "seed " + SEED + ": key " + keys[i] + " read another key's row");
                                    }
                                }
                            }
                        }
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    }
                });
                readers[t].start();
            }
            SplittableRandom w = new SplittableRandom(SEED);
            for (int round = 0; round < 3000 && failure.get() == null; round++) {
                long[] keys = new long[1 + w.nextInt(40)];
                for (int i = 0; i < keys.length; i++) {
                    keys[i] = w.nextInt(2000);
                }
                log.append(keys, all(keys.length), keys.length, rows(keys, 0));
            }
            stop.set(true);
            for (Thread t : readers) {
                t.join();
            }
            if (failure.get() != null) {
                throw new AssertionError("seed " + SEED, failure.get());
            }
            assertTrue(validReads.get() > 0, "seed " + SEED + ": no reader ever found a row");
        }
    }

    @Test
    void askingForCuFileWhereItCannotWorkNamesTheReason() {
        // On machines with cuFile and a file system it accepts this opens; elsewhere it must say why.
        try (SpillLog log = SpillLog.create(dir.resolve("spill"), DIM, 10, FileIo.Mode.CUFILE)) {
            assertEquals("cufile", log.path());
        } catch (MlkvException e) {
            assertEquals(StatusCode.DEVICE_ERROR, e.status());
            assertTrue(e.getMessage().contains("cuFile") || e.getMessage().contains("cufile"), e.getMessage());
        }
        try (SpillLog log = SpillLog.create(dir.resolve("auto"), DIM, 10, FileIo.Mode.AUTO)) {
            assertTrue(log.path().equals("cufile") || log.cufileUnavailable() != null);
        }
    }

    /** A region whose copies fail: the POSIX path copies through a bounce buffer, so the append fails mid-way. */
    private static Region failing(int bytes) {
        return new Region() {
            @Override
            public long bytes() {
                return bytes;
            }

            @Override
            public void copyOut(long offset, ByteBuffer dst, int len) {
                throw new MlkvException(StatusCode.DEVICE_ERROR, "copyOut", "injected failure");
            }

            @Override
            public void copyIn(ByteBuffer src, long offset, int len) {
                throw new MlkvException(StatusCode.DEVICE_ERROR, "copyIn", "injected failure");
            }

            @Override
            public Bounce bounce(int len) {
                return new HostRegion(ByteBuffer.allocateDirect(len)).bounce(len);
            }
        };
    }

    @Test
    void aFailedAppendIndexesNothingAndLeavesTheRestReadable() {
        int slots = 10;
        try (SpillLog log = SpillLog.create(dir.resolve("spill"), DIM, slots, FileIo.Mode.POSIX)) {
            long[] first = {1, 2, 3, 4, 5, 6, 7, 8};
            log.append(first, all(8), 8, rows(first, 0));
            long[] next = {20, 21, 22, 23, 24}; // would overwrite the slots of keys 1, 2 and 3
            assertThrows(MlkvException.class, () -> log.append(next, all(5), 5, failing(5 * DIM * 4)));
            boolean[] found = new boolean[first.length + next.length];
            long[] all = new long[found.length];
            System.arraycopy(first, 0, all, 0, first.length);
            System.arraycopy(next, 0, all, first.length, next.length);
            ByteBuffer back = readBack(log, all, found);
            for (int i = 0; i < all.length; i++) {
                boolean expected = i >= 3 && i < first.length; // keys 4..8 survive; 1..3 dropped; 20..24 never indexed
                assertEquals(expected, found[i], "key " + all[i]);
                if (found[i]) {
                    assertEquals(value(all[i], 0, 2), back.getFloat((i * DIM + 2) * 4));
                }
            }
            log.append(next, all(5), 5, rows(next, 1)); // the log goes on working
            boolean[] again = new boolean[next.length];
            ByteBuffer b2 = readBack(log, next, again);
            for (int i = 0; i < next.length; i++) {
                assertTrue(again[i], "key " + next[i]);
                assertEquals(value(next[i], 1, 0), b2.getFloat(i * DIM * 4));
            }
        }
    }

    @Test
    void badSizesAreRefusedWithTheSetting() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SpillLog.create(dir.resolve("x"), DIM, 0, FileIo.Mode.POSIX));
        assertTrue(e.getMessage().contains("slots"), e.getMessage());
    }
}
