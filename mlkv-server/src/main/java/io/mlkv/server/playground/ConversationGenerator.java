package io.mlkv.server.playground;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Writes a multi-turn conversation file for the playground: a few shared system prompts, and
 * conversations that each start from one of them and grow turn by turn, as a chat service's
 * prompts do. Each line is one request's whole prompt, in the order a serving fleet would see
 * them (every conversation's turn 1, then every turn 2, ...).
 *
 * <p>Format: a first line {@code # mlkv conversations v1}, then one line per prompt:
 * {@code <conversation>\t<turn>\t<token> <token> ...} (decimal tokens).
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Writes a realistic multi-turn conversation token file for the playground.")
public final class ConversationGenerator implements Callable<Integer> {
    static final String HEADER = "# mlkv conversations v1";

    @Option(names = "--out", required = true, description = "File to write.")
    Path out;

    @Option(names = "--conversations", defaultValue = "200", description = "Conversations (default ${DEFAULT-VALUE}).")
    int conversations;

    @Option(names = "--turns", defaultValue = "6", description = "Turns per conversation (default ${DEFAULT-VALUE}).")
    int turns;

    @Option(names = "--system-prompts", defaultValue = "4", description = "Shared system prompts (default ${DEFAULT-VALUE}).")
    int systemPrompts;

    @Option(names = "--system-tokens", defaultValue = "1024", description = "Mean system prompt length (default ${DEFAULT-VALUE}).")
    int systemTokens;

    @Option(names = "--turn-tokens", defaultValue = "300", description = "Mean tokens a turn adds, user and answer (default ${DEFAULT-VALUE}).")
    int turnTokens;

    @Option(names = "--vocab", defaultValue = "128000", description = "Vocabulary size (default ${DEFAULT-VALUE}).")
    int vocab;

    @Option(names = "--seed", defaultValue = "42", description = "Random seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() throws IOException {
        if (conversations < 1 || turns < 1 || systemPrompts < 1 || systemTokens < 1 || turnTokens < 1 || vocab < 2) {
            throw new IllegalArgumentException("--conversations, --turns, --system-prompts, --system-tokens and "
                    + "--turn-tokens must be positive and --vocab at least 2");
        }
        long lines = write(out, conversations, turns, systemPrompts, systemTokens, turnTokens, vocab, seed);
        System.out.println("wrote " + lines + " prompts to " + out);
        return 0;
    }

    /** Writes the file; returns the number of prompts. Lengths vary uniformly by +-50 % around the means. */
    public static long write(Path file, int conversations, int turns, int systemPrompts, int systemTokens,
            int turnTokens, int vocab, long seed) throws IOException {
        SplittableRandom rnd = new SplittableRandom(seed);
        List<int[]> systems = new ArrayList<>();
        for (int s = 0; s < systemPrompts; s++) {
            systems.add(tokens(rnd, around(rnd, systemTokens), vocab));
        }
        List<List<Integer>> history = new ArrayList<>();
        for (int c = 0; c < conversations; c++) {
            List<Integer> h = new ArrayList<>();
            for (int t : systems.get(rnd.nextInt(systemPrompts))) {
                h.add(t);
            }
            history.add(h);
        }
        long lines = 0;
        try (BufferedWriter w = Files.newBufferedWriter(file, StandardCharsets.US_ASCII)) {
            w.write(HEADER);
            w.newLine();
            for (int turn = 1; turn <= turns; turn++) {
                for (int c = 0; c < conversations; c++) {
                    List<Integer> h = history.get(c);
                    // The user's new message; the answer joins the history after the request.
                    int user = Math.max(1, around(rnd, turnTokens) / 3);
                    for (int t : tokens(rnd, user, vocab)) {
                        h.add(t);
                    }
                    StringBuilder line = new StringBuilder(h.size() * 7);
                    line.append(c).append('\t').append(turn).append('\t');
                    for (int i = 0; i < h.size(); i++) {
                        if (i > 0) {
                            line.append(' ');
                        }
                        line.append(h.get(i));
                    }
                    w.write(line.toString());
                    w.newLine();
                    lines++;
                    for (int t : tokens(rnd, around(rnd, turnTokens) - user, vocab)) {
                        h.add(t);
                    }
                }
                System.err.printf("[generate] turn %d/%d written%n", turn, turns);
            }
        }
        return lines;
    }

    private static int around(SplittableRandom rnd, int mean) {
        return Math.max(1, mean / 2 + rnd.nextInt(mean + 1));
    }

    private static int[] tokens(SplittableRandom rnd, int n, int vocab) {
        int[] t = new int[Math.max(0, n)];
        for (int i = 0; i < t.length; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }

    /**
     * Reads a conversation file into prompts.
     *
     * @throws IOException              if it cannot be read
     * @throws IllegalArgumentException naming the line, if it is not in the format above
     */
    public static List<int[]> read(Path file) throws IOException {
        List<String> lines = Files.readAllLines(file, StandardCharsets.US_ASCII);
        if (lines.isEmpty() || !lines.get(0).equals(HEADER)) {
            throw new IllegalArgumentException(file + " is not a conversation file: its first line must be '" + HEADER + "'");
        }
        List<int[]> prompts = new ArrayList<>(lines.size() - 1);
        for (int n = 1; n < lines.size(); n++) {
            String[] fields = lines.get(n).split("\t");
            if (fields.length != 3) {
                throw new IllegalArgumentException(file + " line " + (n + 1) + ": expected 3 tab-separated fields");
            }
            String[] toks = fields[2].trim().split(" +");
            int[] p = new int[toks.length];
            try {
                for (int i = 0; i < toks.length; i++) {
                    p[i] = Integer.parseUnsignedInt(toks[i]);
                }
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(file + " line " + (n + 1) + ": " + e.getMessage());
            }
            prompts.add(p);
        }
        return prompts;
    }
}
