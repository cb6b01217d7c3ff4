package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The shaded {@code mlkv-server.jar} as users run it (after {@code package}, by failsafe): a
 * loopback benchmark that starts a server with its store and makes every kind of call, so a
 * class missing from the jar fails the build instead of the user's first start.
 */
class ExecutableJarIT {
    @Test
    void theServerJarStartsAStoreAndAnswersEveryCall() throws Exception {
        Path jar = Path.of("target", "mlkv-server.jar");
        assertTrue(Files.isRegularFile(jar), "built by the package phase: " + jar.toAbsolutePath());
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-jar", jar.toString(), "loopback-bench", "--threads", "1", "--seconds", "1", "--warmup", "1",
                "--prompt-blocks", "4"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = readAll(p);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "loopback-bench did not end in 120 s:\n" + out);
        assertEquals(0, p.exitValue(), out);
        for (String call : new String[] {"Lookup", "Read", "Write"}) {
            assertTrue(out.contains(call), call + " missing from:\n" + out);
        }
    }

    private static String readAll(Process p) throws IOException {
        return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }
}
