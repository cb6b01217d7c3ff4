package io.mlkv.core;

/**
 * Counters of one tier since the store opened.
 *
 * @param tier        {@code "HBM"}, {@code "DRAM"}, {@code "SPILL"} (the HBM spill log, see
 *                    {@link MlkvStoreBuilder#hbmSpillRows}; its promotions are rows written into it
 *                    from HBM, its demotions indexed rows the ring overwrote) or {@code "SSD"}
 * @param hits        keys looked up and found in this tier
 * @param misses      keys looked up here and not found (they went to the tier below, or were absent)
 * @param promotions  entries copied into this tier from the tier below
 * @param demotions   entries that left this tier to make room (evictions)
 * @param writeBacks  dirty entries written from this tier to the tier below
 * @param bytesIn     bytes of vectors copied into this tier from the tier below
 * @param bytesOut    bytes of vectors written from this tier to the tier below
 * @param entries     entries held now
 * @param capacity    most entries the tier can hold, or -1 where unbounded
 * @param lookupNanos time spent looking keys up in this tier (summed over threads)
 * @param moveNanos   time spent moving entries into this tier (summed over threads): for HBM its
 *                    installs (copies and kernels, the evictions they return included), for DRAM
 *                    the promotions from SSD and the entries HBM demotes into it, for SPILL its
 *                    appends; 0 for SSD, whose writes are the write-backs of the tiers above
 */
public record TierStats(String tier, long hits, long misses, long promotions, long demotions,
        long writeBacks, long bytesIn, long bytesOut, long entries, long capacity, long lookupNanos, long moveNanos) {

    /** Hits over lookups, or NaN before the first lookup. */
    public double hitRate() {
        long lookups = hits + misses;
        return lookups == 0 ? Double.NaN : (double) hits / lookups;
    }

    /** A rate for people: four decimals, or {@code -} where nothing was counted (NaN). */
    public static String rate(double r) {
        return Double.isNaN(r) ? "-" : String.format(java.util.Locale.ROOT, "%.4f", r);
    }

    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT, "%-4s hits=%d misses=%d hitRate=%s promotions=%d demotions=%d "
                + "writeBacks=%d bytesIn=%d bytesOut=%d entries=%d capacity=%s lookupMs=%.1f moveMs=%.1f", tier, hits,
                misses, rate(hitRate()), promotions, demotions, writeBacks, bytesIn, bytesOut, entries,
                capacity < 0 ? "unbounded" : Long.toString(capacity), lookupNanos / 1e6, moveNanos / 1e6);
    }
}
