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
    SECOND_MISS;

    /**
     * A fresh admission decision for an HBM tier of {@code hbmEntries}, as the store makes it:
     * given a key that missed HBM, whether to install it. Keeps state (not thread-safe); the
     * store calls it under its write lock, the policy simulator from one thread.
     */
    public LongPredicate newFilter(long hbmEntries) {
        return this == ALWAYS ? key -> true : new MissFilter(hbmEntries)::missedBefore;
    }
}
