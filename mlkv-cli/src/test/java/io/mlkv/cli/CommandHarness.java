package io.mlkv.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Runs a command line in this JVM as a user would, everything it prints captured, and checks what
 * a mistake must look like; for the tests of every MLKV command.
 */
public final class CommandHarness {
    private CommandHarness() {
    }

    /** What a run printed (standard output and error together, in order) and its exit code. */
    public record Result(int exitCode, String output) {
        /** The non-blank lines, without log lines at INFO level. */
        public List<String> lines() {
            return output.lines().filter(l -> !l.isBlank() && !l.contains(" INFO ")).toList();
        }
    }

    /** Runs {@code command} (a picocli command object) with {@code args}, as {@link Cli} configures it. */
    public static Result run(Object command, String... args) {
        PrintStream savedOut = System.out;
        PrintStream savedErr = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        PrintStream both = new PrintStream(captured, true, StandardCharsets.UTF_8);
        int code;
        try {
            System.setOut(both);
            System.setErr(both);
            picocli.CommandLine cl = Cli.commandLine(command);
            cl.setOut(new PrintWriter(both, true));
            cl.setErr(new PrintWriter(both, true));
            code = cl.execute(args);
        } finally {
            System.setOut(savedOut);
            System.setErr(savedErr);
        }
        return new Result(code, captured.toString(StandardCharsets.UTF_8));
    }

    /**
     * A mistake: exit code 2, one line that starts with {@code commandName} and names
     * {@code named}, and no stack trace.
     */
    public static void assertOneLineMistake(Result r, String commandName, String named) {
        assertEquals(Cli.USAGE, r.exitCode(), r.output());
        List<String> lines = r.lines();
        assertEquals(1, lines.size(), "one line, not:\n" + r.output());
        assertTrue(lines.get(0).startsWith(commandName), "names the command: " + lines.get(0));
        assertTrue(lines.get(0).contains(named), "names " + named + ": " + lines.get(0));
        assertFalse(r.output().contains("\tat "), "a stack trace: " + r.output());
    }
}
