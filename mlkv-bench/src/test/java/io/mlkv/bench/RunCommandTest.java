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
        String message = refused("--gpu", "OFF", "--durability", "WRITE_THROUGH", "--hbm-write-back");
        assertTrue(message.contains("--hbm-write-back needs --durability WRITE_BACK"), message);
    }

    @Test
    void aSpillLogWithoutTheGpuTierIsRefusedBeforeAnythingIsOpened() {
        String message = refused("--gpu", "OFF", "--hbm-spill-rows", "1000");
        assertTrue(message.contains("--hbm-spill-rows") && message.contains("--gpu AUTO or ON"), message);
    }

    @Test
    void theStoreBenchWithoutAGpuSaysWhyAndOpensNothing() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.mlkv.gpu.cuda.CudaDevice.unavailableReason() != null
                || !io.mlkv.gpu.cuda.Kernels.built(), "this machine has a GPU: store-bench would run");
        PrintStream err = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        int code;
        try {
            code = io.mlkv.cli.Cli.commandLine(new Main()).execute("store-bench", "--records", "1000", "--dir",
                    dir.resolve("store").toString());
        } finally {
            System.setErr(err);
        }
        assertEquals(2, code);
        String message = captured.toString(StandardCharsets.UTF_8);
        assertTrue(message.contains("needs a CUDA GPU"), message);
        assertTrue(!Files.exists(dir.resolve("store")), "no store was created");
    }

    /** Runs workload A with {@code options}; asserts exit code 2 and no store created; returns what went to stderr. */
    private String refused(String... options) {
        PrintStream err = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("run", "-w", "workloada", "--records",
                "100", "--operations", "2", "--dir", dir.resolve("store").toString(), "--out", dir.resolve("out").toString()));
        args.addAll(java.util.List.of(options));
        int code;
        try {
            code = io.mlkv.cli.Cli.commandLine(new Main()).execute(args.toArray(new String[0]));
        } finally {
            System.setErr(err);
        }
        assertEquals(2, code);
        assertTrue(!Files.exists(dir.resolve("store")), "no store was created");
        return captured.toString(StandardCharsets.UTF_8);
    }
}
