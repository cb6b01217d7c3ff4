package io.mlkv.gpu.table;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** A table's entries to files straight from HBM and back into another table. */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class TableSnapshotTest {
    private static final long SEED = Long.getLong("mlkv.seed", System.nanoTime());
    private static final int DIM = 16;

    @TempDir
    Path dir;

    @Test
    void aSnapshotLoadsIntoAnotherTableWithEveryEntryAndValue() throws Exception {
        int n = 300_000;
        long[] keys = new long[n];
        float[] values = new float[n * DIM];
        SplittableRandom r = new SplittableRandom(SEED);
        java.util.Set<Long> seen = new java.util.HashSet<>();
        for (int i = 0; i < n; i++) {
            long k;
            do {
                k = r.nextLong();
            } while (k == io.mlkv.storage.ReservedKeys.EMPTY || k == io.mlkv.storage.ReservedKeys.LOCKED || !seen.add(k));
            keys[i] = k;
            for (int d = 0; d < DIM; d++) {
                values[i * DIM + d] = r.nextFloat();
            }
        }
        try (FileIo io = FileIo.open(FileIo.Mode.AUTO);
             GpuHashTable a = GpuHashTable.create(DIM, 1 << 20, ScoreMode.LRU, 1 << 16);
             GpuHashTable b = GpuHashTable.create(DIM, 1 << 20, ScoreMode.LRU, 1 << 16)) {
            a.insertOrAssign(keys, values, null);
            assertEquals(n, a.size(), "seed " + SEED);
            assertEquals(n, TableSnapshot.write(a, dir.resolve("snap"), io));
            assertEquals(n, TableSnapshot.load(b, dir.resolve("snap"), io));
            assertEquals(n, b.size(), "seed " + SEED);
            float[] out = new float[n * DIM];
            boolean[] found = new boolean[n];
            assertEquals(n, b.find(keys, out, found), "seed " + SEED);
            assertArrayEquals(values, out, "seed " + SEED);
            System.out.println("TableSnapshotTest: " + n + " entries via " + io.lastPath());
        }
    }

    @Test
    void aTruncatedSnapshotIsRefusedAndLoadsNothing() throws Exception {
        try (FileIo io = FileIo.open(FileIo.Mode.AUTO);
             GpuHashTable a = GpuHashTable.create(DIM, 1 << 16, ScoreMode.LRU, 1 << 12);
             GpuHashTable b = GpuHashTable.create(DIM, 1 << 16, ScoreMode.LRU, 1 << 12)) {
            long[] keys = new long[1000];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = i + 1;
            }
            a.insertOrAssign(keys, new float[keys.length * DIM], null);
            TableSnapshot.write(a, dir.resolve("snap"), io);
            try (FileChannel ch = FileChannel.open(dir.resolve("snap/values.bin"), StandardOpenOption.WRITE)) {
                ch.truncate(ch.size() - 4);
            }
            MlkvException e = assertThrows(MlkvException.class, () -> TableSnapshot.load(b, dir.resolve("snap"), io));
            assertEquals(StatusCode.CORRUPTION, e.status());
            assertEquals(0, b.size());
        }
    }
}
