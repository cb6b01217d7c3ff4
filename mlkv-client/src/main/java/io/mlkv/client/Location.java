package io.mlkv.client;

import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Where a block is stored, as the opaque bytes that Lookup and Write return and Read takes.
 *
 * <p>Format 1 is 17 bytes: the format byte (1), the partition id ({@link BlockHash#partitionId})
 * and the block hash, both little-endian 64-bit. A server refuses a location whose partition id
 * is not the partition the request names.
 *
 * @param partitionId the partition's 64-bit id
 * @param blockHash   the block's chained hash
 */
public record Location(long partitionId, long blockHash) {
    /** Encoded length of format 1. */
    public static final int ENCODED_LENGTH = 17;
    private static final byte FORMAT = 1;

    /** Location of a block of the named partition. */
    public static Location of(String partitionKey, long blockHash) {
        return new Location(BlockHash.partitionId(partitionKey), blockHash);
    }

    /** The wire form. */
    public ByteString encode() {
        ByteBuffer b = ByteBuffer.allocate(ENCODED_LENGTH).order(ByteOrder.LITTLE_ENDIAN);
        b.put(FORMAT).putLong(partitionId).putLong(blockHash);
        return ByteString.copyFrom(b.array());
    }

    /**
     * Parses the wire form.
     *
     * @throws IllegalArgumentException if the bytes are not a format-1 location
     */
    public static Location decode(ByteString bytes) {
        if (bytes.size() != ENCODED_LENGTH) {
            throw new IllegalArgumentException("malformed location: " + bytes.size() + " bytes, expected "
                    + ENCODED_LENGTH);
        }
        ByteBuffer b = bytes.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        byte format = b.get();
        if (format != FORMAT) {
            throw new IllegalArgumentException("malformed location: unknown format " + format + ", expected " + FORMAT);
        }
        return new Location(b.getLong(), b.getLong());
    }
}
