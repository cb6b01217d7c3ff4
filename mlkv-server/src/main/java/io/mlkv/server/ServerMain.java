package io.mlkv.server;

import io.mlkv.client.HashScheme;
import io.mlkv.core.Durability;
import io.mlkv.server.playground.ConversationGenerator;
import io.mlkv.server.playground.LoopbackBench;
import io.mlkv.server.playground.Playground;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import io.mlkv.cli.StoreOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * The {@code mlkv-server} executable: serves the prompt-token cache; its subcommands run the
 * playground, generate conversation files and run the loopback benchmark.
 */
@Command(name = "mlkv-server", mixinStandardHelpOptions = true, version = "mlkv-server 0.1.0",
        description = "Serves the MLKV prompt-token cache over gRPC.",
        subcommands = {Playground.class, ConversationGenerator.class, LoopbackBench.class})
public final class ServerMain implements Callable<Integer> {
    @Option(names = "--port", defaultValue = "50051", description = "TCP port (default ${DEFAULT-VALUE}).")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1",
            description = "Address to bind (default ${DEFAULT-VALUE}: this machine only). Another address needs "
                    + "--auth-token-file (or MLKV_AUTH_TOKEN) unless --insecure is given.")
    String host;

    @Option(names = "--prometheus-port", description = "Serve Prometheus metrics at http://HOST:PORT/metrics on the "
            + "--host address (default: off).")
    Integer prometheusPort;

    @Option(names = "--insecure", description = "Serve a non-loopback --host without a bearer token (anyone who can "
            + "reach the port can read and write the cache).")
    boolean insecure;

    @Option(names = "--threads", description = "Threads running calls (default: the number of cores).")
    Integer threads;

    @Option(names = "--log-level", defaultValue = "info", description = "error, info or verbose (default ${DEFAULT-VALUE}).")
    String logLevel;

    @Option(names = "--disable-metrics", description = "No periodic console metrics.")
    boolean disableMetrics;

    @Option(names = "--metrics-interval", defaultValue = "10", description = "Seconds between metrics lines (default ${DEFAULT-VALUE}).")
    int metricsInterval;

    @Option(names = "--block-size", defaultValue = "128", description = "Tokens per block, fixed per deployment (default ${DEFAULT-VALUE}).")
    int blockSize;

    @Option(names = "--partitions", split = ",", defaultValue = "default",
            description = "Partition keys served, comma-separated, each optionally KEY=SCHEME to give it its own "
                    + "hash scheme (default ${DEFAULT-VALUE}).")
    List<String> partitions;

    @Option(names = "--hash-scheme", defaultValue = "mlkv-v1",
            description = "Block hash scheme of new partitions: mlkv-v1, chained-xxh3 (seed 1337) or chained-xxh3:SEED; "
                    + "a partition keeps the scheme it was created with (default ${DEFAULT-VALUE}).")
    String hashScheme;

    @Option(names = "--data-dir", defaultValue = "mlkv-token-cache", description = "Local store directory (default ${DEFAULT-VALUE}).")
    Path dataDir;

    @Mixin
    StoreOptions.DramMb dramOption = new StoreOptions.DramMb(256);

    /** OFF by default: the GPU's memory stays with whatever serves the model. */
    @Mixin
    StoreOptions.Gpu gpuOption = new StoreOptions.Gpu(io.mlkv.core.GpuMode.OFF);

    @Option(names = "--local-durability", defaultValue = "WRITE_THROUGH",
            description = "WRITE_THROUGH or WRITE_BACK for the local store (default ${DEFAULT-VALUE}).")
    Durability localDurability;

    @Option(names = "--bloom-expected-blocks", defaultValue = "10000000",
            description = "Bloom filter capacity per partition (default ${DEFAULT-VALUE}).")
    long bloomExpected;

    @Option(names = "--bloom-fpp", defaultValue = "0.01", description = "Bloom filter false-positive rate (default ${DEFAULT-VALUE}).")
    double bloomFpp;

    @Option(names = "--partition-capacity-blocks", defaultValue = "0", paramLabel = "N",
            description = "Most blocks each partition keeps locally; past it a write evicts the oldest unpinned blocks"
                    + " (default 0: unbounded).")
    long partitionCapacityBlocks;

    @Option(names = "--backend", defaultValue = "none", description = "none or azure (default ${DEFAULT-VALUE}).")
    String backend;

    @Option(names = "--azure-connection-string",
            description = "Azure Storage connection string (default: $AZURE_STORAGE_CONNECTION_STRING).")
    String azureConnectionString;

    @Option(names = "--azure-container", defaultValue = "mlkv-chunks", description = "Blob container (default ${DEFAULT-VALUE}).")
    String azureContainer;

    @Option(names = "--write-mode", defaultValue = "THROUGH", description = "THROUGH or BEHIND to the backend (default ${DEFAULT-VALUE}).")
    WriteMode writeMode;

    @Option(names = "--upload-threads", defaultValue = "4", description = "Write-behind upload threads (default ${DEFAULT-VALUE}).")
    int uploadThreads;

    @Option(names = "--upload-queue", defaultValue = "10000", description = "Write-behind queue length (default ${DEFAULT-VALUE}).")
    int uploadQueue;

    @Option(names = "--auth-token-file", description = "File holding the bearer token clients must send (default: $MLKV_AUTH_TOKEN if set).")
    Path authTokenFile;

    @Option(names = "--tls-cert", description = "PEM certificate chain; with --tls-key, serves TLS.")
    File tlsCert;

    @Option(names = "--tls-key", description = "PKCS#8 PEM private key.")
    File tlsKey;

    @Option(names = "--max-message-mb", defaultValue = "16", description = "Largest request in MiB (default ${DEFAULT-VALUE}).")
    int maxMessageMb;

    @Option(names = "--max-lookup-tokens", defaultValue = "1048576", description = "Most tokens per Lookup (default ${DEFAULT-VALUE}).")
    int maxLookupTokens;

    @Option(names = "--max-batch", defaultValue = "4096", description = "Most chunks per batch call (default ${DEFAULT-VALUE}).")
    int maxBatch;

    public static void main(String[] args) {
        System.exit(io.mlkv.cli.Cli.execute(new ServerMain(), args));
    }

    @Override
    public Integer call() throws Exception {
        long dramMb = dramOption.megabytes();
        io.mlkv.core.GpuMode gpu = gpuOption.get();
        String level = switch (logLevel) {
            case "error" -> "error";
            case "info" -> "info";
            case "verbose" -> "debug";
            default -> throw new CommandLine.ParameterException(new CommandLine(this),
                    "--log-level must be error, info or verbose, was '" + logLevel + "'");
        };
        // Read by slf4j-simple when the first logger is made, which is after this line.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", level);
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");
        if (level.equals("info")) {
            System.setProperty("org.slf4j.simpleLogger.log.io.grpc", "warn");
            System.setProperty("org.slf4j.simpleLogger.log.com.azure", "warn");
        }
        String token = authToken();
        checkExposure(token);
        HashScheme defaultScheme = scheme("--hash-scheme", hashScheme);
        List<String> keys = new java.util.ArrayList<>();
        java.util.Map<String, HashScheme> ownSchemes = new java.util.LinkedHashMap<>();
        for (String entry : partitions) {
            int eq = entry.indexOf('=');
            String key = eq < 0 ? entry : entry.substring(0, eq);
            keys.add(key);
            if (eq >= 0) {
                ownSchemes.put(key, scheme("--partitions " + key, entry.substring(eq + 1)));
            }
        }
        TokenCacheServer.Builder b = TokenCacheServer.builder().host(host).port(port).blockSize(blockSize)
                .partitions(keys).hashScheme(defaultScheme).dataDirectory(dataDir).dramBytes(dramMb << 20).localDurability(localDurability).gpu(gpu)
                .bloom(bloomExpected, bloomFpp).partitionCapacityBlocks(partitionCapacityBlocks).maxMessageBytes(maxMessageMb << 20).maxLookupTokens(maxLookupTokens)
                .maxBatch(maxBatch).metrics(disableMetrics ? 0 : metricsInterval, System.out);
        ownSchemes.forEach(b::partitionHashScheme);
        if (threads != null) {
            b.threads(threads);
        }
        if (prometheusPort != null) {
            if (prometheusPort < 1 || prometheusPort > 65535 || prometheusPort == port) {
                throw new CommandLine.ParameterException(new CommandLine(this), "--prometheus-port must be 1-65535 and "
                        + "differ from --port, was " + prometheusPort);
            }
            b.prometheus(prometheusPort);
        }
        switch (backend) {
            case "none" -> { }
            case "azure" -> {
                String cs = azureConnectionString != null ? azureConnectionString
                        : System.getenv("AZURE_STORAGE_CONNECTION_STRING");
                if (cs == null) {
                    throw new CommandLine.ParameterException(new CommandLine(this),
                            "--backend azure needs --azure-connection-string or AZURE_STORAGE_CONNECTION_STRING");
                }
                b.azure(cs, azureContainer).writeMode(writeMode, uploadThreads, uploadQueue);
            }
            default -> throw new CommandLine.ParameterException(new CommandLine(this),
                    "--backend must be none or azure, was '" + backend + "'");
        }
        if (token != null) {
            b.bearerToken(token);
        }
        if ((tlsCert == null) != (tlsKey == null)) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--tls-cert and --tls-key go together");
        }
        if (tlsCert != null) {
            b.tls(tlsCert, tlsKey);
        }
        TokenCacheServer server = b.start();
        Runtime.getRuntime().addShutdownHook(new Thread(server::close, "mlkv-shutdown"));
        System.out.println("mlkv-server listening on " + host + ":" + server.port()
                + (server.prometheusPort() < 0 ? "" : ", Prometheus metrics at http://" + host + ":" + server.prometheusPort()
                        + "/metrics"));
        server.awaitTermination();
        return 0;
    }

    /** A hash scheme from the command line, or a one-line mistake naming the option. */
    private HashScheme scheme(String option, String text) {
        try {
            return HashScheme.parse(text);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(new CommandLine(this), option + ": " + e.getMessage());
        }
    }

    /**
     * Refuses to serve an address other machines can reach (anything but loopback) without a
     * bearer token, unless {@code --insecure} says so; checked before anything is opened.
     */
    private void checkExposure(String token) {
        if (token != null || insecure) {
            return;
        }
        boolean loopback;
        try {
            loopback = java.net.InetAddress.getByName(host).isLoopbackAddress();
        } catch (java.net.UnknownHostException e) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--host " + host + ": unknown host");
        }
        if (!loopback) {
            throw new CommandLine.ParameterException(new CommandLine(this), "--host " + host
                    + " serves other machines: give --auth-token-file (or set MLKV_AUTH_TOKEN), or say --insecure");
        }
    }

    private String authToken() throws IOException {
        if (authTokenFile != null) {
            String t = Files.readString(authTokenFile, StandardCharsets.UTF_8).trim();
            if (t.isEmpty()) {
                throw new CommandLine.ParameterException(new CommandLine(this), "--auth-token-file " + authTokenFile + " is empty");
            }
            return t;
        }
        String env = System.getenv("MLKV_AUTH_TOKEN");
        return env == null || env.isBlank() ? null : env.trim();
    }
}
