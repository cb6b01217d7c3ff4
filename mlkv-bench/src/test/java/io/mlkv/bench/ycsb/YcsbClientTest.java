package io.mlkv.bench.ycsb;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Drives the binding with YCSB's real client (site.ycsb.Client) in a child JVM. */
class YcsbClientTest {
    @TempDir
    Path dir;

    private String client(String phase, String workload, Path store) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx512m", "-cp", System.getProperty("java.class.path"), "site.ycsb.Client", phase,
                "-db", MlkvYcsbDb.class.getName(), "-P", Path.of("ycsb", workload).toString(),
                "-p", "recordcount=2000", "-p", "operationcount=4000", "-p", "mlkv.dir=" + store,
                "-p", "mlkv.dram.mb=4", "-threads", "4"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        return out;
    }

    private static long count(String out, String op, String status) {
        Matcher m = Pattern.compile("\\[" + Pattern.quote(op) + "\\], Return=" + status + ", (\\d+)").matcher(out);
        return m.find() ? Long.parseLong(m.group(1)) : 0;
    }

    @Test
    void workloadsAAndCRunThroughTheRealClientWithoutErrors() throws Exception {
        Path store = dir.resolve("store");
        String load = client("-load", "workloada", store);
        assertEquals(2000, count(load, "INSERT", "OK"), load);
        String a = client("-t", "workloada", store);
        assertFalse(a.contains("Return=ERROR") || a.contains("Return=NOT_FOUND"), a);
        assertEquals(4000, count(a, "READ", "OK") + count(a, "UPDATE", "OK"), a);
        assertTrue(count(a, "READ", "OK") > 1000 && count(a, "UPDATE", "OK") > 1000, a);
        String c = client("-t", "workloadc", store);
        assertFalse(c.contains("Return=ERROR") || c.contains("Return=NOT_FOUND"), c);
        assertEquals(4000, count(c, "READ", "OK"), c);
    }
}
