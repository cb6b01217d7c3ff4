package io.mlkv.core;

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
    SECOND_MISS
}
