package io.mlkv.server;

import com.google.common.hash.BloomFilter;
import com.google.common.hash.Funnels;
import io.mlkv.client.BlockHash;
import io.mlkv.client.HashScheme;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A partition the server serves: its id, hash scheme, the lives of its blocks (capacity, expiry,
 * pins) and the Bloom filter of the block hashes stored in it. The filter answers "definitely not
 * stored" for most misses without a storage read; it gains every stored block and loses none
 * (a block that left the local cache may still be in the blob backend), except where a partition
 * with a capacity and no backend evicted as many blocks as it keeps: then the filter is rebuilt
 * from the blocks it keeps, while no write can run, and swapped in. Thread-safe (Guava's filter
 * sets bits atomically).
 */
final class Partition {
    final String key;
    final long id;
    /** How the partition's blocks are named, fixed at its creation. */
    final HashScheme scheme;
    /** Capacity, expiry and pins of the partition's blocks. */
    final BlockLifetimes lifetimes;
    private volatile BloomFilter<Long> bloom;
    private final long expectedBlocks;
    private final double targetFpp;
    private final AtomicLong blocks = new AtomicLong();
    /** Blocks removed since the filter was last built (they may still read as "maybe there"). */
    private final AtomicLong removedSinceBuild = new AtomicLong();

    Partition(String key, HashScheme scheme, long expectedBlocks, double fpp, BlockLifetimes lifetimes) {
        this.key = key;
        this.scheme = scheme;
        this.id = BlockHash.partitionId(key);
        this.expectedBlocks = expectedBlocks;
        this.targetFpp = fpp;
        this.lifetimes = lifetimes;
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

    /** Records that {@code n} stored blocks were removed (evicted or expired); returns the removals since the filter was built. */
    long removed(int n) {
        blocks.addAndGet(-n);
        return removedSinceBuild.addAndGet(n);
    }

    /**
     * Replaces the filter with one of exactly {@code hashes} (every block the partition keeps).
     * Caller makes sure no write of the partition runs meanwhile.
     */
    void rebuildFilter(long[] hashes) {
        BloomFilter<Long> fresh = BloomFilter.create(Funnels.longFunnel(), expectedBlocks, targetFpp);
        for (long h : hashes) {
            fresh.put(h);
        }
        bloom = fresh;
        removedSinceBuild.set(0);
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
