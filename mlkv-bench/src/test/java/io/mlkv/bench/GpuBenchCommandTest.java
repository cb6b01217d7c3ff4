package io.mlkv.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** gpu-bench's checks of its options, which come before any GPU is touched. */
class GpuBenchCommandTest {

    @Test
    void callCostBatchSizesOutsideTheTableAreRefusedBeforeAnyGpuWork() {
        String message = refused("--call-cost", "64,0");
        assertTrue(message.contains("--call-cost batch sizes must be 1 to 524288") && message.contains("[64, 0]"), message);
        message = refused("--call-cost", "1048576");
        assertTrue(message.contains("--call-cost batch sizes"), message);
    }

    @Test
    void aRepeatBelowOneIsRefused() {
        String message = refused("--repeat", "0");
        assertTrue(message.contains("--repeat must be at least 1"), message);
    }

    private static String refused(String... options) {
        PrintStream err = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        String[] args = new String[options.length + 1];
        args[0] = "gpu-bench";
        System.arraycopy(options, 0, args, 1, options.length);
        int code;
        try {
            code = io.mlkv.cli.Cli.commandLine(new Main()).execute(args);
        } finally {
            System.setErr(err);
        }
        String message = captured.toString(StandardCharsets.UTF_8);
        assertEquals(2, code, message);
        return message;
    }
}
