package io.mlkv.core.hbm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** What a reader learns from the demotion stamps about dirty entries that moved below. */
class WriteBackTransitTest {

    @Test
    void aKeyDemotedDuringOrAfterTheReadersLookupIsReportedAndOnlyThen() {
        WriteBackTransit t = new WriteBackTransit();
        t.noteDirtyWrites();
        long key = 42;
        long idle = t.moves();
        assertFalse(t.demotedSince(key, idle), "nothing moved yet");

        long beforeMove = t.moves();
        t.beginMove();
        long duringMove = t.moves();
        t.markDemoted(key);
        t.endMove();
        assertTrue(t.demotedSince(key, beforeMove), "moved after a lookup that read the count before the move");
        assertTrue(t.demotedSince(key, duringMove), "moved in the move that was running at the lookup");
        assertFalse(t.demotedSince(key, t.moves()), "a lookup after the move ended needs no second read");

        long later = t.moves();
        t.beginMove();
        t.markDemoted(key + 1);
        t.endMove();
        assertEquals(sharesStamp(key, key + 1), t.demotedSince(key, later),
                "another key's demotion concerns this key only where they share a stamp");
        assertFalse(sharesStamp(key, key + 1) && sharesStamp(key, key + 2) && sharesStamp(key, key + 3),
                "keys spread over the stamps");
    }

    @Test
    void demotionsOutnumberingTheStampsMarkEveryKey() {
        WriteBackTransit t = new WriteBackTransit();
        t.noteDirtyWrites();
        int n = 1 << 14;
        long[] keys = new long[n];
        boolean[] which = new boolean[n];
        for (int i = 0; i < n; i++) {
            keys[i] = i * 3L;
            which[i] = true;
        }
        long before = t.moves();
        t.beginMove();
        t.markDemoted(keys, which, n);
        t.endMove();
        for (long k = -1000; k < 1000; k += 7) {
            assertTrue(t.demotedSince(k, before), "key " + k);
        }
    }

    @Test
    void everyStampMarkedAtOnceReportsOnlyLookupsThatOverlappedItsMove() {
        WriteBackTransit t = new WriteBackTransit();
        t.noteDirtyWrites();
        long before = t.moves();
        t.beginMove();
        t.markAllDemoted();
        t.endMove();
        long after = t.moves();
        for (long k = -1000; k < 1000; k += 7) {
            assertTrue(t.demotedSince(k, before), "key " + k + ", lookup before the move");
            assertFalse(t.demotedSince(k, after), "key " + k + ", lookup after the move");
        }
        // A later move that demotes one key reports that key (and its stamp's sharers) alone.
        long key = 12_345;
        t.beginMove();
        t.markDemoted(key);
        t.endMove();
        assertTrue(t.demotedSince(key, after), "demoted in the later move");
        int reported = 0;
        for (long k = 0; k < 4096; k++) {
            reported += t.demotedSince(k, after) ? 1 : 0;
        }
        assertTrue(reported < 16, "only keys sharing the stamp of " + key + " are reported, not every key: " + reported);
    }

    /** Whether a demotion of {@code other} reports {@code key} too, asked of a fresh transit. */
    private static boolean sharesStamp(long key, long other) {
        WriteBackTransit probe = new WriteBackTransit();
        probe.noteDirtyWrites();
        probe.beginMove();
        probe.markDemoted(other);
        probe.endMove();
        return probe.demotedSince(key, 0);
    }
}
