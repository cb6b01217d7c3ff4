package io.mlkv.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class RunCommandTest {
    @TempDir
    Path dir;

    @Test
    void hbmWriteBackWithWriteThroughIsRefusedBeforeAnythingIsOpened() {
        PrintStream err = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        int code;
        try {
            code = new CommandLine(new Main()).execute("run", "-w", "workloada", "--records", "100", "--operations", "2",
                    "--gpu", "OFF", "--durability", "WRITE_THROUGH", "--hbm-write-back",
                    "--dir", dir.resolve("store").toString(), "--out", dir.resolve("out").toString());
        } finally {
            System.setErr(err);
        }
        assertEquals(2, code);
        String message = captured.toString(StandardCharsets.UTF_8);
        assertTrue(message.contains("--hbm-write-back needs --durability WRITE_BACK"), message);
        assertTrue(!Files.exists(dir.resolve("store")), "no store was created");
    }
}
