package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertFalse;

import io.mlkv.cli.CommandHarness;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The server and its subcommands with ordinary mistakes: exit code 2, one line naming the option
 * or the address, no stack trace, no data directory created.
 */
class CommandMistakesTest {
    @TempDir
    Path dir;

    static Stream<Arguments> mistakes() {
        return Stream.of(
                Arguments.of("--port -5", "port"),
                Arguments.of("--port 70000", "port"),
                Arguments.of("--log-level loud", "--log-level"),
                Arguments.of("--backend s3", "--backend"),
                Arguments.of("--backend azure", "--azure-connection-string"),
                Arguments.of("--tls-cert DIR/c.pem", "--tls-cert"),
                Arguments.of("--partitions a/b", "partition key"),
                Arguments.of("--hash-scheme sha1", "--hash-scheme"),
                Arguments.of("--hash-scheme chained-xxh3:x", "seed"),
                Arguments.of("--partitions a,b=md5", "--partitions b"),
                Arguments.of("--local-durability never", "--local-durability"),
                Arguments.of("--gpu SOMETIMES", "--gpu"),
                Arguments.of("--bogus", "--bogus"),
                Arguments.of("playground --file DIR/nope.txt --embedded", "--file"),
                Arguments.of("playground --file DIR/conv.txt --embedded -n -1", "--iterations"),
                Arguments.of("playground --file DIR/conv.txt", "no server"),
                Arguments.of("playground --file DIR/conv.txt --servers nohost", "nohost"),
                Arguments.of("playground --file DIR/conv.txt --servers 127.0.0.1:1 --threads 1", "127.0.0.1:1"),
                Arguments.of("playground", "--file"),
                Arguments.of("generate --conversations -1 --out DIR/x.txt", "--conversations"),
                Arguments.of("loopback-bench --threads 0", "--threads"),
                Arguments.of("--host 0.0.0.0", "--insecure"),
                Arguments.of("--prometheus-port 0", "--prometheus-port"),
                Arguments.of("--port 9000 --prometheus-port 9000", "--prometheus-port"),
                Arguments.of("--host no-such-host.invalid", "no-such-host.invalid"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("mistakes")
    void aMistakeIsOneLineAndExitCode2(String command, String named) throws Exception {
        Files.writeString(dir.resolve("conv.txt"), "1 2 3 4 5 6 7 8\n");
        assertRefused(command, named);
    }

    @Test
    void gpuOnWithoutAGpuIsOneLineAndNoDataDirectoryIsCreated() {
        org.junit.jupiter.api.Assumptions.assumeTrue(io.mlkv.gpu.cuda.CudaDevice.unavailableReason() != null
                || !io.mlkv.gpu.cuda.Kernels.built(), "this machine has a GPU: the server would start");
        assertRefused("--gpu ON --port 0", "GpuMode.ON");
    }

    @Test
    void aPortInUseIsNamedAndNoDataDirectoryIsCreated() throws Exception {
        try (ServerSocket taken = new ServerSocket(0)) {
            assertRefused("--port " + taken.getLocalPort(), ":" + taken.getLocalPort());
        }
    }

    /**
     * Another machine's reach needs a token or --insecure; with either the address check passes
     * (and the start goes on until the taken port refuses it).
     */
    @Test
    void aNonLoopbackAddressNeedsATokenOrInsecure() throws Exception {
        Path tokenFile = dir.resolve("token");
        Files.writeString(tokenFile, "s3cret\n");
        try (ServerSocket taken = new ServerSocket(0, 50, java.net.InetAddress.getByName("0.0.0.0"))) {
            int port = taken.getLocalPort();
            assertRefused("--host 0.0.0.0 --port " + port, "--auth-token-file");
            assertRefused("--host 0.0.0.0 --insecure --port " + port, ":" + port);
            assertRefused("--host 0.0.0.0 --auth-token-file " + tokenFile + " --port " + port, ":" + port);
        }
    }

    @Test
    void theDefaultAddressIsLoopback() {
        ServerMain main = new ServerMain();
        new picocli.CommandLine(main).parseArgs();
        org.junit.jupiter.api.Assertions.assertTrue(main.host.equals("127.0.0.1") && !main.insecure, main.host);
    }

    private void assertRefused(String command, String named) {
        Path data = dir.resolve("data");
        List<String> args = new ArrayList<>(Arrays.asList(command.replace("DIR", dir.toString()).split(" ")));
        if (!List.of("playground", "generate", "loopback-bench").contains(args.get(0))) {
            args.addAll(List.of("--data-dir", data.toString()));
        }
        CommandHarness.assertOneLineMistake(CommandHarness.run(new ServerMain(), args.toArray(new String[0])), "mlkv-server", named);
        assertFalse(Files.exists(data), "the data directory was created");
    }
}
