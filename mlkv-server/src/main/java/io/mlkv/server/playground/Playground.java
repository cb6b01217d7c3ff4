package io.mlkv.server.playground;

import com.google.protobuf.ByteString;
import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.proto.Chunk;
import io.mlkv.client.proto.LookupResponse;
import io.mlkv.client.proto.ReadBatchResponse;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Replays a conversation file against token cache servers as a serving fleet would: for each
 * prompt, Lookup how much is cached, Read the cached blocks, Write the rest. Reports calls per
 * second, latency percentiles and the block hit rate; {@code --verify} then checks that every
 * block written is found.
 */
@Command(name = "playground", mixinStandardHelpOptions = true,
        description = "Replays a conversation token file against the token cache and reports rates and latencies.")
public final class Playground implements Callable<Integer> {
    private static final int CALL_BATCH = 1024;

    @Option(names = "--file", required = true, description = "Conversation file (see 'generate').")
    Path file;

    @Option(names = "--servers", description = "host:port[,host:port...] (default: $KVSTORE_GRPC_SERVER).")
    String servers;

    @Option(names = "--embedded", description = "Start a server on a loopback port for the run.")
    boolean embedded;

    @Option(names = "--partition", defaultValue = "default", description = "Partition key (default ${DEFAULT-VALUE}).")
    String partition;

    @Option(names = "--block-size", defaultValue = "128", description = "Tokens per block (default ${DEFAULT-VALUE}).")
    int blockSize;

    @Option(names = {"-t", "--threads"}, defaultValue = "4", description = "Client threads (default ${DEFAULT-VALUE}).")
    int threads;

    @Option(names = {"-n", "--iterations"}, defaultValue = "2", description = "Passes over the file (default ${DEFAULT-VALUE}).")
    int iterations;

    @Option(names = "--token-file", description = "File with the bearer token.")
    Path tokenFile;

    @Option(names = "--trust-cert", description = "PEM certificate to trust (turns TLS on).")
    File trustCert;

    @Option(names = "--verify", description = "After the run, check that every block written is found.")
    boolean verify;

    /** What one run measured. */
    public record Report(long prompts, long lookups, long reads, long writes, long blocksAsked, long blocksHit,
            long missingAfterVerify /* -1 when not verified */, double seconds, Histogram lookup, Histogram read, Histogram write) {
        double hitRate() {
            return blocksAsked == 0 ? 0 : (double) blocksHit / blocksAsked;
        }
    }

    @Override
    public Integer call() throws Exception {
        if (threads < 1 || iterations < 1) {
            throw new IllegalArgumentException("--threads and --iterations must be positive");
        }
        if (!Files.isReadable(file)) {
            throw new IllegalArgumentException("--file " + file + ": no such readable file");
        }
        if (!embedded && servers == null && System.getenv(TokenCacheClient.SERVERS_ENV) == null) {
            throw new IllegalArgumentException("no server: give --servers host:port, set "
                    + TokenCacheClient.SERVERS_ENV + ", or run one with --embedded");
        }
        EmbeddedServer local = embedded ? new EmbeddedServer(blockSize, List.of(partition)) : null;
        try {
            TokenCacheClient.Builder cb = TokenCacheClient.builder().container(partition).blockSize(blockSize);
            if (local != null) {
                cb.endpoints(local.endpoint());
            } else if (servers != null) {
                cb.endpoints(servers);
            }
            if (tokenFile != null) {
                cb.bearerToken(Files.readString(tokenFile, StandardCharsets.UTF_8).trim());
            }
            if (trustCert != null) {
                cb.trustCertificate(trustCert);
            }
            try (TokenCacheClient client = cb.build()) {
                // One call first, so an unreachable or refusing server is one line, not a failure per thread.
                try {
                    client.health(partition);
                } catch (io.mlkv.client.TokenCacheException e) {
                    throw new IllegalStateException(e.getMessage(), e);
                }
                List<int[]> prompts = ConversationGenerator.read(file);
                System.err.printf("[playground] %d prompts from %s, %d pass(es): %d replays%n", prompts.size(), file,
                        iterations, (long) prompts.size() * iterations);
                Report r = run(client, prompts, threads, iterations, verify);
                print(r);
                return r.missingAfterVerify() <= 0 ? 0 : 1;
            }
        } finally {
            if (local != null) {
                local.close();
            }
        }
    }

