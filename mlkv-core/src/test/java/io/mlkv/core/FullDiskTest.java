package io.mlkv.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A flush onto a really full file system: a 12 MiB tmpfs mounted in a private mount namespace
 * (needs root or user namespaces; the test says so and is skipped where neither exists).
 */
class FullDiskTest {
    @TempDir
    Path dir;

    @Test
    void aFailedFlushNamesTheCauseLosesNothingAndALaterFlushSucceeds() throws Exception {
        String out = runOnASmallDisk("fulldisk");
        assertTrue(out.contains("FLUSH_FAILED IO_ERROR IOError(NoSpace)"), out);
        assertTrue(out.contains("No space left on device"), out);
        assertTrue(out.contains("READS_OK"), out);
        assertTrue(out.contains("FLUSH_OK"), out);
        assertTrue(out.contains("REOPEN_OK"), out);
    }

    /**
     * Evictions written in the background onto a full disk: the next write fails with the cause,
     * reads meanwhile return acknowledged values or are refused with the cause, and nothing is lost
     * once space is back.
     */
    @Test
    void aFailedBackgroundWriteOfEvictionsFailsTheNextWriteAndLosesNothing() throws Exception {
        String out = runOnASmallDisk("fulldiskevict");
        assertTrue(out.contains("WRITE_FAILED IO_ERROR"), out);
        assertTrue(out.contains("No space left on device"), out);
        assertTrue(out.contains("READS_OK") || out.contains("READS_REFUSED IO_ERROR"), out);
        assertTrue(out.contains("FLUSH_OK"), out);
        assertTrue(out.contains("READS_AFTER_OK"), out);
        assertTrue(out.contains("REOPEN_OK"), out);
    }

    /** Runs {@link ChildStoreProcess} {@code mode} on a 12 MiB tmpfs; returns its output (aborts where it cannot mount one). */
    private String runOnASmallDisk(String mode) throws Exception {
        Path mount = dir.resolve("small");
        Files.createDirectories(mount);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String script = "mount -t tmpfs -o size=12m tmpfs '" + mount + "' || exit 97; exec '" + java
                + "' -Xmx256m -cp '" + System.getProperty("java.class.path") + "' "
                + ChildStoreProcess.class.getName() + " " + mode + " '" + mount.resolve("store") + "' '"
                + mount.resolve("ballast") + "'";
        List<String> cmd = new ArrayList<>(List.of("unshare", "-m", "sh", "-c", script));
        if (!isRoot()) {
            cmd.add(1, "-r");
        }
        Process p;
        try {
            p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        } catch (java.io.IOException e) {
            Assumptions.abort("unshare is not installed, cannot mount a small file system: " + e.getMessage());
            return "";
        }
        List<String> lines = new ArrayList<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                lines.add(line);
            }
        }
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        String out = String.join("\n", lines);
        assumeTrue(p.exitValue() != 97 && !out.contains("unshare:"),
                "cannot mount a tmpfs in a private namespace here (needs root or user namespaces):\n" + out);
        assertEquals(0, p.exitValue(), out);
        return out;
    }

    private static boolean isRoot() {
        try {
            Process id = new ProcessBuilder("id", "-u").start();
            return new String(id.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim().equals("0");
        } catch (java.io.IOException e) {
            return false;
        }
    }
}
