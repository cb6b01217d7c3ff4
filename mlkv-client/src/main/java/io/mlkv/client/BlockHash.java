package io.mlkv.client;

import net.openhft.hashing.LongHashFunction;

/**
 * The chained block hash that names a block of prompt tokens, identical in every client and server.
 *
 * <p>{@code hash(block i) = XXH3-64(seed 0)} over 8 + 4 * blockSize bytes: the previous block's
 * hash as a little-endian 64-bit integer, then the block's tokens as little-endian unsigned
 * 32-bit integers. The first block's previous hash is {@link #ROOT} (0). Because each hash
 * covers its parent, equal hashes at position i mean equal prompts up to and including block i
 * (up to hash collisions, which the server detects by comparing tokens). docs/TOKEN-CACHE.md lists
 * test vectors for implementations in other languages. This is {@link HashScheme#MLKV_V1}; a
 * partition may use another {@link HashScheme}, and prompts may carry a salt.
 *
 * <p>Stateless and thread-safe.
 */
public final class BlockHash {
    /** The parent hash of a prompt's first block. */
    public static final long ROOT = 0L;

    private static final LongHashFunction XXH3 = LongHashFunction.xx3(0L);

    private BlockHash() {
    }

    /**
     * Hash of the block {@code tokens[offset .. offset + blockSize)} whose predecessor hashed to
     * {@code parent}.
     */
    public static long of(long parent, int[] tokens, int offset, int blockSize) {
        return HashScheme.MLKV_V1.block(parent, tokens, offset, blockSize);
    }

    /**
     * Hashes of every whole block of a prompt, in order; a trailing partial block has none.
     *
     * @return an array of {@code tokens.length / blockSize} hashes
     */
    public static long[] ofPrompt(int[] tokens, int blockSize) {
        return HashScheme.MLKV_V1.prompt(tokens, blockSize, null);
    }

    /** The 64-bit id of a partition key: XXH3-64 (seed 0) of its UTF-8 bytes. */
    public static long partitionId(String partitionKey) {
        return XXH3.hashBytes(partitionKey.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
}
