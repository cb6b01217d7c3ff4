package io.mlkv.storage.rocksdb;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.nio.ByteBuffer;

/**
 * Byte layout of keys and values in RocksDB.
 *
 * <p>Key: 8 bytes, big-endian, sign bit flipped, so RocksDB's byte order is numeric order.
 * Value: an 8-byte header {@code [format u8][element type u8][reserved u16 = 0][dim u32 LE]}
 * followed by {@code dim} little-endian IEEE-754 floats.
 */
final class ValueCodec {
    static final int HEADER_BYTES = 8;
    static final byte FORMAT = 1;
    static final byte TYPE_FLOAT32 = 1;

    private ValueCodec() {
    }

    static byte[] encodeKey(long key) {
        long k = ordered(key);
        byte[] b = new byte[8];
        for (int i = 7; i >= 0; i--) {
            b[i] = (byte) k;
            k >>>= 8;
        }
        return b;
    }

    /** Writes {@code key} as {@link #encodeKey} lays it out at {@code into}'s position, which is big-endian. */
    static void encodeKey(long key, ByteBuffer into) {
        into.putLong(ordered(key));
    }

    /** The key's bits with the sign flipped: unsigned order of the result is the signed order of keys. */
    private static long ordered(long key) {
        return key ^ Long.MIN_VALUE;
    }

    static long decodeKey(byte[] b) {
        long k = 0;
        for (int i = 0; i < 8; i++) {
            k = (k << 8) | (b[i] & 0xFF);
        }
        return ordered(k);
    }

    static byte[] encodeValue(float[] src, int row, int dim) {
        byte[] b = new byte[HEADER_BYTES + dim * 4];
        b[0] = FORMAT;
        b[1] = TYPE_FLOAT32;
        b[4] = (byte) dim;
        b[5] = (byte) (dim >>> 8);
        b[6] = (byte) (dim >>> 16);
        b[7] = (byte) (dim >>> 24);
        int base = row * dim;
        int p = HEADER_BYTES;
        for (int i = 0; i < dim; i++) {
            int bits = Float.floatToRawIntBits(src[base + i]);
            b[p++] = (byte) bits;
            b[p++] = (byte) (bits >>> 8);
            b[p++] = (byte) (bits >>> 16);
            b[p++] = (byte) (bits >>> 24);
        }
        return b;
    }

    static void decodeValue(long key, byte[] b, float[] out, int row, int dim) {
        if (b.length != HEADER_BYTES + dim * 4 || b[0] != FORMAT || b[1] != TYPE_FLOAT32
                || readIntLe(b, 4) != dim) {
            throw new MlkvException(StatusCode.CORRUPTION, "decode value of key " + key,
                    "expected format " + FORMAT + ", float32, dim " + dim + " (" + (HEADER_BYTES + dim * 4)
                            + " bytes); found " + b.length + " bytes with header format "
                            + (b.length > 0 ? b[0] : -1));
        }
        int base = row * dim;
        int p = HEADER_BYTES;
        for (int i = 0; i < dim; i++, p += 4) {
            out[base + i] = Float.intBitsToFloat(readIntLe(b, p));
        }
    }

    private static int readIntLe(byte[] b, int p) {
        return (b[p] & 0xFF) | (b[p + 1] & 0xFF) << 8 | (b[p + 2] & 0xFF) << 16 | (b[p + 3] & 0xFF) << 24;
    }
}
