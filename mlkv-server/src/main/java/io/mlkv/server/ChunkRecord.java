package io.mlkv.server;

import io.mlkv.client.proto.Chunk;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * One stored block: its partition id, hash, parent hash and tokens, and the two forms it is kept
 * in.
 *
 * <p>In the tiered store a block is a vector of {@code blockSize + 6} floats holding raw 32-bit
 * patterns (never arithmetic): partition id, hash and parent hash as low/high int pairs, then the
 * tokens, each via {@link Float#intBitsToFloat}. The tiers copy values bit for bit, so every
 * uint32 token survives. In blob storage a block is {@link #toBlob()}: a little-endian header
 * ("MLKC", format 1, block size, the three ids), the tokens, and a CRC-32C of everything before it.
 */
record ChunkRecord(long partitionId, long hash, long parentHash, int[] tokens) {
    static final int HEADER_FLOATS = 6;
    private static final int BLOB_MAGIC = 0x434B4C4D; // "MLKC" read little-endian
    private static final int BLOB_FORMAT = 1;
    private static final int BLOB_HEADER_BYTES = 4 + 4 + 4 + 8 + 8 + 8;

    static int vectorDim(int blockSize) {
        return blockSize + HEADER_FLOATS;
    }

    static ChunkRecord of(long partitionId, Chunk chunk) {
        int[] tokens = new int[chunk.getTokensCount()];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = chunk.getTokens(i);
        }
        return new ChunkRecord(partitionId, chunk.getHash(), chunk.getParentHash(), tokens);
    }

    Chunk toChunk(String partitionKey) {
        Chunk.Builder c = Chunk.newBuilder().setPartitionKey(partitionKey).setHash(hash).setParentHash(parentHash);
        for (int t : tokens) {
            c.addTokens(t);
        }
        return c.build();
    }

    void toVector(float[] out, int offset) {
        putLong(out, offset, partitionId);
        putLong(out, offset + 2, hash);
        putLong(out, offset + 4, parentHash);
        for (int i = 0; i < tokens.length; i++) {
            out[offset + HEADER_FLOATS + i] = Float.intBitsToFloat(tokens[i]);
        }
    }

    static ChunkRecord fromVector(float[] v, int offset, int blockSize) {
        int[] tokens = new int[blockSize];
        for (int i = 0; i < blockSize; i++) {
            tokens[i] = Float.floatToRawIntBits(v[offset + HEADER_FLOATS + i]);
        }
        return new ChunkRecord(getLong(v, offset), getLong(v, offset + 2), getLong(v, offset + 4), tokens);
    }

    /** Whether the vector at {@code offset} is this partition's block {@code hash}. */
    static boolean vectorIs(float[] v, int offset, long partitionId, long hash) {
        return getLong(v, offset) == partitionId && getLong(v, offset + 2) == hash;
    }

    /** Whether the vector's tokens equal {@code tokens[from .. from + blockSize)}. */
    static boolean vectorTokensEqual(float[] v, int offset, int[] tokens, int from, int blockSize) {
        for (int i = 0; i < blockSize; i++) {
            if (Float.floatToRawIntBits(v[offset + HEADER_FLOATS + i]) != tokens[from + i]) {
                return false;
            }
        }
        return true;
    }

    byte[] toBlob() {
        ByteBuffer b = ByteBuffer.allocate(BLOB_HEADER_BYTES + 4 * tokens.length + 4).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(BLOB_MAGIC).putInt(BLOB_FORMAT).putInt(tokens.length)
                .putLong(partitionId).putLong(hash).putLong(parentHash);
        for (int t : tokens) {
            b.putInt(t);
        }
        CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, b.position());
        b.putInt((int) crc.getValue());
        return b.array();
    }

    /**
     * Parses a blob.
     *
     * @throws IllegalArgumentException naming what is wrong, if the blob is not an intact block of
     *                                  this block size
     */
    static ChunkRecord fromBlob(byte[] blob, int blockSize) {
        int expected = BLOB_HEADER_BYTES + 4 * blockSize + 4;
        if (blob.length != expected) {
            throw new IllegalArgumentException("blob is " + blob.length + " bytes, a block of " + blockSize
                    + " tokens is " + expected);
        }
        ByteBuffer b = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN);
        CRC32C crc = new CRC32C();
        crc.update(blob, 0, blob.length - 4);
        if ((int) crc.getValue() != b.getInt(blob.length - 4)) {
            throw new IllegalArgumentException("blob checksum mismatch (damaged blob)");
        }
        if (b.getInt() != BLOB_MAGIC || b.getInt() != BLOB_FORMAT || b.getInt() != blockSize) {
            throw new IllegalArgumentException("blob is not an MLKV block of " + blockSize + " tokens");
        }
        long partitionId = b.getLong();
        long hash = b.getLong();
        long parent = b.getLong();
        int[] tokens = new int[blockSize];
        for (int i = 0; i < blockSize; i++) {
            tokens[i] = b.getInt();
        }
        return new ChunkRecord(partitionId, hash, parent, tokens);
    }

    private static void putLong(float[] v, int at, long x) {
        v[at] = Float.intBitsToFloat((int) x);
        v[at + 1] = Float.intBitsToFloat((int) (x >>> 32));
    }

    private static long getLong(float[] v, int at) {
        return (Float.floatToRawIntBits(v[at]) & 0xFFFFFFFFL) | ((long) Float.floatToRawIntBits(v[at + 1]) << 32);
    }
}
