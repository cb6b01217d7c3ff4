package io.mlkv.core;

import io.mlkv.core.hbm.HbmShards;
import io.mlkv.core.hbm.HbmTier;
import io.mlkv.core.tiers.HostTiers;
import io.mlkv.gpu.spill.SpillLog;
import java.util.List;

/** Reads the tiers' counters into a {@link StoreStats}, one {@link TierStats} per tier, top down. */
final class StatsReader {
    private StatsReader() {
    }

    /**
     * @param hbm   null without an HBM tier
     * @param spill null without a spill log
     */
    static StoreStats read(long rowBytes, HostTiers host, HbmShards hbm, SpillLog spill, long entries, long prefetched) {
        HostTiers.Counters h = host.counters();
        TierStats d = new TierStats("DRAM", h.dramHits(), h.dramMisses(), h.promotions(), h.dramEvictions(),
                h.writeBacks(), h.promotions() * rowBytes, h.writeBacks() * rowBytes, h.dramEntries(), h.dramCapacity(),
                h.dramNanos() + (hbm == null ? 0 : hbm.dramProbeNanos()),
                h.dramMoveNanos() + (hbm == null ? 0 : hbm.dramWriteNanos()));
        TierStats s = new TierStats("SSD", h.ssdHits(), h.ssdMisses(), 0, 0, 0, h.writeBacks() * rowBytes,
                h.promotions() * rowBytes, entries, -1, h.ssdNanos(), 0);
        List<TierStats> tiers = hbm == null ? List.of(d, s)
                : spill == null ? List.of(hbmStats(hbm, rowBytes), d, s)
                : List.of(hbmStats(hbm, rowBytes), d, spillStats(hbm, spill, rowBytes), s);
        return new StoreStats(tiers, entries, prefetched);
    }

    private static TierStats hbmStats(HbmShards hbm, long rowBytes) {
        HbmTier.Counters c = hbm.counters();
        return new TierStats("HBM", c.hits(), c.misses(), c.installs(), c.evictions(), c.writeBacks(),
                c.installs() * rowBytes, c.writeBacks() * rowBytes, c.entries(), c.capacity(), c.lookupNanos(),
                c.installNanos());
    }

    /** The spill log as a tier: promotions are rows written to it, demotions rows the ring overwrote. */
    private static TierStats spillStats(HbmShards hbm, SpillLog spill, long rowBytes) {
        SpillLog.Stats st = spill.stats();
        return new TierStats("SPILL", st.rowsRead(), st.misses() + st.lostToOverwrite(), st.appended(), st.overwritten(), 0,
                st.appended() * rowBytes, st.rowsRead() * rowBytes, spill.entries(), spill.slots(), st.readNanos(),
                hbm.spillAppendNanos());
    }
}
