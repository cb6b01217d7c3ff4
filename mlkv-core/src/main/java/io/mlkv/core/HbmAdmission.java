package io.mlkv.core;

import java.util.function.LongPredicate;

/**
 * Which keys that missed HBM and were found below are installed into HBM.
 * {@link MlkvStore#prefetch} installs what it is given in either case.
 */
public enum HbmAdmission {
    /** Every key found below is installed (subject to the check that it was not written meanwhile). */
    ALWAYS,
    /**
     * A key is installed on its second miss within a recent window (a one-bit-per-hash filter
     * sized at eight bits per HBM entry and cleared when a quarter of its bits have been set), so
     * keys read once do not push warmer ones out of HBM, and fewer installs run.
     */
    SECOND_MISS,
    /**
     * Decided on the GPU, key against victim (TinyLFU's rule): every HBM lookup is counted in a
     * frequency sketch of 4-bit counters (about 8 bytes per HBM slot, halved after ten lookups per
     * slot), and a key found below goes in where its bucket has room, or in place of the bucket's
     * least recently used entry only if the sketch has seen the newcomer more often than that
     * entry. Hot keys still get in at once; keys of equal popularity (uniform access to a table
     * larger than HBM) stop displacing each other, so such reads stop paying an install and an
     * eviction per miss. Writes are not screened (a write does not promote; a written miss is
     * installed as before), nor is {@link MlkvStore#prefetch}. The policy simulator models it as
     * its {@code tinylfu} policy.
     */
    FREQUENCY;

    /**
     * A fresh admission decision for an HBM tier of {@code hbmEntries}, as the store makes it on
     * the host: given a key that missed HBM, whether to install it. Keeps state (not thread-safe);
     * the store calls it under its write lock, the policy simulator from one thread.
     * {@link #FREQUENCY} takes every key here: its decision is made on the GPU, against the victim.
     */
    public LongPredicate newFilter(long hbmEntries) {
        return this == SECOND_MISS ? new MissFilter(hbmEntries)::missedBefore : key -> true;
    }

    /** Whether {@link #newFilter} takes every key, so a read may install its misses without a look at each. */
    public boolean filterTakesEveryKey() {
        return this != SECOND_MISS;
    }
}
