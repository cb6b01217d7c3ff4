package io.mlkv.bench.ycsb;

import io.mlkv.core.Durability;
import io.mlkv.core.GpuMode;
import io.mlkv.core.MlkvStore;
import io.mlkv.storage.ReservedKeys;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.Vector;
import site.ycsb.ByteArrayByteIterator;
import site.ycsb.ByteIterator;
import site.ycsb.DB;
import site.ycsb.DBException;
import site.ycsb.Status;

/**
 * Lets the real YCSB client drive an MLKV store:
 * {@code site.ycsb.Client -db io.mlkv.bench.ycsb.MlkvYcsbDb -P workloada}.
 *
 * <p>One store per JVM, shared by all client threads, opened by the first {@link #init()} and closed
 * by the last {@link #cleanup()}. Settings (YCSB {@code -p} properties): {@code mlkv.dir} (default
 * {@code <tmp>/mlkv-ycsb}), {@code mlkv.dram.mb} (256), {@code mlkv.policy} (lru),
 * {@code mlkv.durability} (WRITE_BACK), {@code mlkv.sizecounting} (ON_WRITE; {@link
 * io.mlkv.core.SizeCounting}), and YCSB's own {@code fieldcount} (10),
 * {@code fieldlength} (100) and {@code fieldnameprefix} (field).
 *
 * <p>Mapping: a YCSB key {@code user<digits>} whose digits are a number from 0 to
 * {@code Long.MAX_VALUE} written without leading zeros (every key YCSB builds with its default
 * {@code zeropadding=1}, hashed keys of up to 19 digits included) becomes that number, so distinct
 * keys never collide; any other key becomes its 64-bit FNV-1a hash with the sign bit set (a
 * negative number, never one of the store's reserved keys), which no number key can equal.
 * Two other keys collide with probability about {@code n^2 / 2^64} for {@code n} of them (for
 * example keys zero-padded by {@code zeropadding} above their length). A record's
 * fields are packed into one vector of {@code fieldcount x (1 + ceil(fieldlength / 4))} floats:
 * per field, one float holding the value's byte length as raw int bits (-1 if the field is
 * absent), then its bytes, four per float as raw bits. The store returns floats bit for bit, so
 * the bytes come back unchanged. An update reads the record, replaces the given fields and writes
 * it back (not atomic against a concurrent update of the same key). Scans return
 * {@code NOT_IMPLEMENTED}: MLKV keeps no key order. No operation lets an exception out: failures
 * are logged to standard error and answered with {@code ERROR}.
 */
public final class MlkvYcsbDb extends DB {
    private static final Object LOCK = new Object();
    private static MlkvStore shared;
    private static int users;
    private int fieldCount;
    private int fieldLength;
    private int wordsPerField;
    private String fieldPrefix;
    /** The field names, field{@code f} at {@code f}, made once. */
    private String[] fieldNames;
    private MlkvStore store;

    @Override
    public void init() throws DBException {
        Properties p = getProperties();
        fieldCount = Integer.parseInt(p.getProperty("fieldcount", "10"));
        fieldLength = Integer.parseInt(p.getProperty("fieldlength", "100"));
        fieldPrefix = p.getProperty("fieldnameprefix", "field");
        wordsPerField = 1 + (fieldLength + 3) / 4;
        fieldNames = new String[fieldCount];
        for (int f = 0; f < fieldCount; f++) {
            fieldNames[f] = fieldPrefix + f;
        }
        int dim = fieldCount * wordsPerField;
        synchronized (LOCK) {
            if (shared == null) {
                try {
                    shared = MlkvStore.builder()
                            .dim(dim)
                            .directory(Path.of(p.getProperty("mlkv.dir",
                                    Path.of(System.getProperty("java.io.tmpdir"), "mlkv-ycsb").toString())))
                            .dramCapacityBytes(Long.parseLong(p.getProperty("mlkv.dram.mb", "256")) << 20)
                            .policy(p.getProperty("mlkv.policy", "lru"))
                            .durability(Durability.valueOf(p.getProperty("mlkv.durability", "WRITE_BACK")))
                            .sizeCounting(io.mlkv.core.SizeCounting.valueOf(p.getProperty("mlkv.sizecounting", "ON_WRITE")))
                            .gpu(GpuMode.OFF)
                            .build();
                } catch (RuntimeException e) {
                    throw new DBException("cannot open the MLKV store: " + e.getMessage(), e);
                }
            } else if (shared.dim() != dim) {
                throw new DBException("the shared MLKV store has dim " + shared.dim() + " but fieldcount/fieldlength need " + dim);
            }
            users++;
            store = shared;
        }
    }

    @Override
    public void cleanup() throws DBException {
        synchronized (LOCK) {
            if (--users == 0 && shared != null) {
                try {
                    shared.close();
                } catch (RuntimeException e) {
                    throw new DBException("closing the MLKV store failed: " + e.getMessage(), e);
                } finally {
                    shared = null;
                }
            }
        }
    }

    /** "user" and the 19 digits of Long.MAX_VALUE. */
    private static final int LONGEST_NUMBER_KEY = 4 + 19;

