package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.dram.DramTier;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {
    private static final int DIM = 4;

    @TempDir
    Path dir;

    private MlkvStore open(Path d) {
        return MlkvStore.builder().dim(DIM).directory(d).dramCapacityBytes(4 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build();
    }

    private static float[] rows(long[] keys, float salt) {
        float[] v = new float[keys.length * DIM];
        for (int i = 0; i < keys.length; i++) {
            Arrays.fill(v, i * DIM, (i + 1) * DIM, keys[i] + salt);
        }
        return v;
    }

    private static long[] range(int n) {
        long[] k = new long[n];
        for (int i = 0; i < n; i++) {
            k[i] = i;
        }
        return k;
    }

    @Test
    void aRestoredCheckpointHoldsExactlyWhatTheStoreHeldWhenItWasTaken() {
        long[] keys = range(3000);
        try (MlkvStore s = open(dir.resolve("live"))) {
            s.multiPut(keys, rows(keys, 0.5f));
            s.checkpoint(dir.resolve("cp"));
            s.multiPut(Arrays.copyOf(keys, 100), rows(Arrays.copyOf(keys, 100), 9f));
            s.multiDelete(new long[] {2000, 2001});
            s.put(99_999, new float[DIM]);
        }
        MlkvStore.restoreCheckpoint(dir.resolve("cp"), dir.resolve("restored"));
        try (MlkvStore r = open(dir.resolve("restored"))) {
            assertEquals(keys.length, r.size());
            float[] out = new float[keys.length * DIM];
            assertEquals(keys.length, r.multiGet(keys, out, new boolean[keys.length]));
            assertArrayEquals(rows(keys, 0.5f), out);
            assertFalse(r.get(99_999, new float[DIM]));
        }
        try (MlkvStore live = open(dir.resolve("live"))) {
            assertEquals(keys.length - 2 + 1, live.size());
        }
    }

    @Test
    void hbmEntriesOfACheckpointAreDroppedByAStoreWithoutAGpuSoTheyCannotGoStale() throws IOException {
        Path d = dir.resolve("restored-like");
        try (MlkvStore s = open(d)) {
            s.put(1, new float[s.dim()]);
        }
        Path hbm = Files.createDirectories(d.resolve("hbm"));
        Files.writeString(hbm.resolve("table.properties"), "dim=4\nentries=0\n");
        Files.write(hbm.resolve("keys.bin"), new byte[0]);
        try (MlkvStore s = open(d)) {
            assertFalse(Files.exists(hbm), "a later GPU open must not load entries older than this store's writes");
            assertEquals(1, s.size());
        }
    }

    @Test
    void aCheckpointIntoAnExistingDirectoryIsRefused() throws IOException {
        Files.createDirectories(dir.resolve("taken"));
        try (MlkvStore s = open(dir.resolve("live"))) {
            s.put(1, new float[DIM]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.checkpoint(dir.resolve("taken")));
            assertTrue(e.getMessage().contains("already exists"), e.getMessage());
            assertEquals(1, s.size());
        }
    }

    @Test
    void aDamagedOrIncompleteCheckpointIsRefusedBeforeAnythingIsCopied() throws IOException {
        long[] keys = range(2000);
        try (MlkvStore s = open(dir.resolve("live"))) {
            s.multiPut(keys, rows(keys, 1f));
            s.checkpoint(dir.resolve("cp"));
        }
        Path sst;
        try (Stream<Path> files = Files.list(dir.resolve("cp"))) {
            sst = files.filter(p -> p.toString().endsWith(".sst")).findFirst().orElseThrow();
        }
        try (FileChannel ch = FileChannel.open(sst, StandardOpenOption.WRITE)) {
            ch.truncate(Files.size(sst) / 2);
        }
        MlkvException e = assertThrows(MlkvException.class,
                () -> MlkvStore.restoreCheckpoint(dir.resolve("cp"), dir.resolve("restored")));
        assertEquals(StatusCode.CORRUPTION, e.status());
        assertTrue(e.getMessage().contains(sst.getFileName().toString()) && e.getMessage().contains("truncated"),
                e.getMessage());
        assertFalse(Files.exists(dir.resolve("restored")));

        Files.delete(dir.resolve("cp").resolve(CheckpointManifest.FILE_NAME));
        e = assertThrows(MlkvException.class, () -> MlkvStore.restoreCheckpoint(dir.resolve("cp"), dir.resolve("restored")));
        assertTrue(e.getMessage().contains("incomplete"), e.getMessage());
        assertFalse(Files.exists(dir.resolve("restored")));
    }
}
