package io.mlkv.client;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import net.openhft.hashing.LongHashFunction;

/**
 * How a block of prompt tokens is named: the chained 64-bit hash that is its key in a partition.
 * A partition's scheme is fixed when the partition is created; a server reports it in Health.
 * Two schemes (docs/TOKEN-CACHE.md has test vectors for both):
 * <ul>
 *   <li>{@link #MLKV_V1} (the default, and the only scheme before there were others):
 *       {@code hash = XXH3-64(seed 0)} over the parent's hash as a little-endian 64-bit integer
 *       followed by the block's tokens as little-endian unsigned 32-bit integers.</li>
 *   <li>{@link #chainedXxh3(long) chained XXH3}, laid out as the KV-routing indexers of serving
 *       fleets lay it out, so that a router speaking that convention computes the same keys: a
 *       block's <em>local</em> hash is {@code XXH3-64(seed)} of its little-endian u32 tokens; the
 *       first block's hash is its local hash; every later block's is {@code XXH3-64(seed)} of
 *       the parent's hash and the local hash, both little-endian 64-bit. The usual seed is
 *       {@value #CHAINED_DEFAULT_SEED}.</li>
 * </ul>
 * A <em>salt</em> (a model, LoRA adapter or tenant name) puts a prompt in its own namespace: the
 * first block's parent is then {@link #root(String) root(salt)}, {@code XXH3-64(seed)} of the
 * salt's UTF-8 bytes, instead of {@link BlockHash#ROOT}, so the same tokens under two salts never
 * share a block. Without a salt both schemes are as described above.
 *
 * <p>Immutable and thread-safe.
 */
public final class HashScheme {
    /** The seed of {@link #chainedXxh3(long)} that the serving fleets' indexers use. */
    public static final long CHAINED_DEFAULT_SEED = 1337L;
    /** Salts are at most this many UTF-8 bytes. */
    public static final int MAX_SALT_BYTES = 256;
    /** The scheme MLKV has always used; the default. */
    public static final HashScheme MLKV_V1 = new HashScheme(Kind.MLKV_V1, 0L);

    private enum Kind {
        MLKV_V1("mlkv-v1"), CHAINED_XXH3("chained-xxh3");

        final String label;

        Kind(String label) {
            this.label = label;
        }
    }

    /** Whether int and long arrays lie in memory as the little-endian bytes the schemes hash (then hashed in place). */
    private static final boolean LITTLE_ENDIAN = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN;

    private final Kind kind;
    private final long seed;
    private final LongHashFunction xxh3;

    private HashScheme(Kind kind, long seed) {
        this.kind = kind;
        this.seed = seed;
        this.xxh3 = LongHashFunction.xx3(seed);
    }

    /** Chained XXH3-64 with {@code seed} (an unsigned 64-bit value; see the class comment). */
    public static HashScheme chainedXxh3(long seed) {
        return new HashScheme(Kind.CHAINED_XXH3, seed);
    }

    /**
     * The scheme a text names, as {@link #toString()} writes it: {@code mlkv-v1},
     * {@code chained-xxh3} (seed {@value #CHAINED_DEFAULT_SEED}) or {@code chained-xxh3:SEED}
     * (SEED decimal, 0 to 2^64-1). Case does not matter.
     *
     * @throws IllegalArgumentException naming what is wrong
     */
    public static HashScheme parse(String text) {
        if (text == null) {
            throw new IllegalArgumentException("no hash scheme given (mlkv-v1 or chained-xxh3[:SEED])");
        }
        String t = text.trim().toLowerCase(Locale.ROOT);
        if (t.equals(Kind.MLKV_V1.label)) {
            return MLKV_V1;
        }
        if (t.equals(Kind.CHAINED_XXH3.label)) {
            return chainedXxh3(CHAINED_DEFAULT_SEED);
        }
        String prefix = Kind.CHAINED_XXH3.label + ":";
        if (t.startsWith(prefix)) {
            try {
                return chainedXxh3(Long.parseUnsignedLong(t.substring(prefix.length())));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("hash scheme '" + text + "': the seed must be a decimal number from 0 to "
                        + "18446744073709551615");
            }
        }
        throw new IllegalArgumentException("unknown hash scheme '" + text + "' (mlkv-v1, chained-xxh3 or chained-xxh3:SEED)");
    }

