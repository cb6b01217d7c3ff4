package io.mlkv.gpu.spill;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cufile.DeviceRegion;
import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.gpu.table.RequiresGpu;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** The spill log between device memory and its file: over cuFile where the host allows it, over POSIX always. */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class DeviceSpillLogTest {
    private static final long SEED = Long.getLong("mlkv.seed", System.nanoTime());
    private static final int DIM = 64;
    private static final int ROWS = 5000;
    private static final int SLOTS = 8192;

    @TempDir
    Path dir;

    /**
     * Appends 3 batches of random rows from device memory (the ring wraps in the third), then
     * reads a shuffled selection of the keys back into device memory: what the index still
     * holds comes back bit for bit, what the ring overwrote is a miss.
     */
    private void roundTrip(FileIo.Mode mode, String expectedPath) {
        try (CudaDevice dev = CudaDevice.open(0)) {
            dev.makeCurrent();
            roundTripOnCurrentDevice(mode, expectedPath);
        }
    }

    private void roundTripOnCurrentDevice(FileIo.Mode mode, String expectedPath) {
        try (SpillLog log = SpillLog.create(dir.resolve(mode + ".log"), DIM, SLOTS, mode);
             DeviceMemory src = new DeviceMemory((long) ROWS * DIM * 4, "spill test rows");
             DeviceMemory dst = new DeviceMemory((long) ROWS * DIM * 4, "spill test read-back")) {
            assertEquals(expectedPath, log.path(), "path (cuFile unavailable: " + log.cufileUnavailable() + ")");
            SplittableRandom r = new SplittableRandom(SEED);
            float[][] written = new float[3][];
            long[][] keys = new long[3][];
            for (int batch = 0; batch < 3; batch++) {
                keys[batch] = new long[ROWS];
                written[batch] = new float[ROWS * DIM];
                for (int i = 0; i < ROWS; i++) {
                    keys[batch][i] = (long) batch * ROWS + i;
                }
                for (int i = 0; i < written[batch].length; i++) {
                    written[batch][i] = (float) r.nextDouble();
                }
                DeviceRegion region = new DeviceRegion(src.pointer(), (long) ROWS * DIM * 4);
                ByteBuffer host = ByteBuffer.allocateDirect(ROWS * DIM * 4).order(ByteOrder.nativeOrder());
                host.asFloatBuffer().put(written[batch]);
                region.copyIn(host, 0, ROWS * DIM * 4);
                boolean[] keep = new boolean[ROWS];
                java.util.Arrays.fill(keep, true);
                log.append(keys[batch], keep, ROWS, region);
            }
            // 15000 rows through 8192 slots: the last 8192 are held.
            long[] want = new long[ROWS];
            for (int i = 0; i < ROWS; i++) {
                want[i] = r.nextInt(3 * ROWS);
            }
            SpillLog.Hits inLog = log.lookup(want, null, ROWS);
            int hits = inLog.count();
            long[] hitPositions = inLog.positions();
            int[] hitAt = inLog.at();
            boolean[] hit = new boolean[ROWS];
            for (int h = 0; h < hits; h++) {
                hit[hitAt[h]] = true;
            }
            for (int i = 0; i < ROWS; i++) {
                assertEquals(want[i] >= 3L * ROWS - SLOTS, hit[i], "seed " + SEED + ": key " + want[i]);
            }
            boolean[] valid = new boolean[hits];
            DeviceRegion target = new DeviceRegion(dst.pointer(), (long) hits * DIM * 4);
            assertEquals(hits, log.read(hitPositions, hits, target, valid));
            ByteBuffer back = ByteBuffer.allocateDirect(Math.max(1, hits) * DIM * 4).order(ByteOrder.nativeOrder());
            target.copyOut(0, back, hits * DIM * 4);
            for (int h = 0; h < hits; h++) {
                long key = want[hitAt[h]];
                int batch = (int) (key / ROWS);
                int row = (int) (key % ROWS);
                float[] expected = java.util.Arrays.copyOfRange(written[batch], row * DIM, (row + 1) * DIM);
                float[] actual = new float[DIM];
                back.asFloatBuffer().get(h * DIM, actual);
                assertArrayEquals(expected, actual, "seed " + SEED + ": row of key " + key);
            }
            assertTrue(hits > 1000, "hits " + hits);
        }
    }

    @Test
    void rowsRoundTripBetweenDeviceMemoryAndTheLogOverPosix() {
        roundTrip(FileIo.Mode.POSIX, "posix");
    }

    @Test
    void rowsRoundTripOverTheAutomaticPathAndItSaysWhichOneItTook() {
        try (CudaDevice dev = CudaDevice.open(0)) {
            dev.makeCurrent();
            String expected;
            try (SpillLog probe = SpillLog.create(dir.resolve("probe.log"), DIM, 1, FileIo.Mode.AUTO)) {
                expected = probe.cufileUnavailable() == null ? "cufile" : "posix";
                System.out.println("spill log path on this host: " + expected
                        + (probe.cufileUnavailable() == null ? "" : " (" + probe.cufileUnavailable() + ")"));
            }
            roundTripOnCurrentDevice(FileIo.Mode.AUTO, expected);
        }
    }
}
