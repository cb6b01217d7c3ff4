package io.mlkv.server.playground;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.client.TokenCacheClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PlaygroundTest {
    @TempDir
    Path dir;

    @Test
    void generatedConversationsGrowTurnByTurnAndShareSystemPrompts() throws Exception {
        Path file = dir.resolve("conv.txt");
        assertEquals(30, ConversationGenerator.write(file, 10, 3, 2, 300, 200, 1000, 5));
        List<int[]> prompts = ConversationGenerator.read(file);
        assertEquals(30, prompts.size());
        for (int c = 0; c < 10; c++) {
            int[] turn1 = prompts.get(c);
            int[] turn2 = prompts.get(10 + c);
            assertTrue(turn2.length > turn1.length);
            assertEquals(java.util.Arrays.toString(turn1),
                    java.util.Arrays.toString(java.util.Arrays.copyOf(turn2, turn1.length)), "turn 2 extends turn 1");
        }
        assertEquals(ConversationGenerator.write(dir.resolve("again.txt"), 10, 3, 2, 300, 200, 1000, 5), 30);
        assertEquals(Files.readString(file), Files.readString(dir.resolve("again.txt")), "same seed, same file");
    }

    @Test
    void theReplayHitsWhatEarlierTurnsWroteAndLosesNothing() throws Exception {
        Path file = dir.resolve("conv.txt");
        ConversationGenerator.write(file, 12, 4, 2, 512, 300, 32000, 9);
        List<int[]> prompts = ConversationGenerator.read(file);
        try (EmbeddedServer server = new EmbeddedServer(128, List.of("default"));
             TokenCacheClient client = TokenCacheClient.builder().endpoints(server.endpoint()).build()) {
            Playground.Report first = Playground.run(client, prompts, 1, 1, true);
            assertEquals(prompts.size(), first.prompts());
            assertEquals(0, first.missingAfterVerify());
            assertTrue(first.hitRate() > 0.3, "later turns and shared system prompts hit: " + first.hitRate());
            Playground.Report second = Playground.run(client, prompts, 3, 1, false);
            assertEquals(1.0, second.hitRate(), 1e-9, "a second pass finds every block");
            assertEquals(0, second.writes());
            assertEquals(-1, second.missingAfterVerify());
        }
    }

    @Test
    void aFileInAnotherFormatIsRefusedWithTheLine() throws Exception {
        Path bad = dir.resolve("bad.txt");
        Files.writeString(bad, ConversationGenerator.HEADER + "\n0\t1\t5 6 x\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ConversationGenerator.read(bad));
        assertTrue(e.getMessage().contains("line 2"), e.getMessage());
        Files.writeString(bad, "hello\n");
        assertThrows(IllegalArgumentException.class, () -> ConversationGenerator.read(bad));
    }
}
