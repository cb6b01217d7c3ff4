package io.mlkv.bench;

import picocli.CommandLine.Mixin;
import io.mlkv.cli.StoreOptions;
import io.mlkv.core.Durability;
import io.mlkv.core.GpuMode;
import io.mlkv.core.MlkvStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * Whether large batches cost what their size says. Two measurements on the CPU store (no GPU):
 * <ol>
 *   <li><b>Reads after loads of different batch sizes</b>: the same keys loaded once in batches of
 *       {@code --small-batch} and once in a single call, each store then reopened with a small
 *       DRAM tier and read in random batches of 4,096 keys (so reads go to RocksDB); the figure
 *       is the per-key read time after the single-call load over the one after batched loads.</li>
 *   <li><b>One huge training step</b>: {@code --keys} keys written with one {@code multiPut},
 *       read with one {@code multiGet} and updated with one {@code accumulate} (DRAM smaller than
 *       the table, so most keys go to RocksDB both ways); the figure is accumulate's time over
 *       multiGet's plus multiPut's.</li>
 * </ol>
 */
@Command(name = "batch-bench", mixinStandardHelpOptions = true,
        description = "Times reads after batched and single-call loads, and a single-call multiPut, "
                + "multiGet and accumulate of a large table, on the CPU store (DRAM + RocksDB).")
final class BatchBenchCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--load-keys", defaultValue = "5000000", description = "Keys of the batch-size comparison (default ${DEFAULT-VALUE}).")
    int loadKeys;

    @Option(names = "--small-batch", defaultValue = "1000000", description = "Batch of the batched load (default ${DEFAULT-VALUE}).")
    int smallBatch;

    @Option(names = "--read-keys", defaultValue = "400000", description = "Keys read after each load (default ${DEFAULT-VALUE}).")
    int readKeys;

    @Option(names = "--keys", defaultValue = "10000000", description = "Keys of the single-call step (default ${DEFAULT-VALUE}).")
    int keys;

    @Mixin
    StoreOptions.Dim dimOption = new StoreOptions.Dim(16);
    private int dim;

    /** The DRAM tier of the single-call step. */
    @Mixin
    StoreOptions.DramMb dramOption = new StoreOptions.DramMb(256);
    private long dramMb;

    @Mixin
    StoreOptions.DurabilityMode durabilityOption = new StoreOptions.DurabilityMode(Durability.WRITE_BACK);
    private Durability durability;

    @Option(names = "--skip-step", description = "Only the batch-size comparison.")
    boolean skipStep;

    @Option(names = "--dir", description = "Parent of the store directories; default a temporary one, deleted afterwards.")
    Path dir;

    @Override
    public Integer call() throws IOException {
        dim = dimOption.get();
        dramMb = dramOption.megabytes();
        durability = durabilityOption.get();
        if (loadKeys < 1 || smallBatch < 1 || readKeys < 1 || keys < 1) {
            throw new ParameterException(spec.commandLine(),
                    "--load-keys, --small-batch, --read-keys and --keys must be positive");
        }
        long heapNeeded = (long) Math.max(loadKeys, skipStep ? 0 : keys) * (8L + 4L * dim) * 2;
        if (heapNeeded > Runtime.getRuntime().maxMemory()) {
            throw new ParameterException(spec.commandLine(), String.format("about %,d MiB of heap needed for these sizes; "
                    + "run java with -Xmx%dg or lower --keys / --load-keys", heapNeeded >> 20, (heapNeeded >> 30) + 2));
        }
        boolean temporary = dir == null;
        Path root = temporary ? Files.createTempDirectory("mlkv-batch-bench") : Files.createDirectories(dir);
        try {
            System.out.printf("batch-bench: dim %d, %d processors, max heap %,d MiB%n", dim,
                    Runtime.getRuntime().availableProcessors(), Runtime.getRuntime().maxMemory() >> 20);
            double batched = readAfterLoad(root.resolve("batched"), smallBatch);
            double single = readAfterLoad(root.resolve("single"), loadKeys);
            System.out.printf("reads after a single-call load / after batched loads: %.2fx%n", single / batched);
            if (!skipStep) {
                step(root.resolve("step"));
            }
        } finally {
            if (temporary) {
                io.mlkv.storage.FileTrees.delete(root);
            }
        }
        return 0;
    }

    private MlkvStore open(Path d, long dramBytes) {
        return MlkvStore.builder().dim(dim).directory(d).dramCapacityBytes(dramBytes).durability(durability)
                .gpu(GpuMode.OFF).build();
    }

    /** Loads in batches of {@code batch}, reopens with a small DRAM tier, returns microseconds per key read. */
    private double readAfterLoad(Path d, int batch) {
        try (MlkvStore s = open(d, 64L << 20)) {
            long t0 = System.nanoTime();
            for (int from = 0; from < loadKeys; from += batch) {
                int n = Math.min(batch, loadKeys - from);
                long[] k = new long[n];
                for (int i = 0; i < n; i++) {
                    k[i] = from + i;
                }
                s.multiPut(k, new float[n * dim]);
            }
            s.flush();
            System.out.printf("load %,d keys in batches of %,d: %.1f s%n", loadKeys, batch, (System.nanoTime() - t0) / 1e9);
        }
        try (MlkvStore s = open(d, 16L << 20)) {
            SplittableRandom r = new SplittableRandom(7);
            int b = 4096;
            long[] k = new long[b];
            float[] out = new float[b * dim];
            boolean[] found = new boolean[b];
            Progress p = new Progress("read", readKeys, "keys");
            long t0 = System.nanoTime();
            for (int done = 0; done < readKeys; done += b) {
                for (int i = 0; i < b; i++) {
                    k[i] = r.nextInt(loadKeys);
                }
                if (s.multiGet(k, out, found) != b) {
                    throw new IllegalStateException("keys missing after the load");
                }
                p.update(done + b);
            }
            double us = (System.nanoTime() - t0) / 1e3 / readKeys;
            System.out.printf("  random reads after it: %.2f us per key%n", us);
            return us;
        }
    }

    private void step(Path d) {
        long[] k = new long[keys];
        for (int i = 0; i < keys; i++) {
            k[i] = i;
        }
        float[] rows = new float[keys * dim];
        try (MlkvStore s = open(d, dramMb << 20)) {
            System.out.printf("one call each on %,d keys, DRAM %d MiB, %s:%n", keys, dramMb, durability);
            long t0 = System.nanoTime();
            s.multiPut(k, rows);
            double put = (System.nanoTime() - t0) / 1e9;
            System.out.printf("  multiPut   %.1f s%n", put);
            t0 = System.nanoTime();
            int found = s.multiGet(k, rows, new boolean[keys]);
            double get = (System.nanoTime() - t0) / 1e9;
            System.out.printf("  multiGet   %.1f s (%,d found)%n", get, found);
            java.util.Arrays.fill(rows, 1f);
            t0 = System.nanoTime();
            s.accumulate(k, rows);
            double acc = (System.nanoTime() - t0) / 1e9;
            System.out.printf("  accumulate %.1f s = %.2fx (multiGet + multiPut)%n", acc, acc / (get + put));
        }
    }
}
