package io.mlkv.server.playground;

import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.proto.Chunk;
import io.mlkv.client.proto.LookupResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicLong;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Measures the token cache's calls over loopback against an empty unary call (Ping) on the same
 * channel, so each figure is also a ratio to the transport's own limit on this machine: Lookup of
 * a 64-block prompt (all cached), Read of one block, Write of one new block, and a Ping carrying as
 * many bytes as the Lookup's request (the transport's own floor for a call that large), and the
 * batch forms (ReadBatch, WriteBatch of a prompt's worth of blocks, also in blocks/s). Closed
 * loop: each client thread issues its next call when the last one returns.
 */
@Command(name = "loopback-bench", mixinStandardHelpOptions = true,
        description = "Lookup/Read/Write throughput and p99 over loopback, as ratios to an empty unary call.")
public final class LoopbackBench implements Callable<Integer> {
    @Option(names = {"-t", "--threads"}, defaultValue = "8", description = "Concurrent callers (default ${DEFAULT-VALUE}).")
    int threads;

    @Option(names = "--seconds", defaultValue = "5", description = "Measured seconds per call type, in up to 5 interleaved rounds (default ${DEFAULT-VALUE}).")
    int seconds;

    @Option(names = "--warmup", defaultValue = "2", description = "Unmeasured seconds of each call type before any is measured (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--prompt-blocks", defaultValue = "64", description = "Blocks per Lookup prompt (default ${DEFAULT-VALUE}).")
    int promptBlocks;

    @Option(names = "--block-size", defaultValue = "128", description = "Tokens per block (default ${DEFAULT-VALUE}).")
    int blockSize;

    @Option(names = "--seed", defaultValue = "7", description = "Random seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--local-durability", defaultValue = "WRITE_THROUGH",
            description = "The embedded server's local durability, WRITE_THROUGH (the server's default: every write in"
                    + " RocksDB's log) or WRITE_BACK (default ${DEFAULT-VALUE}).")
    io.mlkv.core.Durability localDurability;

    private interface Call {
        void run(int thread, long n);
    }

    @Override
    public Integer call() throws Exception {
        if (threads < 1 || seconds < 1 || warmup < 0 || promptBlocks < 1) {
            throw new IllegalArgumentException("--threads, --seconds and --prompt-blocks must be positive, --warmup >= 0");
        }
        String partition = "bench";
        try (EmbeddedServer server = new EmbeddedServer(blockSize, List.of(partition), localDurability);
             TokenCacheClient client = TokenCacheClient.builder().endpoints(server.endpoint()).container(partition)
                     .blockSize(blockSize).build()) {
            SplittableRandom rnd = new SplittableRandom(seed);
            List<int[]> prompts = new ArrayList<>();
            List<Chunk> stored = new ArrayList<>();
            for (int p = 0; p < 16; p++) {
                int[] prompt = new int[promptBlocks * blockSize];
                for (int i = 0; i < prompt.length; i++) {
                    prompt[i] = rnd.nextInt(128_000);
                }
                prompts.add(prompt);
                List<Chunk> chunks = client.chunksOf(prompt);
                client.writeBatchAsync(chunks).join();
                stored.addAll(chunks);
            }
            List<com.google.protobuf.ByteString> locations = new ArrayList<>();
            for (Chunk c : stored) {
                locations.add(io.mlkv.client.Location.of(partition, c.getHash()).encode());
            }
            System.out.printf(Locale.ROOT, "Loopback, %d client threads, %d s per call after %d s warm-up, %d cores, "
                    + "block %d tokens, local durability %s%n%n", threads, seconds, warmup,
                    Runtime.getRuntime().availableProcessors(), blockSize, localDurability);
            Call ping = (t, n) -> client.pingAsync(partition).join();
            // The transport's cost for a request as large as the Lookup's (its packed tokens).
            int lookupBytes = promptBlocks * blockSize * 4;
            com.google.protobuf.ByteString payload = com.google.protobuf.ByteString.copyFrom(new byte[lookupBytes]);
            Call sizedPing = (t, n) -> client.pingAsync(partition, payload).join();
            Call lookup = (t, n) -> {
                LookupResponse r = client.lookupAsync(partition, "bench", prompts.get((int) (n % prompts.size()))).join();
                if (r.getCachedBlocks() != promptBlocks) {
                    throw new IllegalStateException("lookup found " + r.getCachedBlocks() + " of " + promptBlocks);
                }
            };
            Call read = (t, n) -> {
                if (!client.readAsync(locations.get((int) (n % locations.size()))).join().getFound()) {
                    throw new IllegalStateException("a stored block was not found");
                }
            };
            Call write = (t, n) -> {
                int[] tokens = new int[blockSize];
                tokens[0] = t;
                tokens[1] = (int) n;
                tokens[2] = (int) (n >>> 32);
                client.writeAsync(client.chunksOf(tokens).get(0)).join();
            };
            // Batch forms, one prompt's worth of blocks per call: reads of stored blocks, writes of new ones.
            Call readBatch = (t, n) -> {
                int from = (int) (n % (locations.size() - promptBlocks + 1));
                if (client.readBatchAsync(partition, locations.subList(from, from + promptBlocks)).join().getResultsCount()
                        != promptBlocks) {
                    throw new IllegalStateException("a read batch came back short");
                }
            };
            Call writeBatch = (t, n) -> {
                int[] tokens = new int[promptBlocks * blockSize];
                tokens[0] = t;
                tokens[1] = (int) n;
                tokens[2] = (int) (n >>> 32);
                tokens[3] = 1; // not the Write call's blocks
                client.writeBatchAsync(client.chunksOf(tokens)).join();
            };
            // The calls are measured in rounds, each round running every call type for a slice of
            // the time, Ping among them: each ratio compares calls measured in the same stretches
            // of time as their baseline, not a Ping taken once while the machine was warming up.
            List<String> names = List.of("Ping (empty unary)", "Lookup, " + promptBlocks + " blocks", "Read, 1 block",
                    "Write, 1 new block", "Ping with a " + lookupBytes + "-byte payload (the Lookup's request size)",
                    "ReadBatch, " + promptBlocks + " blocks", "WriteBatch, " + promptBlocks + " new blocks");
            List<Call> calls = List.of(ping, lookup, read, write, sizedPing, readBatch, writeBatch);
            for (int i = 0; i < calls.size(); i++) {
                System.err.printf("[loopback-bench] warming up %s%n", names.get(i));
                run(calls.get(i), warmup * 1_000_000_000L, null, new AtomicLong(1L << 40 | (long) i << 32));
            }
            int rounds = Math.min(5, seconds);
            long slice = seconds * 1_000_000_000L / rounds;
            List<Recorder> recorders = new ArrayList<>();
            List<AtomicLong> counters = new ArrayList<>();
            double[] measured = new double[calls.size()];
            for (int i = 0; i < calls.size(); i++) {
                recorders.add(new Recorder(3));
                counters.add(new AtomicLong((long) i << 36));
            }
            for (int r = 0; r < rounds; r++) {
                System.err.printf("[loopback-bench] round %d of %d%n", r + 1, rounds);
                for (int i = 0; i < calls.size(); i++) {
                    measured[i] += run(calls.get(i), slice, recorders.get(i), counters.get(i));
                }
            }
            List<Result> results = new ArrayList<>();
            for (int i = 0; i < calls.size(); i++) {
                Histogram h = recorders.get(i).getIntervalHistogram();
                results.add(new Result(h.getTotalCount() / measured[i], h));
            }
            Result base = results.get(0);
            System.out.printf("(%d rounds of %.1f s per call, interleaved; ratios against Ping of the same rounds)%n", rounds,
                    slice / 1e9);
            System.out.println("| call | calls/s | p50 ms | p99 ms | throughput / Ping | p99 / Ping |");
            System.out.println("|---|---|---|---|---|---|");
            for (int i = 0; i < calls.size(); i++) {
                Result r = results.get(i);
                Histogram h = r.latency;
                System.out.printf(Locale.ROOT, "| %s | %.0f | %.3f | %.3f | %.2f | %.2f |%n", names.get(i), r.rate,
                        h.getValueAtPercentile(50) / 1000.0, h.getValueAtPercentile(99) / 1000.0, r.rate / base.rate,
                        (double) h.getValueAtPercentile(99) / base.latency.getValueAtPercentile(99));
            }
            System.out.printf(Locale.ROOT, "%nBatch forms in blocks/s: ReadBatch %.0f, WriteBatch %.0f (%.2f and %.2f blocks per"
                    + " empty Ping call)%n", results.get(5).rate * promptBlocks, results.get(6).rate * promptBlocks,
                    results.get(5).rate * promptBlocks / base.rate, results.get(6).rate * promptBlocks / base.rate);
        }
        return 0;
    }

    private record Result(double rate, Histogram latency) {
    }

    private double run(Call call, long nanos, Recorder rec, AtomicLong counter) throws InterruptedException {
        long end = System.nanoTime() + nanos;
        long started = System.nanoTime();
        ClientThreads.run(threads, "loopback-bench", thread -> {
            while (System.nanoTime() < end) {
                long t0 = System.nanoTime();
                call.run(thread, counter.getAndIncrement());
                if (rec != null) {
                    rec.recordValue(Math.max(1, (System.nanoTime() - t0) / 1000));
                }
            }
        });
        return (System.nanoTime() - started) / 1e9;
    }
}
