package io.mlkv.core.sim;

import io.mlkv.core.workload.KeyGenerator;
import io.mlkv.storage.dram.DramTier;
import io.mlkv.storage.dram.EvictionSink;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Replays a key trace against a stack of cache tiers above the SSD tier and counts where each
 * access is served, so policies and tier sizes are compared on data rather than opinion.
 *
 * <p>Each cache tier is a real {@link DramTier} (vectors of one float): the same
 * {@value DramTier#BUCKET_SLOTS}-slot buckets, scores and admission decisions as the store's DRAM
 * tier, so hit rates of the DRAM tier carry over. An HBM tier is modelled as a DRAM tier too, which
 * it is not: the store's GPU table has {@code 128}-slot buckets and its own score (least recently
 * used, reads refreshing it) and admission ({@link io.mlkv.core.HbmAdmission}), so a top tier's
 * figures here are an estimate of the real HBM hit rate, from buckets less associative than
 * HBM's; measure that one with the store itself ({@code mlkv-bench run --gpu ON}). Accesses are processed in
 * batches as the store processes them (one clock tick and one policy record per batch and tier).
 * A key served below the top tier is promoted into the top tier if that tier's policy admits it
 * and leaves the tier it came from; what a tier evicts moves one tier down (the bottom cache
 * tier's evictions need no copy: the SSD tier holds every key).
 */
public final class PolicySimulator {
    private PolicySimulator() {
    }

    /**
     * What a replay counted.
     *
     * @param policy      the policy every cache tier used
     * @param capacities  entries each cache tier held at most, top tier first
     * @param hits        accesses served by each cache tier
     * @param ssdReads    accesses no cache tier served
     * @param accesses    accesses replayed
     */
    public record Result(String policy, long[] capacities, long[] hits, long ssdReads, long accesses) {
        /** Share of accesses served by cache tier {@code tier}. */
        public double hitRate(int tier) {
            return accesses == 0 ? Double.NaN : (double) hits[tier] / accesses;
        }

        /** Share of accesses that had to read the SSD tier. */
        public double ssdRate() {
            return accesses == 0 ? Double.NaN : (double) ssdReads / accesses;
        }

        @Override
        public String toString() {
            return "Result[" + policy + ", capacities=" + Arrays.toString(capacities) + ", hits="
                    + Arrays.toString(hits) + ", ssdReads=" + ssdReads + ", accesses=" + accesses + "]";
        }
    }

    /**
     * Replays {@code accesses} keys from {@code keys}.
     *
     * @param policy       eviction policy of every cache tier
     * @param tierEntries  entries each cache tier can hold, top tier first (rounded down to whole
     *                     buckets of {@value DramTier#BUCKET_SLOTS}, at least one bucket)
     * @param batchSize    keys per batch, as an application would pass to {@code multiGet}
     */
    public static Result run(String policy, long[] tierEntries, KeyGenerator keys, long accesses, int batchSize) {
        return run(policy, tierEntries, keys, accesses, batchSize, key -> true);
    }

    /**
     * {@link #run(String, long[], KeyGenerator, long, int)} with an admission decision for the top
     * tier, as the store's {@link io.mlkv.core.HbmAdmission} makes for HBM: a key served below
     * the top tier moves up only if {@code topAdmission} says so (it stays where it was), and a
     * key read from the SSD tier that it refuses goes into the second tier instead (where the store
     * puts what it reads from RocksDB), or nowhere if there is only one.
     */
    public static Result run(String policy, long[] tierEntries, KeyGenerator keys, long accesses, int batchSize,
            java.util.function.LongPredicate topAdmission) {
        if (tierEntries == null || tierEntries.length == 0) {
            throw new IllegalArgumentException("at least one cache tier size is needed");
        }
        if (accesses < 0 || batchSize < 1) {
            throw new IllegalArgumentException("accesses must be >= 0 and batchSize >= 1, were "
                    + accesses + " and " + batchSize);
        }
        List<DramTier> tiers = new ArrayList<>();
        try {
            long[] capacities = new long[tierEntries.length];
            for (int t = 0; t < tierEntries.length; t++) {
                if (tierEntries[t] < 1) {
                    throw new IllegalArgumentException("tier " + t + " size must be at least 1 entry, was " + tierEntries[t]);
                }
                long buckets = Math.max(1, tierEntries[t] / DramTier.BUCKET_SLOTS);
                DramTier tier = new DramTier(1, buckets * DramTier.bucketBytes(1), policy);
                tiers.add(tier);
                capacities[t] = tier.capacity();
            }
            long[] hits = new long[tiers.size()];
            long ssd = 0;
            long[] batch = new long[batchSize];
            long[] missed = new long[batchSize];
            float[] value = new float[1];
            long[] nowPerTier = new long[tiers.size()];
            EvictionSink[] demote = new EvictionSink[tiers.size()];
            for (int t = 0; t < tiers.size(); t++) {
                final int below = t + 1;
                demote[t] = below < tiers.size()
                        ? (key, v, dirty) -> tiers.get(below).put(key, v, 0, dirty, -1, nowPerTier[below], EvictionSink.DISCARD)
                        : EvictionSink.DISCARD;
            }
            for (long done = 0; done < accesses; ) {
                int n = (int) Math.min(batchSize, accesses - done);
                for (int i = 0; i < n; i++) {
                    batch[i] = keys.next();
                }
                int pending = n;
                System.arraycopy(batch, 0, missed, 0, n);
                int[] servedBy = new int[n];
                Arrays.fill(servedBy, -1);
                for (int t = 0; t < tiers.size() && pending > 0; t++) {
                    DramTier tier = tiers.get(t);
                    nowPerTier[t] = tier.tick();
                    tier.policy().recordAccesses(missed, 0, pending);
                    int still = 0;
                    for (int i = 0; i < pending; i++) {
                        if (tier.getOrVersion(missed[i], value, 0, nowPerTier[t]) == DramTier.HIT) {
                            hits[t]++;
                            if (t > 0 && topAdmission.test(missed[i])) {
                                promote(tiers, t, missed[i], value, nowPerTier, demote);
                            }
                        } else {
                            missed[still++] = missed[i];
                        }
                    }
                    pending = still;
                }
                ssd += pending;
                for (int i = 0; i < pending; i++) {
                    value[0] = 0;
                    if (topAdmission.test(missed[i])) {
                        tiers.get(0).put(missed[i], value, 0, false, -1, nowPerTier[0], demote[0]);
                    } else if (tiers.size() > 1) {
                        tiers.get(1).put(missed[i], value, 0, false, -1, nowPerTier[1], demote[1]);
                    }
                }
                done += n;
            }
            return new Result(tiers.get(0).policy().name(), capacities, hits, ssd, accesses);
        } finally {
            for (DramTier t : tiers) {
                t.close();
            }
        }
    }

    private static void promote(List<DramTier> tiers, int from, long key, float[] value, long[] now,
            EvictionSink[] demote) {
        if (tiers.get(0).put(key, value, 0, false, -1, now[0], demote[0]) != DramTier.PutResult.REJECTED) {
            tiers.get(from).remove(key);
        }
    }
}