    /** The store key of a YCSB key: see the class comment. */
    static long keyOf(String key) {
        if (isNumberKey(key)) {
            try {
                return Long.parseLong(key, 4, key.length(), 10);
            } catch (NumberFormatException e) {
                // above Long.MAX_VALUE: hashed below
            }
        }
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < key.length(); i++) {
            h ^= key.charAt(i);
            h *= 0x100000001b3L;
        }
        h |= Long.MIN_VALUE;
        // The two reserved keys (Long.MIN_VALUE and the one above it) move out of the way.
        return ReservedKeys.isReserved(h) ? h + 2 : h;
    }

    /** {@code user} then 1 to 19 decimal digits, without a leading zero unless the number is 0. */
    private static boolean isNumberKey(String key) {
        int n = key.length();
        if (!key.startsWith("user") || n <= 4 || n > LONGEST_NUMBER_KEY || (key.charAt(4) == '0' && n > 5)) {
            return false;
        }
        for (int i = 4; i < n; i++) {
            char c = key.charAt(i);
            if (c < '0' || c > '9') {
                return false;
            }
        }
        return true;
    }

    @Override
    public Status read(String table, String key, Set<String> fields, Map<String, ByteIterator> result) {
        try {
            float[] row = new float[store.dim()];
            if (!store.get(keyOf(key), row)) {
                return Status.NOT_FOUND;
            }
            decode(row, fields, result);
            return Status.OK;
        } catch (RuntimeException e) {
            return error("read", key, e);
        }
    }

    @Override
    public Status scan(String table, String startkey, int recordcount, Set<String> fields,
            Vector<HashMap<String, ByteIterator>> result) {
        return Status.NOT_IMPLEMENTED;
    }

    @Override
    public Status update(String table, String key, Map<String, ByteIterator> values) {
        try {
            float[] row = new float[store.dim()];
            long k = keyOf(key);
            if (!store.get(k, row)) {
                return Status.NOT_FOUND;
            }
            encode(values, row);
            store.put(k, row);
            return Status.OK;
        } catch (RuntimeException e) {
            return error("update", key, e);
        }
    }

    @Override
    public Status insert(String table, String key, Map<String, ByteIterator> values) {
        try {
            float[] row = new float[store.dim()];
            for (int f = 0; f < fieldCount; f++) {
                row[f * wordsPerField] = Float.intBitsToFloat(-1);
            }
            encode(values, row);
            store.put(keyOf(key), row);
            return Status.OK;
        } catch (RuntimeException e) {
            return error("insert", key, e);
        }
    }

    @Override
    public Status delete(String table, String key) {
        try {
            store.delete(keyOf(key));
            return Status.OK;
        } catch (RuntimeException e) {
            return error("delete", key, e);
        }
    }

    private void encode(Map<String, ByteIterator> values, float[] row) {
        for (Map.Entry<String, ByteIterator> e : values.entrySet()) {
            int f = fieldIndex(e.getKey());
            byte[] bytes = e.getValue().toArray();
            if (bytes.length > fieldLength) {
                throw new IllegalArgumentException("field " + e.getKey() + " has " + bytes.length
                        + " bytes, more than fieldlength (" + fieldLength + ")");
            }
            int base = f * wordsPerField;
            row[base] = Float.intBitsToFloat(bytes.length);
            // Four bytes a word, little-endian; the words past the field's bytes are zero.
            int full = bytes.length / 4;
            // One bulk copy of the whole words (raw bits: no float conversion, so every bit pattern survives).
            ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(row, base + 1, full);
            for (int w = full; w < wordsPerField - 1; w++) {
                int bits = 0;
                for (int at = w * 4; at < Math.min(bytes.length, w * 4 + 4); at++) {
                    bits |= (bytes[at] & 0xFF) << (8 * (at - w * 4));
                }
                row[base + 1 + w] = Float.intBitsToFloat(bits);
            }
        }
    }

    private void decode(float[] row, Set<String> fields, Map<String, ByteIterator> result) {
        for (int f = 0; f < fieldCount; f++) {
            String name = fieldNames[f];
            if (fields != null && !fields.contains(name)) {
                continue;
            }
            int base = f * wordsPerField;
            int len = Float.floatToRawIntBits(row[base]);
            if (len < 0) {
                continue;
            }
            byte[] bytes = new byte[len];
            int full = len / 4;
            ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(row, base + 1, full);
            for (int at = full * 4; at < len; at++) {
                bytes[at] = (byte) (Float.floatToRawIntBits(row[base + 1 + full]) >>> (8 * (at - full * 4)));
            }
            result.put(name, new ByteArrayByteIterator(bytes));
        }
    }

    private int fieldIndex(String name) {
        if (name.startsWith(fieldPrefix)) {
            try {
                int f = Integer.parseInt(name.substring(fieldPrefix.length()));
                if (f >= 0 && f < fieldCount) {
                    return f;
                }
            } catch (NumberFormatException e) {
                // reported below
            }
        }
        throw new IllegalArgumentException("field " + name + " is not one of " + fieldPrefix + "0.." + fieldPrefix
                + (fieldCount - 1));
    }

    private static Status error(String op, String key, RuntimeException e) {
        System.err.println("MLKV YCSB binding: " + op + " of key " + key + " failed: " + e);
        return Status.ERROR;
    }
}
