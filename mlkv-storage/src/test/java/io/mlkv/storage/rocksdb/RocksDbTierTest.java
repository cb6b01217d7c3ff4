package io.mlkv.storage.rocksdb;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RocksDbTierTest {
    @TempDir
    Path dir;

    private static Map<String, Long> listing(Path dir) throws IOException {
        Map<String, Long> m = new TreeMap<>();
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                if (Files.isRegularFile(p)) {
                    m.put(dir.relativize(p).toString(), Files.getLastModifiedTime(p).toMillis() * 31 + Files.size(p));
                }
            }
        }
        return m;
    }

    @Test
    void reopeningWithAnotherDimFailsClearlyAndTouchesNothing() throws IOException {
        Path db = dir.resolve("db");
        try (RocksDbTier t = RocksDbTier.open(db, 4, 1 << 20, false)) {
            t.multiPut(new long[] {1, 2}, new float[8]);
        }
        Map<String, Long> before = listing(db);
        MlkvException e = assertThrows(MlkvException.class, () -> RocksDbTier.open(db, 8, 1 << 20, false));
        assertEquals(StatusCode.INCOMPATIBLE_FORMAT, e.status());
        assertTrue(e.getMessage().contains("dim 4") && e.getMessage().contains("dim 8"), e.getMessage());
        assertEquals(before, listing(db));
        try (RocksDbTier t = RocksDbTier.open(db, 4, 1 << 20, false)) {
            assertEquals(2, t.size());
        }
    }

    @Test
    void aDirectoryThatIsNotAStoreIsRefused() throws IOException {
        Path foreign = dir.resolve("foreign");
        Files.createDirectories(foreign);
        Files.writeString(foreign.resolve("notes.txt"), "hello");
        MlkvException e = assertThrows(MlkvException.class, () -> RocksDbTier.open(foreign, 4, 1 << 20, false));
        assertEquals(StatusCode.INCOMPATIBLE_FORMAT, e.status());
        assertTrue(e.getMessage().contains("not an MLKV store"), e.getMessage());
        assertEquals("hello", Files.readString(foreign.resolve("notes.txt")));
    }

    @Test
    void aSecondOpenerOfTheSameDirectoryIsRefused() {
        Path db = dir.resolve("db");
        try (RocksDbTier first = RocksDbTier.open(db, 4, 1 << 20, false)) {
            first.multiPut(new long[] {7}, new float[] {1, 2, 3, 4});
            MlkvException e = assertThrows(MlkvException.class, () -> RocksDbTier.open(db, 4, 1 << 20, false));
            assertEquals(StatusCode.LOCKED, e.status());
            assertTrue(e.getMessage().contains("already open"), e.getMessage());
            float[] out = new float[4];
            assertEquals(1, first.multiGet(new long[] {7}, out, new boolean[1]));
            assertArrayEquals(new float[] {1, 2, 3, 4}, out);
        }
    }

    /**
     * exists over several MultiGet chunks of keys spread over the whole signed range, half of them
     * written, before and after a reopen, against a set of the written keys. Prints its seed on failure.
     */
    @Test
    void existsAgreesWithASetAcrossChunksAndReopens() {
        long seed = System.nanoTime();
        SplittableRandom r = new SplittableRandom(seed);
        int n = 20_000;
        long[] keys = new long[n];
        Set<Long> written = new HashSet<>();
        for (int i = 0; i < n; i++) {
            keys[i] = i < 4 ? new long[] {Long.MIN_VALUE + 2, -1, 0, Long.MAX_VALUE}[i] : r.nextLong();
            if (r.nextBoolean()) {
                written.add(keys[i]);
            }
        }
        long[] put = written.stream().mapToLong(Long::longValue).toArray();
        Path db = dir.resolve("db");
        try (RocksDbTier t = RocksDbTier.open(db, 2, 1 << 20, false)) {
            t.multiPut(put, new float[put.length * 2]);
            assertExists(t, keys, written, "before reopen, seed " + seed);
        }
        try (RocksDbTier t = RocksDbTier.open(db, 2, 1 << 20, false)) {
            assertExists(t, keys, written, "after reopen, seed " + seed);
        }
    }

    private static void assertExists(RocksDbTier t, long[] keys, Set<Long> written, String where) {
        boolean[] out = new boolean[keys.length];
        int present = t.exists(keys, keys.length, out);
        int expected = 0;
        for (int i = 0; i < keys.length; i++) {
            assertEquals(written.contains(keys[i]), out[i], "key " + keys[i] + ", " + where);
            expected += out[i] ? 1 : 0;
        }
        assertEquals(expected, present, "count, " + where);
    }

    @Test
    void aValueOfTheWrongShapeIsReportedAsCorruptionNamingTheKey() {
        byte[] encoded = ValueCodec.encodeValue(new float[] {1, 2}, 0, 2);
        MlkvException e = assertThrows(MlkvException.class,
                () -> ValueCodec.decodeValue(99, encoded, new float[4], 0, 4));
        assertEquals(StatusCode.CORRUPTION, e.status());
        assertTrue(e.getMessage().contains("key 99"), e.getMessage());
    }

    @Test
    void keysSortNumericallyInTheExportCursor() {
        Path db = dir.resolve("db");
        long[] keys = {5, -3, Long.MAX_VALUE, Long.MIN_VALUE + 5, 0};
        try (RocksDbTier t = RocksDbTier.open(db, 1, 1 << 20, false)) {
            t.multiPut(keys, new float[] {1, 2, 3, 4, 5});
            long[] order = new long[keys.length];
            int i = 0;
            try (RocksDbTier.ExportCursor c = t.exportCursor()) {
                float[] buf = new float[1];
                while (c.next(buf)) {
                    order[i++] = c.key();
                }
            }
            assertArrayEquals(new long[] {Long.MIN_VALUE + 5, -3, 0, 5, Long.MAX_VALUE}, order);
        }
    }

    @Test
    void metadataSurvivesReopen() {
        Path db = dir.resolve("db");
        try (RocksDbTier t = RocksDbTier.open(db, 1, 1 << 20, false)) {
            assertEquals(-1, t.readMeta("x", -1));
            t.writeMeta("x", 1234567890123L);
        }
        try (RocksDbTier t = RocksDbTier.open(db, 1, 1 << 20, false)) {
            assertEquals(1234567890123L, t.readMeta("x", -1));
        }
    }

    @Test
    void aDirectoryThatCannotBeCreatedFailsWithAnIoErrorNamingThePath() throws IOException {
        Path file = dir.resolve("plain-file");
        Files.writeString(file, "x");
        MlkvException e = assertThrows(MlkvException.class,
                () -> RocksDbTier.open(file.resolve("store"), 4, 1 << 20, false));
        assertEquals(StatusCode.IO_ERROR, e.status());
        assertTrue(e.getMessage().contains(file.resolve("store").toString()), e.getMessage());
    }

    @Test
    void existsTellsPresentFromAbsentAndDeletedKeys() {
        try (RocksDbTier t = RocksDbTier.open(dir.resolve("db"), 2, 1 << 20, false)) {
            long[] keys = new long[1000];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = i * 2L;
            }
            t.multiPut(keys, new float[keys.length * 2]);
            t.multiDelete(new long[] {0, 2});
            long[] probe = {0, 1, 2, 4, 1998, 1999, 5000};
            boolean[] out = new boolean[probe.length];
            assertEquals(2, t.exists(probe, probe.length, out));
            assertArrayEquals(new boolean[] {false, false, false, true, true, false, false}, out);
        }
    }

    private static long walBytes(Path db) throws IOException {
        try (Stream<Path> files = Files.list(db)) {
            long total = 0;
            for (Path p : (Iterable<Path>) files::iterator) {
                if (p.getFileName().toString().endsWith(".log")) {
                    total += Files.size(p);
                }
            }
            return total;
        }
    }

    /**
     * The metadata family, written once at open as the store does, must not keep every
     * write-ahead log since: after 317 MB of writes the logs stay within the bound (about as
     * much as was written before it), and everything reads back after a reopen.
     */
    @Test
    void writeAheadLogsStayBoundedWhileTheMetadataFamilyIsIdle() throws IOException {
        Path db = dir.resolve("wal");
        int dim = 64;
        int batch = 16_384;
        int batches = 72; // 1,179,648 keys of 264 bytes
        try (RocksDbTier t = RocksDbTier.open(db, dim, 1 << 20, false)) {
            t.writeMeta("clean", 0);
            for (int b = 0; b < batches; b++) {
                long[] keys = new long[batch];
                float[] rows = new float[batch * dim];
                for (int i = 0; i < batch; i++) {
                    keys[i] = (long) b * batch + i;
                    rows[i * dim] = keys[i];
                }
                t.multiPut(keys, rows);
            }
            long wal = walBytes(db);
            assertTrue(wal <= RocksDbTier.MAX_TOTAL_WAL_BYTES + (128L << 20),
                    "write-ahead logs hold " + wal + " bytes after " + (long) batch * batches * 264 + " bytes written");
        }
        try (RocksDbTier t = RocksDbTier.open(db, dim, 1 << 20, false)) {
            long[] probe = {0, 12_345, (long) batch * batches - 1};
            float[] out = new float[probe.length * dim];
            boolean[] found = new boolean[probe.length];
            assertEquals(probe.length, t.multiGet(probe, out, found));
            for (int i = 0; i < probe.length; i++) {
                assertEquals(probe[i], out[i * dim]);
            }
            assertEquals(0, t.readMeta("clean", -1));
        }
    }
}
