package io.mlkv.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.mlkv.cli.CommandHarness;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Each command with each ordinary mistake: exit code 2, one line that names the option or the
 * problem, no stack trace, and no store, result or temporary directory left behind.
 */
class CommandMistakesTest {
    @TempDir
    Path dir;

    static Stream<Arguments> mistakes() {
        return Stream.of(
                Arguments.of("run --policy xyz", "policy 'xyz'"),
                Arguments.of("run --dram-mb -5", "--dram-mb"),
                Arguments.of("run --dram-mb 0", "--dram-mb"),
                Arguments.of("run --dim 0", "--dim"),
                Arguments.of("run --dim 70000", "--dim"),
                Arguments.of("run --hbm-entries 0", "--hbm-entries"),
                Arguments.of("run --gpu ON", "GpuMode.ON"),
                Arguments.of("run --gpu SOMETIMES", "--gpu"),
                Arguments.of("run --durability sometimes", "--durability"),
                Arguments.of("run --distribution zipfan", "'zipfan'"),
                Arguments.of("run --theta -1", "--theta"),
                Arguments.of("run --theta 1.5", "--theta"),
                Arguments.of("run --threads -1", "--threads"),
                Arguments.of("run --threads 0", "--threads"),
                Arguments.of("run --batch 0", "batchsize"),
                Arguments.of("run -w embedding-train --verify", "--verify"),
                Arguments.of("run -w no-such-workload", "no-such-workload"),
                Arguments.of("run -w workloade", "range scans"),
                Arguments.of("run --polcy lru", "--polcy"),
                Arguments.of("run --device-reads --gpu OFF", "--device-reads"),
                Arguments.of("simulate --trace DIR/nope.txt", "--trace"),
                Arguments.of("simulate --keys -1", "--keys"),
                Arguments.of("simulate --tiers -1", "--tiers"),
                Arguments.of("simulate --tiers 10,0", "--tiers"),
                Arguments.of("simulate --policies xyz", "--policies"),
                Arguments.of("simulate --distribution zipfan", "'zipfan'"),
                Arguments.of("simulate --accesses 0", "--accesses"),
                Arguments.of("simulate --batch 0", "--batch"),
                Arguments.of("demo --vectors 0", "--vectors"),
                Arguments.of("batch-bench --dim 0", "--dim"),
                Arguments.of("batch-bench --dram-mb 0", "--dram-mb"),
                Arguments.of("batch-bench --durability sometimes", "--durability"),
                Arguments.of("store-bench --dim 0", "--dim"),
                Arguments.of("gpu-io --dim 70000", "--dim"),
                Arguments.of("nonsense", "nonsense"));
    }

    static Stream<Arguments> gpuMistakes() {
        return Stream.of(Arguments.of("gpu-bench", "CUDA"), Arguments.of("gpu-io", "CUDA"),
                Arguments.of("store-bench --records 1000", "CUDA"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("mistakes")
    void aMistakeIsOneLineAndExitCode2(String command, String named) throws IOException {
        assertRefused(command, named);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("gpuMistakes")
    void gpuCommandsWithoutAGpuAreOneLine(String command, String named) throws IOException {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.mlkv.gpu.cuda.CudaDevice.unavailableReason() != null
                || !io.mlkv.gpu.cuda.Kernels.built(), "this machine has a GPU: the command would run");
        assertRefused(command, named);
    }

    private void assertRefused(String command, String named) throws IOException {
        Path store = dir.resolve("store");
        Path out = dir.resolve("out");
        List<String> args = new ArrayList<>(Arrays.asList(command.replace("DIR", dir.toString()).split(" ")));
        if (args.get(0).equals("run") || args.get(0).equals("demo") || args.get(0).equals("store-bench")
                || args.get(0).equals("batch-bench")) {
            args.addAll(List.of("--dir", store.toString()));
        }
        if (args.get(0).equals("run")) {
            args.addAll(List.of("--out", out.toString(), "--records", "100", "--operations", "2"));
        }
        Set<String> tmpBefore = tempEntries();
        CommandHarness.assertOneLineMistake(CommandHarness.run(new Main(), args.toArray(new String[0])), "mlkv-bench", named);
        assertFalse(Files.exists(store), "a store was created");
        assertFalse(Files.exists(out), "results were written");
        assertEquals(tmpBefore, tempEntries(), "a temporary directory was left behind");
    }

    private static Set<String> tempEntries() throws IOException {
        try (Stream<Path> s = Files.list(Path.of(System.getProperty("java.io.tmpdir")))) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("mlkv")).collect(Collectors.toSet());
        }
    }
}
