package io.mlkv.bench;

import io.mlkv.bench.run.WorkloadRunner;
import io.mlkv.core.Durability;
import io.mlkv.core.GpuMode;
import io.mlkv.core.MlkvStore;
import io.mlkv.core.workload.KeyGenerator;
import io.mlkv.core.workload.KeyGenerators;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import io.mlkv.cli.StoreOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Loads and reads vectors on the embedded store and prints per-tier statistics. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Loads vectors into a store (off-heap DRAM over RocksDB), reads them back with a "
                + "skewed access pattern, checks every value, and prints throughput and per-tier statistics.")
final class DemoCommand implements Callable<Integer> {

    @Option(names = "--vectors", defaultValue = "2000000", description = "Vectors to load (default ${DEFAULT-VALUE}).")
    long vectors;

    @Mixin
    StoreOptions.Dim dimOption = new StoreOptions.Dim(64);
    /** The checked {@code --dim}, for the load and read loops. */
    private int dim;

    @Option(names = "--batch", defaultValue = "65536", description = "Keys per batch call (default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--reads", defaultValue = "4000000", description = "Keys to read (default ${DEFAULT-VALUE}).")
    long reads;

    @Mixin
    StoreOptions.DramMb dramOption = new StoreOptions.DramMb(128);

    @Mixin
    StoreOptions.Policy policyOption = new StoreOptions.Policy("tinylfu");

    @Mixin
    StoreOptions.DurabilityMode durabilityOption = new StoreOptions.DurabilityMode(Durability.WRITE_BACK);

    @Option(names = "--distribution", defaultValue = "scrambled",
            description = "Read key distribution: uniform, zipfian, scrambled, latest, hotspot (default ${DEFAULT-VALUE}).")
    String distribution;

    @Option(names = "--theta", defaultValue = "0.99", description = "Zipfian skew (default ${DEFAULT-VALUE}).")
    double theta;

    @Option(names = "--dir", description = "Store directory; default a temporary one, deleted afterwards.")
    Path dir;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the read keys (default ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() throws IOException {
        dim = dimOption.get();
        long dramMb = dramOption.megabytes();
        String policy = policyOption.get();
        Durability durability = durabilityOption.get();
        if (vectors < 1 || batch < 1 || reads < 0) {
            throw new IllegalArgumentException("--vectors and --batch must be positive and --reads not negative");
        }
        boolean temporary = dir == null;
        Path storeDir = temporary ? Files.createTempDirectory("mlkv-demo") : dir;
        try (MlkvStore store = MlkvStore.builder().dim(dim).directory(storeDir)
                .dramCapacityBytes(dramMb << 20).policy(policy).durability(durability).gpu(GpuMode.AUTO)
                .build()) {
            System.out.printf("MLKV demo: %,d vectors of dim %d (%,d MiB) into %s, DRAM tier %d MiB, %s, %s%n",
                    vectors, dim, vectors * dim * 4 >> 20, storeDir, dramMb, policy, durability);
            long t0 = System.nanoTime();
            load(store);
            store.flush();
            double loadSecs = (System.nanoTime() - t0) / 1e9;
            long t1 = System.nanoTime();
            long wrong = read(store);
            double readSecs = (System.nanoTime() - t1) / 1e9;
            System.out.printf("load : %,d keys in %.2f s = %,.0f keys/s (flush included)%n", vectors, loadSecs, vectors / loadSecs);
            System.out.printf("read : %,d keys in %.2f s = %,.0f keys/s (%s keys, batches of %,d)%n", reads, readSecs,
                    reads / readSecs, distribution, batch);
            System.out.println("stats: " + store.stats());
            if (wrong > 0) {
                System.out.printf("INTEGRITY FAILURE: %,d keys read back wrong or missing%n", wrong);
                return 1;
            }
            System.out.println("integrity: every value read back matched what was written");
        } finally {
            if (temporary) {
                io.mlkv.storage.FileTrees.delete(storeDir);
            }
        }
        return 0;
    }

    private void load(MlkvStore store) {
        long[] keys = new long[batch];
        float[] values = new float[batch * dim];
        Progress p = new Progress("load", vectors, "keys");
        for (long from = 0; from < vectors; from += batch) {
            int n = (int) Math.min(batch, vectors - from);
            long[] k = n == batch ? keys : new long[n];
            float[] v = n == batch ? values : new float[n * dim];
            for (int i = 0; i < n; i++) {
                k[i] = from + i;
                for (int d = 0; d < dim; d++) {
                    v[i * dim + d] = WorkloadRunner.expected(k[i], d);
                }
            }
            store.multiPut(k, v);
            p.update(from + n);
        }
    }

    private long read(MlkvStore store) {
        KeyGenerator gen = KeyGenerators.create(new KeyGenerators.Spec(distribution, vectors, theta, 0.2, 0.8, seed));
        long[] keys = new long[batch];
        float[] out = new float[batch * dim];
        boolean[] found = new boolean[batch];
        long wrong = 0;
        Progress p = new Progress("read", reads, "keys");
        for (long done = 0; done < reads; ) {
            int n = (int) Math.min(batch, reads - done);
            long[] k = n == batch ? keys : new long[n];
            gen.fill(k);
            store.multiGet(k, out, found);
            for (int i = 0; i < n; i++) {
                if (!found[i] || out[i * dim] != WorkloadRunner.expected(k[i], 0)
                        || out[i * dim + dim - 1] != WorkloadRunner.expected(k[i], dim - 1)) {
                    wrong++;
                }
            }
            done += n;
            p.update(done);
        }
        return wrong;
    }
}
