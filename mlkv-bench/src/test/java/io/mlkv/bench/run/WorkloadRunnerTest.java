package io.mlkv.bench.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.mlkv.core.GpuMode;
import io.mlkv.core.MlkvStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WorkloadRunnerTest {
    @TempDir
    Path dir;

    private MlkvStore store() {
        return MlkvStore.builder().dim(8).directory(dir.resolve("store")).dramCapacityBytes(1 << 20)
                .policy("tinylfu").gpu(GpuMode.OFF).build();
    }

    @Test
    void everyBuiltInWorkloadParsesAndScansAreRefusedWithAReason() {
        for (String name : Workload.BUILT_IN) {
            if (name.equals("workloade")) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Workload.load(name));
                assertTrue(e.getMessage().contains("range scans"), e.getMessage());
            } else {
                Workload w = Workload.load(name);
                assertTrue(w.recordCount() > 0 && !w.mix().isEmpty(), name);
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Workload.load("no-such"));
        assertTrue(e.getMessage().contains("workloada"), e.getMessage());
    }

    @Test
    void aVerifiedRunCountsEveryOperationAndFindsNoCorruption() throws Exception {
        Workload w = Workload.load("workloadf").with(5000L, 3000L, 16, "scrambled", null);
        try (MlkvStore s = store()) {
            WorkloadRunner runner = new WorkloadRunner(s, w, 3, true, 7);
            double load = runner.load();
            assertEquals(5000, s.size());
            RunResult r = runner.run(load);
            assertEquals(3000, r.operations());
            assertEquals(3000L * 16, r.keys());
            assertEquals(0, r.integrityFailures());
            long readKeys = r.perOperation().stream().filter(o -> !o.operation().equals("update") && !o.operation().equals("insert"))
                    .mapToLong(RunResult.OperationStats::keys).sum();
            assertTrue(r.verifiedKeys() > 0 && r.verifiedKeys() <= readKeys,
                    "verified " + r.verifiedKeys() + " of " + readKeys + " keys read");
            java.io.ByteArrayOutputStream summary = new java.io.ByteArrayOutputStream();
            ReportWriter.printSummary(r, new java.io.PrintStream(summary, true, java.nio.charset.StandardCharsets.UTF_8));
            assertTrue(summary.toString(java.nio.charset.StandardCharsets.UTF_8).contains(
                    String.format(java.util.Locale.ROOT, "verify: %,d keys read back and compared with what was written: all match",
                            r.verifiedKeys())), summary.toString(java.nio.charset.StandardCharsets.UTF_8));
            long counted = r.perOperation().stream().mapToLong(RunResult.OperationStats::count).sum();
            assertEquals(3000, counted);
            assertTrue(r.perOperation().stream().allMatch(o -> o.p50Micros() <= o.p99Micros() && o.p99Micros() <= o.maxMicros()));
            List<Path> files = ReportWriter.writeFiles(r, dir.resolve("out"), "f");
            for (Path f : files) {
                assertTrue(Files.size(f) > 0, f.toString());
            }
            JsonNode json = new ObjectMapper().readTree(files.get(0).toFile());
            assertEquals(3000, json.get("operations").asLong());
            assertTrue(Files.readAllLines(files.get(1)).get(0).startsWith("operation,count,keys"));
        }
    }

    @Test
    void verificationIsRefusedForWorkloadsThatAccumulate() {
        try (MlkvStore s = store()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> new WorkloadRunner(s, Workload.load("embedding-train"), 1, true, 1));
            assertTrue(e.getMessage().contains("--verify"), e.getMessage());
        }
    }
}
