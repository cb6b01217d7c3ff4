package io.mlkv.server;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;

/**
 * What a partition knows about its blocks' lives: the order they were first stored in (kept only
 * where the partition has a capacity), and the expiry and pin of blocks written with a TTL or a
 * pin. Eviction takes the oldest stored block that is not pinned (first in, first out: a lookup
 * does not refresh a block, so the lookup path takes no lock); a pin lasts until {@link #unpin} or
 * the block's expiry; an expired block is a miss.
 *
 * <p>Thread-safe: changes are synchronised on this object (the cache makes a partition's writes
 * and evictions under it); {@link #expired} reads without a lock.
 */
final class BlockLifetimes {
    /** A block's expiry (epoch milliseconds, 0 never) and pin. */
    record Life(long expiresAtMillis, boolean pinned) {
        boolean expired(long nowMillis) {
            return expiresAtMillis != 0 && nowMillis >= expiresAtMillis;
        }

        boolean pinnedAt(long nowMillis) {
            return pinned && !expired(nowMillis);
        }
    }

    private final long capacity;
    private final LongSupplier clock;
    /** Stored blocks in the order first stored; only with a capacity. */
    private final LinkedHashSet<Long> order = new LinkedHashSet<>();
    private final ConcurrentHashMap<Long, Life> lives = new ConcurrentHashMap<>();
    private volatile boolean anyLives;
    private long evictions;
    private long expirations;

    /**
     * @param capacity most blocks kept, 0 unbounded
     * @param clock    epoch milliseconds (tests pass their own)
     */
    BlockLifetimes(long capacity, LongSupplier clock) {
        this.capacity = capacity;
        this.clock = clock;
    }

    long capacity() {
        return capacity;
    }

    long now() {
        return clock.getAsLong();
    }

    /** Whether block {@code hash} has expired (lock-free; false for blocks without a TTL). */
    boolean expired(long hash) {
        if (!anyLives) {
            return false;
        }
        Life l = lives.get(hash);
        return l != null && l.expired(clock.getAsLong());
    }

    /** Whether block {@code hash} has a TTL or pin (lock-free). */
    boolean hasLife(long hash) {
        return anyLives && lives.containsKey(hash);
    }

    /**
     * Whether a new block may be stored: false where the partition is at its capacity and every
     * block it holds is pinned (no room can be made).
     */
    synchronized boolean roomForNew() {
        if (capacity == 0 || order.size() < capacity) {
            return true;
        }
        long now = clock.getAsLong();
        for (Long h : order) {
            Life l = lives.get(h);
            if (l == null || !l.pinnedAt(now)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Records that block {@code hash} is stored ({@code isNew}: it was not before) with
     * {@code life} (null: no TTL, no pin), and returns the blocks to remove to keep to the
     * capacity, oldest first, pinned ones skipped; they are forgotten here and counted as
     * evictions (the caller removes them from storage).
     */
    synchronized List<Long> stored(long hash, boolean isNew, Life life) {
        if (isNew && capacity > 0) {
            order.add(hash);
        }
        if (life != null) {
            lives.put(hash, life);
            anyLives = true;
        } else {
            lives.remove(hash);
        }
        if (capacity == 0 || order.size() <= capacity) {
            return List.of();
        }
        long now = clock.getAsLong();
        List<Long> victims = new ArrayList<>();
        Iterator<Long> it = order.iterator();
        while (order.size() > capacity && it.hasNext()) {
            Long h = it.next();
            Life l = lives.get(h);
            if (l != null && l.pinnedAt(now)) {
                continue;
            }
            it.remove();
            lives.remove(h);
            victims.add(h);
            evictions++;
        }
        return victims;
    }

    /** Records that an expired block was removed from storage. */
    synchronized void expiredRemoved(long hash) {
        order.remove(hash);
        if (lives.remove(hash) != null) {
            expirations++;
        }
    }

    /** Records a block found at start-up, in storage order. */
    synchronized void recovered(long hash) {
        if (capacity > 0) {
            order.add(hash);
        }
    }

    /** Records the life of a block found at start-up. */
    synchronized void recoveredLife(long hash, Life life) {
        lives.put(hash, life);
        anyLives = true;
    }

    /**
     * Ends the pin of block {@code hash}; returns the life it has now (its expiry kept, no pin),
     * or null where it was not pinned.
     */
    synchronized Life unpin(long hash) {
        Life l = lives.get(hash);
        if (l == null || !l.pinnedAt(clock.getAsLong())) {
            return null;
        }
        Life unpinned = new Life(l.expiresAtMillis(), false);
        if (unpinned.expiresAtMillis() == 0) {
            lives.remove(hash);
        } else {
            lives.put(hash, unpinned);
        }
        return unpinned;
    }

    /** The blocks kept in order (with a capacity), for rebuilding the Bloom filter. */
    synchronized long[] orderedHashes() {
        long[] out = new long[order.size()];
        int i = 0;
        for (Long h : order) {
            out[i++] = h;
        }
        return out;
    }

    synchronized long evictions() {
        return evictions;
    }

    synchronized long expirations() {
        return expirations;
    }

    /** Blocks pinned now. */
    long pinned() {
        long now = clock.getAsLong();
        return lives.values().stream().filter(l -> l.pinnedAt(now)).count();
    }
}
