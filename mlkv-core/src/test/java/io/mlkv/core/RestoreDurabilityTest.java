package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.FileSync;
import io.mlkv.storage.dram.DramTier;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Restores survive crashes: every file and directory is fsynced before the restored store
 * appears under its name (checked by recording the fsyncs), and a restore killed with SIGKILL at
 * random points leaves either no store or the whole checkpoint, never a part that opens.
 */
class RestoreDurabilityTest {
    private static final int DIM = 8;
    private static final int KEYS = 30_000;

    @TempDir
    Path tmp;

    private static MlkvStore open(Path d) {
        return MlkvStore.builder().dim(DIM).directory(d).dramCapacityBytes(4 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build();
    }

    private Path checkpoint() {
        long[] keys = new long[KEYS];
        float[] rows = new float[KEYS * DIM];
        for (int i = 0; i < KEYS; i++) {
            keys[i] = i;
            Arrays.fill(rows, i * DIM, (i + 1) * DIM, i);
        }
        Path cp = tmp.resolve("cp");
        try (MlkvStore s = open(tmp.resolve("live"))) {
            s.multiPut(keys, rows);
            s.checkpoint(cp);
        }
        return cp;
    }

    /** Records fsyncs and whether the restore's target existed at each. */
    private static final class RecordingSync implements FileSync {
        final Path target;
        final List<String> events = new ArrayList<>();

        RecordingSync(Path target) {
            this.target = target;
        }

        @Override
        public void file(Path file) throws IOException {
            events.add("file " + file.getFileName() + (Files.exists(target) ? " after-rename" : ""));
            FileSync.OS.file(file);
        }

        @Override
        public void directory(Path dir) throws IOException {
            events.add("dir " + dir + (Files.exists(target) ? " after-rename" : ""));
            FileSync.OS.directory(dir);
        }
    }

    @Test
    void everyRestoredFileAndDirectoryIsFsyncedBeforeTheStoreAppears() throws Exception {
        Path cp = checkpoint();
        Path target = tmp.resolve("restored");
        RecordingSync sync = new RecordingSync(target);
        Restore.restore(cp, target, sync);

        Set<String> restored = new HashSet<>();
        try (Stream<Path> s = Files.walk(target)) {
            s.filter(Files::isRegularFile).forEach(f -> restored.add("file " + f.getFileName()));
        }
        for (String f : restored) {
            assertTrue(sync.events.contains(f), f + " was not fsynced before the rename: " + sync.events);
        }
        String last = sync.events.get(sync.events.size() - 1);
        assertEquals("dir " + tmp + " after-rename", last, "the parent directory is fsynced after the rename, last");
        for (String e : sync.events.subList(0, sync.events.size() - 1)) {
            assertFalse(e.endsWith("after-rename"), "fsync after the store appeared: " + e);
        }
        int lastFile = -1;
        int firstDir = Integer.MAX_VALUE;
        for (int i = 0; i < sync.events.size() - 1; i++) {
            if (sync.events.get(i).startsWith("file ")) {
                lastFile = i;
            } else {
                firstDir = Math.min(firstDir, i);
            }
        }
        assertTrue(lastFile < firstDir, "directories are fsynced after their files: " + sync.events);
        try (MlkvStore s = open(target)) {
            assertEquals(KEYS, s.size());
        }
    }

    @Test
    void aRestoreKilledAtRandomPointsNeverLeavesAPartialStore() throws Exception {
        Path cp = checkpoint();
        List<Path> listed = CheckpointManifest.verify(cp);
        long seed = System.nanoTime();
        Random random = new Random(seed);
        // At least 100 kills, and on until 30 of them have landed inside a restore (a loaded
        // machine shifts the timing), at most 400.
        int runs = 0;
        int killedMidRestore = 0;
        for (int run = 0; run < 400 && (run < 100 || killedMidRestore < 30); run++, runs++) {
            Path root = Files.createDirectories(tmp.resolve("run-" + run));
            Process child = CrashRecoveryTest.start("restore", cp.toString(), root.toString());
            try {
                BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
                assertEquals("RESTORING 0", r.readLine(), "child did not start (seed " + seed + ")");
                // A cold JVM spends its first tens of milliseconds verifying the checkpoint's checksums.
                Thread.sleep(random.nextInt(300));
            } finally {
                child.destroyForcibly();
                assertTrue(child.waitFor(60, TimeUnit.SECONDS), "child did not die");
            }
            Path complete = null;
            try (Stream<Path> s = Files.list(root)) {
                for (Path t : s.toList()) {
                    if (t.getFileName().toString().startsWith(".")) {
                        killedMidRestore++;
                        continue;
                    }
                    assertWholeCheckpoint(cp, listed, t, seed);
                    complete = t;
                }
            }
            if (complete != null && run % 10 == 0) {
                try (MlkvStore s = open(complete)) {
                    assertEquals(KEYS, s.size(), "restored store " + complete + " (seed " + seed + ")");
                }
            }
        }
        System.out.println("restore killed " + runs + " times (seed " + seed + "): " + killedMidRestore
                + " kills left a staging directory, none a partial store");
        assertTrue(killedMidRestore >= 30, "only " + killedMidRestore + " of " + runs
                + " kills landed inside a restore (seed " + seed + ")");
    }

    private static void assertWholeCheckpoint(Path cp, List<Path> listed, Path target, long seed) throws IOException {
        List<Path> present = new ArrayList<>();
        try (Stream<Path> s = Files.walk(target)) {
            s.filter(Files::isRegularFile).forEach(f -> present.add(target.relativize(f)));
        }
        assertEquals(new HashSet<>(listed), new HashSet<>(present), "files of " + target + " (seed " + seed + ")");
        for (Path rel : listed) {
            assertEquals(-1, Files.mismatch(cp.resolve(rel), target.resolve(rel)),
                    rel + " differs in " + target + " (seed " + seed + ")");
        }
    }
}
