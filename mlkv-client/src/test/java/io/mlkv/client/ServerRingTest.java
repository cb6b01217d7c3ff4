package io.mlkv.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class ServerRingTest {
    private static final List<String> FOUR = List.of("h:8085", "h:8086", "h:8087", "h:8088");

    @Test
    void everyClientWithTheSameListChoosesTheSameServer() {
        ServerRing a = new ServerRing(FOUR);
        ServerRing b = new ServerRing(List.copyOf(FOUR));
        for (int p = 0; p < 1000; p++) {
            assertEquals(a.owner("tenant-" + p), b.owner("tenant-" + p));
        }
    }

    @Test
    void partitionsSpreadOverAllServers() {
        ServerRing ring = new ServerRing(FOUR);
        int[] counts = new int[4];
        for (int p = 0; p < 4000; p++) {
            counts[ring.ownerIndex("tenant-" + p)]++;
        }
        for (int c : counts) {
            assertTrue(c > 800 && c < 1200, "uneven spread: " + java.util.Arrays.toString(counts));
        }
    }

    @Test
    void addingAServerMovesOnlyThePartitionsItTakes() {
        ServerRing before = new ServerRing(FOUR);
        ServerRing after = new ServerRing(List.of("h:8085", "h:8086", "h:8087", "h:8088", "h:8089"));
        int moved = 0;
        for (int p = 0; p < 5000; p++) {
            String key = "tenant-" + p;
            if (!before.owner(key).equals(after.owner(key))) {
                assertEquals("h:8089", after.owner(key), key + " moved between old servers");
                moved++;
            }
        }
        assertTrue(moved > 700 && moved < 1300, "about a fifth should move, moved " + moved);
    }

    @Test
    void emptyOrDuplicateListsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new ServerRing(List.of()));
        assertThrows(IllegalArgumentException.class, () -> new ServerRing(List.of("a:1", "a:1")));
    }
}
