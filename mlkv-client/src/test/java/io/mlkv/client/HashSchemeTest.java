package io.mlkv.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The block hash schemes against test vectors computed with an independent XXH3 implementation
 * (the xxHash library's own C code, through the npm package {@code @node-rs/xxhash}), and their
 * properties: salts separate prompts, a chained first block is its local hash.
 */
class HashSchemeTest {
    /** Three blocks of four tokens; the third has every byte pattern of a u32 edge. */
    private static final int[] TOKENS = {1, 2, 3, 4, 5, 6, 7, 8, -1, 0, 128, 65536};
    private static final HashScheme CHAINED = HashScheme.chainedXxh3(1337);

    @Test
    void mlkvV1MatchesItsTestVectorsWithAndWithoutASalt() {
        assertArrayEquals(new long[] {0x341839abbe30be0bL, 0x37b6de0623bdb5caL, 0xc8795e32e0928f5eL},
                HashScheme.MLKV_V1.prompt(TOKENS, 4, null));
        assertArrayEquals(HashScheme.MLKV_V1.prompt(TOKENS, 4, null), BlockHash.ofPrompt(TOKENS, 4),
                "BlockHash is the mlkv-v1 scheme");
        assertEquals(0x845040508f239358L, HashScheme.MLKV_V1.root("model-a"));
        assertArrayEquals(new long[] {0xe6a5664e075cbcdaL, 0x7557a7a2bbd7adbbL, 0x656a096c9d0922cdL},
                HashScheme.MLKV_V1.prompt(TOKENS, 4, "model-a"));
    }

    @Test
    void chainedXxh3MatchesItsTestVectorsWithAndWithoutASalt() {
        long local0 = 0xcb38e4d7fb2dca5cL;
        assertArrayEquals(new long[] {local0, 0x44a2b2379d6d3c3dL, 0xef7c347b2722b5f2L}, CHAINED.prompt(TOKENS, 4, null),
                "the first block's hash is its local hash");
        assertEquals(0x99e986257fc6868aL, CHAINED.root("model-a"));
        assertArrayEquals(new long[] {0xd50f22a2f5e8da9cL, 0xa9d607b872aadd39L, 0xdbf0a69ef7f7de70L},
                CHAINED.prompt(TOKENS, 4, "model-a"));
        assertArrayEquals(new long[] {0x6fc1ebd4f4d6ea31L, 0x3a14937fd5340c7aL, 0xca04a0fcaf389769L},
                HashScheme.chainedXxh3(0).prompt(TOKENS, 4, null), "the seed matters");
    }

    @Test
    void aBlockHashedFromItsParentEqualsThePromptsHashAtThatPosition() {
        SplittableRandom rnd = new SplittableRandom(7);
        int[] prompt = rnd.ints(10 * 16).toArray();
        for (HashScheme s : new HashScheme[] {HashScheme.MLKV_V1, CHAINED}) {
            for (String salt : new String[] {null, "", "tenant-7"}) {
                long[] all = s.prompt(prompt, 16, salt);
                long parent = s.root(salt);
                for (int b = 0; b < all.length; b++) {
                    assertEquals(all[b], s.block(parent, prompt, b * 16, 16), s + " salt " + salt + " block " + b);
                    parent = all[b];
                }
            }
        }
    }

    @Test
    void twoSaltsNeverShareABlockAndNoSaltIsTheEmptySalt() {
        SplittableRandom rnd = new SplittableRandom(11);
        int[] prompt = rnd.ints(8 * 16).toArray();
        for (HashScheme s : new HashScheme[] {HashScheme.MLKV_V1, CHAINED}) {
            long[] a = s.prompt(prompt, 16, "model-a");
            long[] b = s.prompt(prompt, 16, "model-b");
            long[] none = s.prompt(prompt, 16, null);
            for (int i = 0; i < a.length; i++) {
                assertNotEquals(a[i], b[i], s + " block " + i);
                assertNotEquals(a[i], none[i], s + " block " + i);
            }
            assertArrayEquals(none, s.prompt(prompt, 16, ""));
        }
    }

    @Test
    void schemesParseFromWhatTheyPrintAndBadTextIsNamed() {
        assertEquals(HashScheme.MLKV_V1, HashScheme.parse("mlkv-v1"));
        assertEquals(CHAINED, HashScheme.parse("chained-xxh3"));
        assertEquals(CHAINED, HashScheme.parse("Chained-XXH3:1337"));
        assertEquals("chained-xxh3:18446744073709551615", HashScheme.chainedXxh3(-1).toString());
        for (HashScheme s : new HashScheme[] {HashScheme.MLKV_V1, CHAINED, HashScheme.chainedXxh3(-1)}) {
            assertEquals(s, HashScheme.parse(s.toString()));
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> HashScheme.parse("sha256")).getMessage()
                .contains("'sha256'"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> HashScheme.parse("chained-xxh3:-5")).getMessage()
                .contains("seed"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> CHAINED.root("x".repeat(257))).getMessage()
                .contains("257"));
    }
}
