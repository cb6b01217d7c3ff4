package io.mlkv.bench.ycsb;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.Vector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import site.ycsb.ByteArrayByteIterator;
import site.ycsb.ByteIterator;
import site.ycsb.Status;

class MlkvYcsbDbTest {
    @TempDir
    Path dir;

    /** A binding over a fresh store in {@code dir/name}, records of {@code fields} fields of {@code length} bytes. */
    private MlkvYcsbDb open(String name, int fields, int length) throws Exception {
        MlkvYcsbDb db = new MlkvYcsbDb();
        Properties p = new Properties();
        p.setProperty("mlkv.dir", dir.resolve(name).toString());
        p.setProperty("fieldcount", Integer.toString(fields));
        p.setProperty("fieldlength", Integer.toString(length));
        db.setProperties(p);
        db.init();
        return db;
    }

    @Test
    void fieldsRoundTripAndUpdatesReplaceOnlyTheGivenFields() throws Exception {
        MlkvYcsbDb db = open("s", 3, 7);
        try {
            Map<String, ByteIterator> values = new HashMap<>();
            values.put("field0", new ByteArrayByteIterator("abcdefg".getBytes()));
            values.put("field2", new ByteArrayByteIterator(new byte[] {0, -1, 127, -128}));
            assertEquals(Status.OK, db.insert("t", "user42", values));
            Map<String, ByteIterator> read = new HashMap<>();
            assertEquals(Status.OK, db.read("t", "user42", null, read));
            assertEquals(Set.of("field0", "field2"), read.keySet());
            assertArrayEquals("abcdefg".getBytes(), read.get("field0").toArray());
            assertArrayEquals(new byte[] {0, -1, 127, -128}, read.get("field2").toArray());
            Map<String, ByteIterator> patch = new HashMap<>();
            patch.put("field1", new ByteArrayByteIterator("xy".getBytes()));
            assertEquals(Status.OK, db.update("t", "user42", patch));
            read.clear();
            assertEquals(Status.OK, db.read("t", "user42", Set.of("field1", "field0"), read));
            assertArrayEquals("xy".getBytes(), read.get("field1").toArray());
            assertArrayEquals("abcdefg".getBytes(), read.get("field0").toArray());
            assertEquals(Status.NOT_FOUND, db.read("t", "user43", null, new HashMap<>()));
            assertEquals(Status.NOT_FOUND, db.update("t", "user43", patch));
            assertEquals(Status.NOT_IMPLEMENTED, db.scan("t", "user1", 10, null, new Vector<>()));
            Map<String, ByteIterator> tooLong = new HashMap<>();
            tooLong.put("field0", new ByteArrayByteIterator("12345678".getBytes()));
            assertEquals(Status.ERROR, db.insert("t", "user44", tooLong));
            Map<String, ByteIterator> unknown = new HashMap<>();
            unknown.put("other", new ByteArrayByteIterator("a".getBytes()));
            assertEquals(Status.ERROR, db.insert("t", "user45", unknown));
            assertEquals(Status.OK, db.delete("t", "user42"));
            assertEquals(Status.NOT_FOUND, db.read("t", "user42", null, new HashMap<>()));
        } finally {
            db.cleanup();
        }
    }

    /** Every field length from 0 to fieldlength, random bytes, comes back as written (seed printed on failure). */
    @Test
    void fieldsOfEveryLengthRoundTrip() throws Exception {
        long seed = Long.getLong("mlkv.seed", System.nanoTime());
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        MlkvYcsbDb db = open("lengths", 2, 13);
        try {
            for (int len = 0; len <= 13; len++) {
                byte[] a = new byte[len];
                byte[] b = new byte[13 - len];
                for (int i = 0; i < a.length; i++) {
                    a[i] = (byte) r.nextInt(256);
                }
                for (int i = 0; i < b.length; i++) {
                    b[i] = (byte) r.nextInt(256);
                }
                Map<String, ByteIterator> values = new HashMap<>();
                values.put("field0", new ByteArrayByteIterator(a));
                values.put("field1", new ByteArrayByteIterator(b));
                assertEquals(Status.OK, db.insert("t", "user" + len, values));
                Map<String, ByteIterator> read = new HashMap<>();
                assertEquals(Status.OK, db.read("t", "user" + len, null, read));
                assertArrayEquals(a, read.get("field0").toArray(), "length " + len + ", seed " + seed);
                assertArrayEquals(b, read.get("field1").toArray(), "length " + (13 - len) + ", seed " + seed);
            }
        } finally {
            db.cleanup();
        }
    }

    @Test
    void keysMapToNumbersOrHashes() {
        assertEquals(12345L, MlkvYcsbDb.keyOf("user12345"));
        assertEquals(0L, MlkvYcsbDb.keyOf("user0"));
        assertEquals(Long.MAX_VALUE, MlkvYcsbDb.keyOf("user9223372036854775807"));
        assertEquals(MlkvYcsbDb.keyOf("other-key"), MlkvYcsbDb.keyOf("other-key"));
        assertEquals(false, MlkvYcsbDb.keyOf("other-key") == MlkvYcsbDb.keyOf("other-kez"));
        // Not plain numbers: hashed into the negative half, where no number key lies.
        for (String other : new String[] {"other-key", "user007", "user-5", "user+5", "user9223372036854775808",
            "user12345678901234567890", "user", "user1a"}) {
            long k = MlkvYcsbDb.keyOf(other);
            assertTrue(k < 0 && !io.mlkv.storage.ReservedKeys.isReserved(k), other + " -> " + k);
        }
    }

    /**
     * Keys as YCSB builds them with hashed inserts (the default; "user" and YCSB's own hash of the
     * key number, 19 digits about 89 % of the time) all map to their own
     * number: a million of them, no collision.
     */
    @Test
    void hashedYcsbKeysMapToTheirNumbersWithoutCollisions() {
        java.util.Set<Long> seen = new java.util.HashSet<>();
        int nineteenDigits = 0;
        for (long keynum = 0; keynum < 1_000_000; keynum++) {
            long hashed = site.ycsb.Utils.hash(keynum); // what CoreWorkload.buildKeyName does
            String key = "user" + hashed;
            nineteenDigits += key.length() == 23 ? 1 : 0;
            long k = MlkvYcsbDb.keyOf(key);
            assertEquals(hashed, k, key);
            assertTrue(seen.add(k), "collision at " + key);
        }
        assertTrue(nineteenDigits > 800_000, "most hashed keys have 19 digits: " + nineteenDigits);
    }
}