    /**
     * The parent hash of a prompt's first block: {@link BlockHash#ROOT} without a salt (null or
     * empty), else {@code XXH3-64(seed)} of the salt's UTF-8 bytes.
     *
     * @throws IllegalArgumentException if the salt is longer than {@value #MAX_SALT_BYTES} bytes
     */
    public long root(String salt) {
        if (salt == null || salt.isEmpty()) {
            return BlockHash.ROOT;
        }
        byte[] bytes = salt.getBytes(StandardCharsets.UTF_8);
        if (bytes.length > MAX_SALT_BYTES) {
            throw new IllegalArgumentException("salt of " + bytes.length + " bytes; at most " + MAX_SALT_BYTES);
        }
        return xxh3.hashBytes(bytes);
    }

    /**
     * Hash of the block {@code tokens[offset .. offset + blockSize)} whose predecessor hashed to
     * {@code parent} ({@link #root(String)} for a prompt's first block).
     */
    public long block(long parent, int[] tokens, int offset, int blockSize) {
        if (blockSize <= 0) {
            throw new IllegalArgumentException("blockSize must be positive, was " + blockSize);
        }
        if (offset < 0 || offset > tokens.length - blockSize) {
            throw new IllegalArgumentException("block [" + offset + ", " + (offset + blockSize)
                    + ") is outside the " + tokens.length + " tokens given");
        }
        if (kind == Kind.MLKV_V1) {
            if (LITTLE_ENDIAN) {
                // The int array's memory is the little-endian bytes hashed: no encoding pass.
                int[] words = new int[2 + blockSize];
                words[0] = (int) parent;
                words[1] = (int) (parent >>> 32);
                System.arraycopy(tokens, offset, words, 2, blockSize);
                return xxh3.hashInts(words);
            }
            ByteBuffer bytes = ByteBuffer.allocate(8 + 4 * blockSize).order(ByteOrder.LITTLE_ENDIAN);
            bytes.putLong(parent);
            for (int i = 0; i < blockSize; i++) {
                bytes.putInt(tokens[offset + i]);
            }
            return xxh3.hashBytes(bytes.array());
        }
        long local = localHash(tokens, offset, blockSize);
        if (parent == BlockHash.ROOT) {
            return local;
        }
        if (LITTLE_ENDIAN) {
            return xxh3.hashLongs(new long[] {parent, local});
        }
        ByteBuffer pair = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        pair.putLong(parent).putLong(local);
        return xxh3.hashBytes(pair.array());
    }

    /** The chained scheme's local hash of one block: {@code XXH3-64(seed)} of its little-endian u32 tokens. */
    private long localHash(int[] tokens, int offset, int blockSize) {
        if (LITTLE_ENDIAN) {
            return xxh3.hashInts(tokens, offset, blockSize);
        }
        ByteBuffer bytes = ByteBuffer.allocate(4 * blockSize).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < blockSize; i++) {
            bytes.putInt(tokens[offset + i]);
        }
        return xxh3.hashBytes(bytes.array());
    }

    /**
     * Hashes of every whole block of a prompt, in order, under {@code salt} (null or empty: none);
     * a trailing partial block has none.
     *
     * @return an array of {@code tokens.length / blockSize} hashes
     */
    public long[] prompt(int[] tokens, int blockSize, String salt) {
        if (blockSize <= 0) {
            throw new IllegalArgumentException("blockSize must be positive, was " + blockSize);
        }
        long[] hashes = new long[tokens.length / blockSize];
        long parent = root(salt);
        for (int b = 0; b < hashes.length; b++) {
            parent = block(parent, tokens, b * blockSize, blockSize);
            hashes[b] = parent;
        }
        return hashes;
    }

    /** {@code mlkv-v1} or {@code chained-xxh3:SEED}; {@link #parse} reads it back. */
    @Override
    public String toString() {
        return kind == Kind.MLKV_V1 ? kind.label : kind.label + ":" + Long.toUnsignedString(seed);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof HashScheme h && h.kind == kind && h.seed == seed;
    }

    @Override
    public int hashCode() {
        return kind.hashCode() * 31 + Long.hashCode(seed);
    }
}