    /** Runs the replay; every call's failure propagates. */
    public static Report run(TokenCacheClient client, List<int[]> prompts, int threads, int iterations,
            boolean verify) throws InterruptedException {
        String partition = client.container();
        Recorder lookup = new Recorder(3);
        Recorder read = new Recorder(3);
        Recorder write = new Recorder(3);
        AtomicLong lookups = new AtomicLong();
        AtomicLong reads = new AtomicLong();
        AtomicLong writes = new AtomicLong();
        AtomicLong asked = new AtomicLong();
        AtomicLong hit = new AtomicLong();
        AtomicLong done = new AtomicLong();
        long total = (long) prompts.size() * iterations;
        AtomicInteger next = new AtomicInteger();
        long started = System.nanoTime();
        ClientThreads.run(threads, "playground", id -> {
            int i;
            while ((i = next.getAndIncrement()) < total) {
                int[] prompt = prompts.get(i % prompts.size());
                long t0 = System.nanoTime();
                LookupResponse lr = client.lookupAsync(partition, "p" + i, prompt).join();
                lookup.recordValue(micros(t0));
                lookups.incrementAndGet();
                int whole = prompt.length / client.blockSize();
                asked.addAndGet(whole);
                hit.addAndGet(lr.getCachedBlocks());
                List<ByteString> locs = lr.getLocationsList();
                for (int from = 0; from < locs.size(); from += CALL_BATCH) {
                    long t1 = System.nanoTime();
                    ReadBatchResponse rr = client.readBatchAsync(partition,
                            locs.subList(from, Math.min(locs.size(), from + CALL_BATCH))).join();
                    read.recordValue(micros(t1));
                    reads.addAndGet(rr.getResultsCount());
                }
                List<Chunk> chunks = client.chunksOf(prompt);
                List<Chunk> fresh = chunks.subList(lr.getCachedBlocks(), chunks.size());
                for (int from = 0; from < fresh.size(); from += CALL_BATCH) {
                    long t2 = System.nanoTime();
                    client.writeBatchAsync(fresh.subList(from, Math.min(fresh.size(), from + CALL_BATCH))).join();
                    write.recordValue(micros(t2));
                    writes.addAndGet(Math.min(CALL_BATCH, fresh.size() - from));
                }
                long d = done.incrementAndGet();
                if (d % Math.max(1, total / 10) == 0) {
                    System.err.printf("[playground] %d/%d prompts%n", d, total);
                }
            }
        });
        double seconds = (System.nanoTime() - started) / 1e9;
        long missing = verify ? 0 : -1;
        if (verify) {
            for (int[] p : prompts) {
                LookupResponse lr = client.lookupAsync(partition, "verify", p).join();
                missing += p.length / client.blockSize() - lr.getCachedBlocks();
            }
        }
        return new Report(done.get(), lookups.get(), reads.get(), writes.get(), asked.get(), hit.get(), missing,
                seconds, lookup.getIntervalHistogram(), read.getIntervalHistogram(), write.getIntervalHistogram());
    }

    private static long micros(long startNanos) {
        return Math.max(1, (System.nanoTime() - startNanos) / 1000);
    }

    static void print(Report r) {
        System.out.printf(Locale.ROOT, "%d prompt replays in %.2f s: %.0f lookups/s, %.0f blocks read/s, %.0f blocks written/s, "
                        + "block hit rate %.1f %%%n", r.prompts(), r.seconds(), r.lookups() / r.seconds(),
                r.reads() / r.seconds(), r.writes() / r.seconds(), 100 * r.hitRate());
        System.out.println("| call | calls | p50 ms | p99 ms | p99.9 ms | max ms |");
        System.out.println("|---|---|---|---|---|---|");
        row("Lookup", r.lookup());
        row("ReadBatch", r.read());
        row("WriteBatch", r.write());
        if (r.missingAfterVerify() >= 0) {
            System.out.println(r.missingAfterVerify() == 0 ? "verify: every block written is found"
                    : "verify: " + r.missingAfterVerify() + " blocks written are missing");
        }
    }

    private static void row(String name, Histogram h) {
        System.out.printf(Locale.ROOT, "| %s | %d | %.2f | %.2f | %.2f | %.2f |%n", name, h.getTotalCount(),
                h.getValueAtPercentile(50) / 1000.0, h.getValueAtPercentile(99) / 1000.0,
                h.getValueAtPercentile(99.9) / 1000.0, h.getMaxValue() / 1000.0);
    }
}
