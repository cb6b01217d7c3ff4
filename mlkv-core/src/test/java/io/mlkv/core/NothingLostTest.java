package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.dram.DramTier;
import io.mlkv.storage.rocksdb.DirectoryLock;
import io.mlkv.storage.rocksdb.RepairReport;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.DBOptions;
import org.rocksdb.FlushOptions;
import org.rocksdb.RocksDB;

/**
 * What a user can do to a store directory by mistake or bad luck, and that nothing acknowledged is
 * lost or served wrong: a directory opened twice under other names, in this or another process;
 * SST, MANIFEST, CURRENT and write-ahead-log damage refused at open or read with the files left as
 * they were, and salvaged by {@link MlkvStore#repair}; queued prefetches at close.
 */
class NothingLostTest {
    private static final int DIM = 16;
    private static final int N = 20_000;

    @TempDir
    Path tmp;

    private static MlkvStore open(Path d, Durability durability) {
        return MlkvStore.builder().dim(DIM).directory(d).dramCapacityBytes(8 * DramTier.bucketBytes(DIM))
                .blockCacheBytes(1 << 20).durability(durability).gpu(GpuMode.OFF).build();
    }

    private static MlkvStore open(Path d) {
        return open(d, Durability.WRITE_BACK);
    }

    private static long[] keys(int n) {
        long[] k = new long[n];
        for (int i = 0; i < n; i++) {
            k[i] = i * 7L - 5000;
        }
        return k;
    }

    private static float[] rows(long[] keys) {
        float[] v = new float[keys.length * DIM];
        for (int i = 0; i < keys.length; i++) {
            for (int d = 0; d < DIM; d++) {
                v[i * DIM + d] = keys[i] * 0.5f + d;
            }
        }
        return v;
    }

    /** Writes N keys, closes, and moves everything from the write-ahead log into SST files. */
    private static Path storeWithSsts(Path d) throws Exception {
        try (MlkvStore s = open(d)) {
            long[] k = keys(N);
            s.multiPut(k, rows(k));
        }
        flushMemtables(d);
        return d;
    }

