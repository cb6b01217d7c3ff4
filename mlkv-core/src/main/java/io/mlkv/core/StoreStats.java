package io.mlkv.core;

import java.util.List;

/**
 * A snapshot of the store's counters, one {@link TierStats} per tier from the top down.
 *
 * @param tiers     per-tier counters, top tier first
 * @param size      keys in the store; -1 where the store counts them only when asked
 *                  ({@link SizeCounting#ON_DEMAND}: call {@link MlkvStore#size()})
 * @param prefetched keys promoted by {@link MlkvStore#prefetch}
 */
public record StoreStats(List<TierStats> tiers, long size, long prefetched) {

    /** The counters of the named tier ({@code "HBM"}, {@code "DRAM"}, {@code "SPILL"}, {@code "SSD"}). */
    public TierStats tier(String name) {
        for (TierStats t : tiers) {
            if (t.tier().equals(name)) {
                return t;
            }
        }
        throw new IllegalArgumentException("no tier named " + name + " in " + tiers);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("size=").append(size).append(" prefetched=")
                .append(prefetched);
        for (TierStats t : tiers) {
            sb.append(System.lineSeparator()).append("  ").append(t);
        }
        return sb.toString();
    }
}
