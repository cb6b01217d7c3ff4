package io.mlkv.server;

import com.google.common.hash.BloomFilter;
import com.google.common.hash.Funnels;
import io.mlkv.client.BlockHash;
import io.mlkv.client.HashScheme;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A partition the server serves: its id, hash scheme and the Bloom filter of the block hashes stored in it.
 * The filter answers "definitely not stored" for most misses without a storage read; it only
 * ever gains entries (a block that left the local cache may still be in the blob backend).
 * Thread-safe (Guava's filter sets bits atomically).
 */
final class Partition {
    final String key;
    final long id;
    /** How the partition's blocks are named, fixed at its creation. */
    final HashScheme scheme;
    private final BloomFilter<Long> bloom;
    private final long expectedBlocks;
    private final double targetFpp;
    private final AtomicLong blocks = new AtomicLong();

    Partition(String key, HashScheme scheme, long expectedBlocks, double fpp) {
        this.key = key;
        this.scheme = scheme;
        this.id = BlockHash.partitionId(key);
        this.expectedBlocks = expectedBlocks;
        this.targetFpp = fpp;
        this.bloom = BloomFilter.create(Funnels.longFunnel(), expectedBlocks, fpp);
    }

    boolean mightContain(long hash) {
        return bloom.mightContain(hash);
    }

    /** Records a stored block; {@code isNew} counts it. */
    void add(long hash, boolean isNew) {
        bloom.put(hash);
        if (isNew) {
            blocks.incrementAndGet();
        }
    }

    long blocks() {
        return blocks.get();
    }

    /** Bits of the filter, as Guava sizes it: {@code -n ln p / (ln 2)^2}. */
    long bloomBits() {
        return (long) (-expectedBlocks * Math.log(targetFpp) / (Math.log(2) * Math.log(2)));
    }

    /** The false-positive rate the filter has now, given what it holds. */
    double expectedFpp() {
        return bloom.expectedFpp();
    }
}
