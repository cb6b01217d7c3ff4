package io.mlkv.server;

import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Azurite's blob service on a free loopback port, in its own directory, for one test class.
 * Looked for at $AZURITE_BLOB, on the PATH, then in .tools/ (scripts/install-azurite.sh); a test
 * is skipped with that instruction when none is found.
 */
final class Azurite implements AutoCloseable {
    /** Azurite's well-known development account (public, documented by the emulator). */
    private static final String ACCOUNT = "devstoreaccount1";
    private static final String KEY =
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    final int port;
    private final Process process;
    private final Path log;

    private Azurite(Process process, int port, Path log) {
        this.process = process;
        this.port = port;
        this.log = log;
    }

    static Azurite start(Path dir) throws IOException, InterruptedException {
        String exe = find();
        Assumptions.assumeTrue(exe != null, "Azurite not found: run scripts/install-azurite.sh (or set AZURITE_BLOB)");
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Files.createDirectories(dir);
        Path log = dir.resolve("azurite.log");
        List<String> cmd = new ArrayList<>(List.of(exe, "--blobHost", "127.0.0.1", "--blobPort", String.valueOf(port),
                "--location", dir.toString(), "--skipApiVersionCheck", "--loose", "--silent"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < deadline) {
            if (!p.isAlive()) {
                throw new IOException("Azurite exited with " + p.exitValue() + ": " + Files.readString(log));
            }
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 200);
                return new Azurite(p, port, log);
            } catch (IOException notYet) {
                Thread.sleep(100);
            }
        }
        p.destroyForcibly();
        throw new IOException("Azurite did not listen on port " + port + " within 30 s: " + Files.readString(log));
    }

    private static String find() {
        String env = System.getenv("AZURITE_BLOB");
        if (env != null && new File(env).canExecute()) {
            return env;
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            File f = new File(dir, "azurite-blob");
            if (f.canExecute()) {
                return f.getPath();
            }
        }
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            File f = d.resolve(".tools/node_modules/.bin/azurite-blob").toFile();
            if (f.canExecute()) {
                return f.getPath();
            }
        }
        return null;
    }

    String connectionString() {
        return "DefaultEndpointsProtocol=http;AccountName=" + ACCOUNT + ";AccountKey=" + KEY
                + ";BlobEndpoint=http://127.0.0.1:" + port + "/" + ACCOUNT + ";";
    }

    /** Stops the emulator (its data stays in the directory). */
    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return "Azurite on port " + port + " (log " + log + ")";
    }
}