    /** Opens the directory with plain RocksDB and flushes its memtables (test setup only). */
    private static void flushMemtables(Path d) throws Exception {
        List<ColumnFamilyDescriptor> cfs = List.of(new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY),
                new ColumnFamilyDescriptor("mlkv-meta".getBytes(StandardCharsets.UTF_8)));
        List<ColumnFamilyHandle> handles = new ArrayList<>();
        try (DBOptions o = new DBOptions(); RocksDB db = RocksDB.open(o, d.toString(), cfs, handles);
                FlushOptions f = new FlushOptions().setWaitForFlush(true)) {
            db.flush(f, handles);
            handles.forEach(ColumnFamilyHandle::close);
        }
    }

    /** Every file's bytes, except the lock file whose content names the last opener. */
    private static Map<String, byte[]> snapshot(Path d) throws IOException {
        Map<String, byte[]> m = new TreeMap<>();
        try (Stream<Path> s = Files.list(d)) {
            for (Path f : s.filter(Files::isRegularFile).toList()) {
                if (!f.getFileName().toString().equals(DirectoryLock.FILE_NAME)) {
                    m.put(f.getFileName().toString(), Files.readAllBytes(f));
                }
            }
        }
        return m;
    }

    private static void assertSameFiles(Map<String, byte[]> before, Path d) throws IOException {
        Map<String, byte[]> after = snapshot(d);
        assertEquals(before.keySet(), after.keySet(), "files in " + d);
        for (String name : before.keySet()) {
            assertArrayEquals(before.get(name), after.get(name), name + " changed");
        }
    }

    private static Path largest(Path d, String suffix) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.filter(f -> f.getFileName().toString().endsWith(suffix))
                    .max((a, b) -> Long.compare(a.toFile().length(), b.toFile().length()))
                    .orElseThrow(() -> new AssertionError("no " + suffix + " file in " + d));
        }
    }

    private static void flip(Path file, long at, int count) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            for (int i = 0; i < count; i++) {
                f.seek(at + i);
                int b = f.read();
                f.seek(at + i);
                f.write(b ^ 0x5A);
            }
        }
    }

    private static MlkvException assertStatus(StatusCode code, Runnable r) {
        MlkvException e = assertThrows(MlkvException.class, r::run);
        assertEquals(code, e.status(), e.getMessage());
        return e;
    }

    /** Reads every key of the report's store and checks that each one found has its written value. */
    private static int assertSalvagedValuesCorrect(Path d, long[] k) {
        try (MlkvStore s = open(d)) {
            float[] out = new float[k.length * DIM];
            boolean[] found = new boolean[k.length];
            int n = s.multiGet(k, out, found);
            float[] expected = rows(k);
            for (int i = 0; i < k.length; i++) {
                if (found[i]) {
                    assertArrayEquals(Arrays.copyOfRange(expected, i * DIM, (i + 1) * DIM),
                            Arrays.copyOfRange(out, i * DIM, (i + 1) * DIM), "salvaged value of key " + k[i]);
                }
            }
            assertEquals(n, s.size(), "size of the repaired store");
            return n;
        }
    }

    // ------------------------------------------------------------------ one store per directory

    @Test
    void everySpellingOfAnOpenDirectoryIsRefusedWithLockedAndTheDataSurvives() throws Exception {
        Path base = Files.createDirectories(tmp.resolve("a"));
        Path d = base.resolve("x");
        Path link = Files.createSymbolicLink(tmp.resolve("link"), d.getParent());
        long[] k = keys(2000);
        try (MlkvStore s = open(d)) {
            s.multiPut(k, rows(k));
            List<Path> spellings = List.of(d.resolve("."), base.resolve(".").resolve("x"),
                    base.resolve("x").resolve("..").resolve("x"), tmp.resolve("a").resolve("..").resolve("a").resolve("x"),
                    link.resolve("x"));
            for (Path other : spellings) {
                MlkvException e = assertStatus(StatusCode.LOCKED, () -> open(other).close());
                assertTrue(e.getMessage().contains("pid " + ProcessHandle.current().pid()), e.getMessage());
            }
            s.multiPut(k, rows(k));
        }
        try (MlkvStore s = open(link.resolve("x"))) {
            float[] out = new float[k.length * DIM];
            assertEquals(k.length, s.multiGet(k, out, new boolean[k.length]));
            assertArrayEquals(rows(k), out);
            assertEquals(k.length, s.size());
        }
    }

    /** A bind mount shows the same directory (same device and inode) under another path. */
    @Test
    void aBindMountOfAnOpenDirectoryIsRefusedWithLocked() throws Exception {
        Path base = Files.createDirectories(tmp.resolve("bind-src"));
        Path mount = Files.createDirectories(tmp.resolve("bind-dst"));
        try (MlkvStore s = open(base.resolve("x"))) {
            s.put(1, new float[DIM]);
            Process m = new ProcessBuilder("mount", "--bind", base.toString(), mount.toString())
                    .redirectErrorStream(true).start();
            String why = new String(m.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            org.junit.jupiter.api.Assumptions.assumeTrue(m.waitFor() == 0,
                    "bind mounts need root (or CAP_SYS_ADMIN) and mount(8): " + why);
            try {
                MlkvException e = assertStatus(StatusCode.LOCKED, () -> open(mount.resolve("x")).close());
                assertTrue(e.getMessage().contains("pid " + ProcessHandle.current().pid()), e.getMessage());
            } finally {
                Process u = new ProcessBuilder("umount", mount.toString()).redirectErrorStream(true).start();
                u.getInputStream().readAllBytes();
                assertEquals(0, u.waitFor(), "umount " + mount);
            }
        }
        try (MlkvStore s = open(base.resolve("x"))) {
            assertEquals(1, s.size());
        }
    }

    @Test
    void aStoreHeldByAnotherProcessIsRefusedNamingItsPid() throws Exception {
        Path d = tmp.resolve("held");
        Process child = CrashRecoveryTest.start("hold", d.toString());
        try {
            BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
            assertEquals("OPEN", r.readLine(), "child did not open the store");
            MlkvException e = assertStatus(StatusCode.LOCKED, () -> open(d).close());
            assertTrue(e.getMessage().contains("already open in another process") && e.getMessage().contains("pid " + child.pid()),
                    e.getMessage());
        } finally {
            child.destroyForcibly();
            assertTrue(child.waitFor(60, TimeUnit.SECONDS));
        }
        open(d).close();
    }

    @Test
    void aFailedOpenReleasesTheDirectory() throws Exception {
        Path d = tmp.resolve("dims");
        open(d).close();
        assertThrows(MlkvException.class, () -> MlkvStore.builder().dim(DIM + 1).directory(d).gpu(GpuMode.OFF).build());
        open(d).close();
    }

    /**
     * A store that was not closed cleanly is counted at open; when the count meets a damaged block
     * the open fails with CORRUPTION, and everything it opened (RocksDB and its lock included) is
     * released, so the next attempt fails the same way instead of with LOCKED.
     */
    @Test
    void anOpenThatFailsAfterRocksDbOpenedReleasesEverything() throws Exception {
        Path d = storeWithSsts(tmp.resolve("unclean"));
        Process child = CrashRecoveryTest.start("hold", d.toString());
        try {
            BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
            assertEquals("OPEN", r.readLine(), "child did not open the store");
        } finally {
            child.destroyForcibly();
            assertTrue(child.waitFor(60, TimeUnit.SECONDS));
        }
        Path sst = largest(d, ".sst");
        flip(sst, Files.size(sst) / 2, 64);
        for (int attempt = 0; attempt < 2; attempt++) {
            MlkvException e = assertStatus(StatusCode.CORRUPTION, () -> open(d).close());
            assertTrue(e.getMessage().contains(sst.getFileName().toString()), e.getMessage());
        }
        RepairReport report = MlkvStore.repair(d);
        assertTrue(report.salvaged() > N / 2, report.toString());
        open(d).close();
    }

    // ------------------------------------------------------------------ corruption

    @Test
    void flippedSstBytesAreReportedAsCorruptionNeverAsMissingKeys() throws Exception {
        Path d = storeWithSsts(tmp.resolve("sst"));
        Path sst = largest(d, ".sst");
        long size = Files.size(sst);
        byte[] original = Files.readAllBytes(sst);
        flip(sst, size / 2, 64);
        long[] k = keys(N);
        List<Long> damaged = new ArrayList<>();
        try (MlkvStore s = open(d)) {
            MlkvException e = assertStatus(StatusCode.CORRUPTION, () -> s.multiGet(k, new float[N * DIM], new boolean[N]));
            assertTrue(e.getMessage().contains(sst.getFileName().toString()), "names the file: " + e.getMessage());
            assertStatus(StatusCode.CORRUPTION, () -> s.forEach((key, v) -> { }));
            assertStatus(StatusCode.CORRUPTION, () -> s.contains(k, new boolean[N]));
            float[] one = new float[DIM];
            for (long key : k) {
                try {
                    assertTrue(s.get(key, one), "key " + key + " read as absent");
                } catch (MlkvException c) {
                    assertEquals(StatusCode.CORRUPTION, c.status());
                    damaged.add(key);
                }
            }
            assertFalse(damaged.isEmpty(), "no key reads as damaged");
            long victim = damaged.get(0);
            assertStatus(StatusCode.CORRUPTION, () -> s.accumulate(new long[] {victim}, new float[DIM]));
            assertStatus(StatusCode.CORRUPTION, () -> s.findOrInsert(new long[] {victim}, new float[DIM],
                    VectorInitializer.zeros()));
        }
        assertArrayEquals(Arrays.copyOf(original, (int) (size / 2)), Arrays.copyOf(Files.readAllBytes(sst), (int) (size / 2)),
                "the damaged SST was rewritten");

        RepairReport report = MlkvStore.repair(d);
        assertFalse(report.dropped().isEmpty(), report.toString());
        assertTrue(Files.isDirectory(report.damagedCopy()), report.toString());
        for (long key : damaged) {
            assertTrue(report.dropped().stream().anyMatch(r -> r.covers(key)), "damaged key " + key + " not reported: " + report);
        }
        assertTrue(report.salvaged() <= N - damaged.size() && report.salvaged() > N / 2, report.toString());
        assertEquals(report.salvaged(), assertSalvagedValuesCorrect(d, k));
        try (MlkvStore s = open(d)) {
            float[] one = new float[DIM];
            for (long key : k) {
                assertTrue(s.get(key, one) || report.dropped().stream().anyMatch(r -> r.covers(key)),
                        "key " + key + " neither salvaged nor in a dropped range: " + report);
            }
        }
    }

    @Test
    void aTruncatedManifestIsRefusedAndNothingIsDeleted() throws Exception {
        Path d = storeWithSsts(tmp.resolve("manifest"));
        open(d).close();
        String current = Files.readString(d.resolve("CURRENT")).trim();
        Path manifest = d.resolve(current);
        try (RandomAccessFile f = new RandomAccessFile(manifest.toFile(), "rw")) {
            f.setLength(f.length() / 2);
        }
        assertRefusedUnchangedThenRepairedWhole(d, current);
    }

    /**
     * Opening {@code d} fails with CORRUPTION naming {@code named}, leaves every file as it was,
     * and repair then salvages all N keys with their values.
     */
    private static void assertRefusedUnchangedThenRepairedWhole(Path d, String named) throws IOException {
        Map<String, byte[]> before = snapshot(d);
        MlkvException e = assertStatus(StatusCode.CORRUPTION, () -> open(d).close());
        assertTrue(e.getMessage().contains(named), e.getMessage());
        assertSameFiles(before, d);

        RepairReport report = MlkvStore.repair(d);
        assertEquals(N, report.salvaged(), report.toString());
        assertEquals(N, assertSalvagedValuesCorrect(d, keys(N)));
    }

    @Test
    void aZeroedCurrentIsRefusedAndRepairFindsTheManifest() throws Exception {
        Path d = storeWithSsts(tmp.resolve("current"));
        Path current = d.resolve("CURRENT");
        Files.write(current, new byte[(int) Files.size(current)]);
        assertRefusedUnchangedThenRepairedWhole(d, "CURRENT");
    }

    /**
     * With every MANIFEST unreadable, repair reads the SST files alone; a key that two of them hold
     * keeps the newer file's value.
     */
    @Test
    void repairFromSstFilesAloneKeepsEachKeysNewestValue() throws Exception {
        Path d = storeWithSsts(tmp.resolve("ssts-only"));
        long[] k = keys(N);
        float[] newer = rows(k);
        for (int i = 0; i < newer.length; i++) {
            newer[i] += 1000;
        }
        try (MlkvStore s = open(d)) {
            s.multiPut(k, newer);
        }
        flushMemtables(d);
        try (Stream<Path> files = Files.list(d)) {
            for (Path f : files.filter(f -> f.getFileName().toString().startsWith("MANIFEST-")).toList()) {
                Files.write(f, new byte[(int) Files.size(f)]);
            }
        }
        assertStatus(StatusCode.CORRUPTION, () -> open(d).close());

        RepairReport report = MlkvStore.repair(d);
        assertEquals(N, report.salvaged(), report.toString());
        try (MlkvStore s = open(d)) {
            float[] out = new float[N * DIM];
            assertEquals(N, s.multiGet(k, out, new boolean[N]));
            assertArrayEquals(newer, out, "the newer SST's values");
        }
    }

    @Test
    void aFlippedWriteAheadLogRecordIsRefusedNotDropped() throws Exception {
        Path d = tmp.resolve("wal");
        long[] k = keys(10_000);
        float[] v = rows(k);
        try (MlkvStore s = open(d, Durability.WRITE_THROUGH)) {
            for (int from = 0; from < k.length; from += 1000) {
                s.multiPut(Arrays.copyOfRange(k, from, from + 1000), Arrays.copyOfRange(v, from * DIM, (from + 1000) * DIM));
            }
        }
        Path wal = largest(d, ".log");
        flip(wal, Files.size(wal) / 2, 8);
        Map<String, byte[]> before = snapshot(d);
        MlkvException e = assertStatus(StatusCode.CORRUPTION, () -> open(d).close());
        assertTrue(e.getMessage().contains(".log") || e.getMessage().contains("checksum"), e.getMessage());
        assertSameFiles(before, d);

        RepairReport report = MlkvStore.repair(d);
        int salvaged = assertSalvagedValuesCorrect(d, k);
        assertEquals(report.salvaged(), salvaged, report.toString());
        assertTrue(salvaged >= k.length - 1000 && salvaged < k.length,
                "one damaged batch record of 1000 keys dropped, the rest salvaged: " + report);
    }

    @Test
    void repairRefusesADirectoryThatIsOpen() throws Exception {
        Path d = tmp.resolve("open-repair");
        try (MlkvStore s = open(d)) {
            s.put(1, new float[DIM]);
            assertStatus(StatusCode.LOCKED, () -> MlkvStore.repair(d));
        }
    }

    // ------------------------------------------------------------------ close

    @Test
    void closeFailsQueuedPrefetchesAtOnce() throws Exception {
        Path d = tmp.resolve("prefetch");
        long[] k = keys(N);
        try (MlkvStore s = open(d)) {
            s.multiPut(k, rows(k));
        }
        MlkvStore s = MlkvStore.builder().dim(DIM).directory(d).dramCapacityBytes(64 * DramTier.bucketBytes(DIM))
                .prefetchThreads(1).gpu(GpuMode.OFF).build();
        List<CompletableFuture<Void>> futures = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            futures.add(s.prefetch(k));
        }
        long start = System.nanoTime();
        s.close();
        long closeMillis = (System.nanoTime() - start) / 1_000_000;
        int cancelled = 0;
        for (CompletableFuture<Void> f : futures) {
            assertTrue(f.isDone(), "a prefetch future is still pending after close");
            if (f.isCompletedExceptionally()) {
                CompletionException e = assertThrows(CompletionException.class, f::join);
                assertTrue(e.getCause() instanceof IllegalStateException
                        && e.getCause().getMessage().contains("store closed"), String.valueOf(e.getCause()));
                cancelled++;
            }
        }
        assertTrue(cancelled > 0, "every queued prefetch ran to the end before close (" + closeMillis + " ms)");
        assertTrue(closeMillis < 5_000, "close took " + closeMillis + " ms");
        assertThrows(IllegalStateException.class, () -> s.prefetch(k));
        System.out.println("close with 8 queued prefetches of " + N + " keys: " + closeMillis + " ms, "
                + cancelled + " cancelled");
    }
}
