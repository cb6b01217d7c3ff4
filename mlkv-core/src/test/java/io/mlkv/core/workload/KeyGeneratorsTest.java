package io.mlkv.core.workload;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KeyGeneratorsTest {
    @TempDir
    Path dir;

    private static KeyGenerator gen(String name, long n) {
        return KeyGenerators.create(new KeyGenerators.Spec(name, n, 0.99, 0.2, 0.8, 42));
    }

    @Test
    void zipfianRankFrequenciesFollowThePowerLaw() {
        long n = 1000;
        int draws = 400_000;
        long[] counts = new long[(int) n];
        KeyGenerator z = gen("zipfian", n);
        for (int i = 0; i < draws; i++) {
            long k = z.next();
            assertTrue(k >= 0 && k < n, "key " + k);
            counts[(int) k]++;
        }
        double zeta = 0;
        for (int i = 1; i <= n; i++) {
            zeta += 1 / Math.pow(i, 0.99);
        }
        double expected0 = draws / zeta;
        assertEquals(expected0, counts[0], expected0 * 0.05, "rank 0");
        // rank 9 (the tenth) should be about 10^-0.99 of rank 0
        assertEquals(counts[0] / Math.pow(10, 0.99), counts[9], counts[0] * 0.03, "rank 9");
    }

    @Test
    void scrambledZipfianSpreadsTheHotKeys() {
        KeyGenerator s = gen("scrambled", 1_000_000);
        long small = 0;
        for (int i = 0; i < 10_000; i++) {
            small += s.next() < 1000 ? 1 : 0;
        }
        assertTrue(small < 200, small + " draws fell in the first 1000 keys");
    }

    @Test
    void latestFavoursTheNewestKeysAndFollowsInserts() {
        KeyGenerator l = gen("latest", 1000);
        int recent = 0;
        for (int i = 0; i < 10_000; i++) {
            recent += l.next() >= 990 ? 1 : 0;
        }
        assertTrue(recent > 3000, recent + " of 10000 draws were among the 10 newest keys");
        l.grow(500);
        long max = 0;
        for (int i = 0; i < 1000; i++) {
            max = Math.max(max, l.next());
        }
        assertEquals(1499, max);
    }

    @Test
    void hotspotSendsTheHotShareToTheHotSet() {
        KeyGenerator h = gen("hotspot", 1000);
        int hot = 0;
        for (int i = 0; i < 20_000; i++) {
            hot += h.next() < 200 ? 1 : 0;
        }
        assertEquals(16_000, hot, 400);
    }

    @Test
    void tracesAreReadAsTextOrBinaryAndBadLinesAreNamed() throws IOException {
        Path text = dir.resolve("t.txt");
        Files.writeString(text, "# comment\n5\n-3\n\n9\n");
        assertArrayEquals(new long[] {5, -3, 9}, KeyGenerators.readTrace(text));
        KeyGenerator g = KeyGenerators.fromFile(text);
        assertArrayEquals(new long[] {5, -3, 9, 5}, new long[] {g.next(), g.next(), g.next(), g.next()});
        Path bin = dir.resolve("t.bin");
        ByteBuffer bb = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN).putLong(1).putLong(Long.MAX_VALUE).putLong(-7);
        Files.write(bin, bb.array());
        assertArrayEquals(new long[] {1, Long.MAX_VALUE, -7}, KeyGenerators.readTrace(bin));
        Files.writeString(text, "1\ntwo\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KeyGenerators.readTrace(text));
        assertTrue(e.getMessage().contains("line 2"), e.getMessage());
    }

    @Test
    void badSpecsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> gen("gaussian", 10));
        assertThrows(IllegalArgumentException.class, () -> new ZipfianGenerator(10, 1.5, 1));
        assertThrows(IllegalArgumentException.class, () -> gen("uniform", 0));
    }
}
