package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Kills a child JVM with SIGKILL in the middle of a load and checks what survives. */
class CrashRecoveryTest {
    @TempDir
    Path dir;

    /**
     * The child JVMs' temporary directory: RocksDB extracts its 15 MB native library there, and a
     * child killed with SIGKILL never deletes it; this JVM removes the directory when it exits.
     */
    private static final Path CHILD_TMP = childTmp();

    private static Path childTmp() {
        try {
            Path d = Files.createTempDirectory("mlkv-child-jvms-");
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                try (java.util.stream.Stream<Path> s = Files.walk(d)) {
                    s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
                } catch (java.io.IOException e) {
                    // Best effort at exit: the directory is under the system temp directory anyway.
                }
            }));
            return d;
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    static Process start(String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xmx256m");
        cmd.add("-Djava.io.tmpdir=" + CHILD_TMP);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(ChildStoreProcess.class.getName());
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.appendTo(Path.of("target", "child-jvm-stderr.log").toFile())).start();
    }

    /** Reads the child's output until {@code prefix} has been printed {@code times} times; returns the last number. */
    private static int killAfter(Process p, String prefix, int times) throws Exception {
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        int last = -1;
        int seen = 0;
        try {
            String line;
            while ((line = r.readLine()) != null) {
                if (line.startsWith(prefix)) {
                    last = Integer.parseInt(line.substring(prefix.length()).trim());
                    if (++seen >= times) {
                        break;
                    }
                }
            }
        } finally {
            p.destroyForcibly();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child did not die");
        }
        assertTrue(seen >= times, "child printed only " + seen + " '" + prefix + "' lines; exit code " + p.exitValue());
        return last;
    }

    private void assertBatchesPresent(Path db, int lastBatch) {
        try (MlkvStore s = ChildStoreProcess.open(db, Durability.WRITE_BACK)) {
            int dim = ChildStoreProcess.DIM;
            long[] keys = new long[ChildStoreProcess.BATCH];
            float[] out = new float[keys.length * dim];
            boolean[] found = new boolean[keys.length];
            for (int b = 0; b <= lastBatch; b++) {
                for (int i = 0; i < keys.length; i++) {
                    keys[i] = (long) b * keys.length + i;
                }
                assertEquals(keys.length, s.multiGet(keys, out, found), "keys of acknowledged batch " + b);
                for (float f : out) {
                    assertEquals(b, f, "value in batch " + b);
                }
            }
            assertTrue(s.size() >= (long) (lastBatch + 1) * keys.length, "size " + s.size());
        }
    }

    @Test
    void writeThroughKeepsEveryAcknowledgedBatchAfterKill9() throws Exception {
        Path db = dir.resolve("wt");
        int acked = killAfter(start("load", db.toString(), "WRITE_THROUGH"), "ACK ", 40);
        assertBatchesPresent(db, acked);
    }

    @Test
    void writeBackKeepsEverythingFlushedAfterKill9() throws Exception {
        Path db = dir.resolve("wb");
        int flushed = killAfter(start("load", db.toString(), "WRITE_BACK"), "FLUSHED ", 6);
        assertBatchesPresent(db, flushed);
    }

    /**
     * Kills the child as soon as it announces a checkpoint, several times over: the last completed
     * checkpoint always restores with exactly its data, and a cut-off one is refused, never
     * half-restored. The kill can land after a checkpoint finished; the test needs at least one
     * kill inside a checkpoint among its attempts.
     */
    @Test
    void aKillDuringACheckpointLeavesThePreviousOneRestorable() throws Exception {
        int cutOff = 0;
        int attempt = 0;
        for (; attempt < 6 && cutOff < 2; attempt++) {
            Path db = dir.resolve("cp-db-" + attempt);
            Path root = dir.resolve("cps-" + attempt);
            Files.createDirectories(root);
            int lastDone = -1;
            int killedIn = -1;
            Process p = start("checkpoints", db.toString(), root.toString());
            BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            try {
                String line;
                while ((line = r.readLine()) != null) {
                    if (line.startsWith("CHECKPOINTED ")) {
                        lastDone = Integer.parseInt(line.substring(13).trim());
                    } else if (line.startsWith("CHECKPOINT_START ") && lastDone >= 50 + attempt % 3) {
                        killedIn = Integer.parseInt(line.substring(17).trim());
                        break;
                    }
                }
            } finally {
                p.destroyForcibly();
                assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child did not die");
            }
            assertTrue(lastDone >= 50 && killedIn == lastDone + 1, "attempt " + attempt + ": done " + lastDone
                    + ", killed in " + killedIn);
            assertRestoresExactly(root.resolve("cp-" + lastDone), dir.resolve("restored-" + attempt), lastDone);
            Path killed = root.resolve("cp-" + killedIn);
            try {
                assertRestoresExactly(killed, dir.resolve("restored-killed-" + attempt), killedIn);
            } catch (MlkvException e) {
                assertEquals(StatusCode.CORRUPTION, e.status(), e.getMessage());
                assertFalse(Files.exists(dir.resolve("restored-killed-" + attempt)), "nothing restored from " + killed);
                cutOff++;
            }
        }
        System.out.printf("kill during checkpoint: %d of %d kills landed inside a checkpoint%n", cutOff, attempt);
        assertTrue(cutOff >= 1, "no kill landed inside a checkpoint in 6 attempts");
    }

    private static void assertRestoresExactly(Path checkpoint, Path into, int lastBatch) {
        MlkvStore.restoreCheckpoint(checkpoint, into);
        try (MlkvStore s = ChildStoreProcess.open(into, Durability.WRITE_BACK)) {
            assertEquals((long) (lastBatch + 1) * ChildStoreProcess.BATCH, s.size(), "entries in " + checkpoint);
            long[] keys = new long[ChildStoreProcess.BATCH];
            float[] out = new float[keys.length * ChildStoreProcess.DIM];
            for (int b = 0; b <= lastBatch; b++) {
                for (int i = 0; i < keys.length; i++) {
                    keys[i] = (long) b * keys.length + i;
                }
                assertEquals(keys.length, s.multiGet(keys, out, new boolean[keys.length]), "batch " + b);
                for (float f : out) {
                    assertEquals(b, f, "value in batch " + b);
                }
            }
        }
    }

    @Test
    void aDirectoryHeldByAnotherProcessIsRefusedUntilThatProcessDies() throws Exception {
        Path db = dir.resolve("held");
        Process holder = start("hold", db.toString());
        try {
            BufferedReader r = new BufferedReader(new InputStreamReader(holder.getInputStream(), StandardCharsets.UTF_8));
            assertEquals("OPEN", r.readLine());
            MlkvException e = assertThrows(MlkvException.class, () -> ChildStoreProcess.open(db, Durability.WRITE_BACK));
            assertEquals(StatusCode.LOCKED, e.status());
            assertTrue(e.getMessage().contains("already open"), e.getMessage());
        } finally {
            holder.destroyForcibly();
            holder.waitFor(60, TimeUnit.SECONDS);
        }
        try (MlkvStore s = ChildStoreProcess.open(db, Durability.WRITE_BACK)) {
            assertTrue(s.size() <= 1);
        }
    }
}
