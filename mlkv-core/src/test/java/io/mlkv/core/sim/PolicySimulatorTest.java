package io.mlkv.core.sim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.core.workload.KeyGenerator;
import io.mlkv.core.workload.KeyGenerators;
import org.junit.jupiter.api.Test;

class PolicySimulatorTest {
    @Test
    void aWorkingSetThatFitsMissesOnlyOnFirstTouch() {
        long[] k = {0};
        KeyGenerator cyclic = () -> k[0]++ % 100;
        PolicySimulator.Result r = PolicySimulator.run("lru", new long[] {16 * 64}, cyclic, 10_000, 10);
        assertEquals(100, r.ssdReads());
        assertEquals(9_900, r.hits()[0]);
    }

    @Test
    void everyAccessIsServedExactlyOnceAcrossTiers() {
        KeyGenerator z = KeyGenerators.create(new KeyGenerators.Spec("zipfian", 100_000, 0.99, 0.2, 0.8, 7));
        PolicySimulator.Result r = PolicySimulator.run("lfu", new long[] {1024, 8192}, z, 200_000, 256);
        assertEquals(200_000, r.hits()[0] + r.hits()[1] + r.ssdReads());
        assertTrue(r.hits()[1] > 0, "the second tier served nothing: " + r);
        assertTrue(r.hitRate(0) > 0.3, "a 1% cache under zipf 0.99 should serve a third: " + r);
    }

    /**
     * A hot set read over and over, interleaved with a scan of keys read once: admitting a key
     * to the top tier only on its second miss keeps the scan out, so the hot set stays on top;
     * admitting every key lets the scan push it down.
     */
    @Test
    void secondMissAdmissionKeepsAScanOutOfTheTopTier() {
        long[] step = {0};
        long[] scan = {1_000_000};
        KeyGenerator hotAndScan = () -> step[0]++ % 2 == 0 ? step[0] % 1600 : scan[0]++; // 800 hot keys
        long[] tiers = {1024, 16 * 1024};
        PolicySimulator.Result always = PolicySimulator.run("lru", tiers, hotAndScan, 200_000, 64,
                io.mlkv.core.HbmAdmission.ALWAYS.newFilter(tiers[0]));
        step[0] = 0;
        scan[0] = 1_000_000;
        PolicySimulator.Result secondMiss = PolicySimulator.run("lru", tiers, hotAndScan, 200_000, 64,
                io.mlkv.core.HbmAdmission.SECOND_MISS.newFilter(tiers[0]));
        assertEquals(200_000, secondMiss.hits()[0] + secondMiss.hits()[1] + secondMiss.ssdReads());
        assertTrue(secondMiss.hitRate(0) > always.hitRate(0) + 0.1,
                "top tier: second miss " + secondMiss + " against always " + always);
        assertEquals(always.ssdReads(), secondMiss.ssdReads(), "the scan reads the SSD once per key either way, plus the hot set once");
    }

    @Test
    void tinyLfuBeatsLruWhenScansPolluteAZipfianWorkload() {
        double lru = scanPollutedHitRate("lru");
        double tiny = scanPollutedHitRate("tinylfu");
        // Half the accesses are zipfian, so about a third is the best any policy can serve here.
        assertTrue(tiny > lru * 1.1, "tinylfu " + tiny + " vs lru " + lru);
    }

    /** Zipfian reads over 10^5 keys, every other access replaced by a never-repeated key. */
    private static double scanPollutedHitRate(String policy) {
        KeyGenerator z = KeyGenerators.create(new KeyGenerators.Spec("zipfian", 100_000, 0.99, 0.2, 0.8, 11));
        long[] state = {0, 1L << 40};
        KeyGenerator mixed = () -> (state[0]++ & 1) == 0 ? z.next() : state[1]++;
        PolicySimulator.Result r = PolicySimulator.run(policy, new long[] {4096}, mixed, 400_000, 128);
        return r.hitRate(0);
    }
}
