package io.mlkv.bench;

import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.shard.ShardedGpuTable;
import io.mlkv.gpu.table.GpuHashTable;
import io.mlkv.gpu.table.ScoreMode;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CyclicBarrier;
import jcuda.Pointer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The sharded GPU table against one GPU table, in one run: for each shard count N, a table of N
 * shards on the first N entries of {@code --devices}, filled to {@code --load-factor} of its
 * capacity with sequential keys, then N callers at once, caller s with its batch of {@code --batch}
 * keys on shard s's device (60 % present, 40 % absent, as {@code gpu-bench}), timing {@code find}
 * and {@code assign} (best of {@code --repeat} rounds; a round ends when the last caller returns).
 * The aggregate rate is N x batch over that time; the baseline is one {@link GpuHashTable} on the
 * first device with the same capacity per shard, load and batch, timed the same way (one caller
 * thread), first in the same run.
 */
@Command(name = "shard-bench", mixinStandardHelpOptions = true,
        description = "Benchmarks the sharded GPU table (find, assign; one caller per shard, inputs on each "
                + "shard's device) against one GPU table in the same run; prints a markdown table in B-KV/s "
                + "(2^30 key-values per second).")
final class ShardBenchCommand implements Callable<Integer> {

    @Option(names = "--devices", split = ",", defaultValue = "0,0",
            description = "CUDA device of each shard, in order; an ordinal may repeat (several shards on one GPU) "
                    + "(default ${DEFAULT-VALUE}).")
    List<Integer> devices;

    @Option(names = "--shards", split = ",",
            description = "Shard counts to run, each at most the number of --devices (default: 1 and every power "
                    + "of two up to that number, and that number).")
    List<Integer> shardCounts;

    @Option(names = "--dim", defaultValue = "64", description = "Floats per value (default ${DEFAULT-VALUE}).")
    int dim;

    @Option(names = "--capacity-per-shard", defaultValue = "16777216",
            description = "Slots per shard and of the one-GPU baseline (default ${DEFAULT-VALUE}).")
    long capacityPerShard;

    @Option(names = "--load-factor", defaultValue = "0.5", description = "Fill before timing (default ${DEFAULT-VALUE}).")
    double loadFactor;

    @Option(names = "--batch", defaultValue = "1048576", description = "Keys per caller per call (default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--repeat", defaultValue = "5", description = "Timed rounds per cell; the best counts (default ${DEFAULT-VALUE}).")
    int repeat;

    @Option(names = "--copy-local-parts", defaultValue = "false",
            description = "Copy each shard's part even when it lives on the caller's device, as between GPUs: the "
                    + "exchange's cost measured with several shards on one GPU (default ${DEFAULT-VALUE}).")
    boolean copyLocalParts;

    @Override
    public Integer call() throws Exception {
        List<Integer> counts = shardCounts != null ? shardCounts : defaultCounts(devices.size());
        for (int n : counts) {
            if (n < 1 || n > devices.size()) {
                throw new IllegalArgumentException("--shards: each count must be 1 to the " + devices.size()
                        + " --devices given, was " + n);
            }
        }
        if (devices.stream().anyMatch(d -> d < 0)) {
            throw new IllegalArgumentException("--devices: ordinals must not be negative, were " + devices);
        }
        if (dim < 1 || dim > 65536 || batch < 1 || repeat < 1 || capacityPerShard < 1) {
            throw new IllegalArgumentException("--dim (1-65536), --batch, --repeat and --capacity-per-shard must be positive");
        }
        if (loadFactor <= 0 || loadFactor > 1) {
            throw new IllegalArgumentException("--load-factor must be in (0, 1], was " + loadFactor);
        }
        double[] one = oneGpu();
        System.out.printf(Locale.ROOT, "%n### Sharded GPU table, dim %d, %d keys per caller per call, load factor %.2f, "
                + "B-KV/s (best of %d)%n%n", dim, batch, loadFactor, repeat);
        System.out.println("| shards (devices) | find, aggregate | / N x one table | assign, aggregate | / N x one table "
                + "| partition + reorder share | peer copies share |");
        System.out.println("|---|---|---|---|---|---|---|");
        System.out.printf(Locale.ROOT, "| one GpuHashTable (device %d) | %.3f | 1 | %.3f | 1 | - | - |%n",
                devices.get(0), rate(1, one[0]), rate(1, one[1]));
        for (int n : counts) {
            int[] ordinals = devices.subList(0, n).stream().mapToInt(Integer::intValue).toArray();
            try (ShardedGpuTable t = ShardedGpuTable.builder(dim).devices(ordinals).capacityPerShard(capacityPerShard)
                    .maxBatch(batch).stagingKeys(Math.min(batch, 1 << 18)).copyLocalParts(copyLocalParts).build()) {
                double[] s = sharded(t, ordinals);
                System.out.printf(Locale.ROOT, "| %d (%s) | %.3f | %.2f | %.3f | %.2f | %.0f %% | %.0f %% |%n", n,
                        devices.subList(0, n), rate(n, s[0]), rate(n, s[0]) / (n * rate(1, one[0])), rate(n, s[1]),
                        rate(n, s[1]) / (n * rate(1, one[1])), 100 * s[2], 100 * s[3]);
                System.out.flush();
            }
        }
        return 0;
    }

    private static List<Integer> defaultCounts(int max) {
        List<Integer> c = new ArrayList<>();
        for (int n = 1; n < max; n *= 2) {
            c.add(n);
        }
        c.add(max);
        return c;
    }

    private double rate(int callers, double seconds) {
        return (double) callers * batch / seconds / (1L << 30);
    }

    /** Best find and assign seconds of one plain table on the first device, timed as the sharded calls are. */
    private double[] oneGpu() throws Exception {
        try (GpuHashTable t = GpuHashTable.create(dim, capacityPerShard, ScoreMode.LRU, Math.min(batch, 1 << 18),
                devices.get(0))) {
            t.makeDeviceCurrent();
            long filled = (long) (t.capacity() * loadFactor);
            try (Batch b = new Batch(batch, dim)) {
                for (long next = 0; next < filled; next += batch) {
                    int n = (int) Math.min(batch, filled - next);
                    b.upload(sequential(next, n), n);
                    t.insertOrAssign(b.keys.pointer(), b.values.pointer(), null, n);
                }
                b.upload(testKeys(filled, 0), batch);
                double find = bestTogether(1, c -> t.find(b.keys.pointer(), batch, b.out.pointer(), b.found.pointer(), null, null));
                double assign = bestTogether(1, c -> t.assign(b.keys.pointer(), b.values.pointer(), null, batch, b.found.pointer()));
                return new double[] {find, assign};
            }
        }
    }

    /** Best find and assign seconds of N callers at once, and the exchange's shares of the calls' time. */
    private double[] sharded(ShardedGpuTable t, int[] ordinals) throws Exception {
        int n = ordinals.length;
        long filled = (long) (t.capacity() * loadFactor);
        Batch[] batches = new Batch[n];
        try {
            for (int s = 0; s < n; s++) {
                t.makeDeviceCurrent(ordinals[s]);
                batches[s] = new Batch(batch, dim);
            }
            t.makeDeviceCurrent(ordinals[0]);
            for (long next = 0; next < filled; next += batch) {
                int c = (int) Math.min(batch, filled - next);
                batches[0].upload(sequential(next, c), c);
                t.insertOrAssign(ordinals[0], batches[0].keys.pointer(), batches[0].values.pointer(), c);
            }
            for (int s = 0; s < n; s++) {
                t.makeDeviceCurrent(ordinals[s]);
                batches[s].upload(testKeys(filled, s), batch);
            }
            ShardedGpuTable.Timings before = t.timings();
            long t0 = System.nanoTime();
            double find = bestTogether(n, s -> t.find(ordinals[s], batches[s].keys.pointer(), batch,
                    batches[s].out.pointer(), batches[s].found.pointer()));
            double assign = bestTogether(n, s -> t.assign(ordinals[s], batches[s].keys.pointer(),
                    batches[s].values.pointer(), batch, batches[s].found.pointer()));
            long wall = System.nanoTime() - t0;
            ShardedGpuTable.Timings after = t.timings();
            // Shares of the callers' summed time: the calls ran N at a time.
            double callerTime = (double) wall * n;
            return new double[] {find, assign, (after.partitionNanos() - before.partitionNanos()) / callerTime,
                (after.copyNanos() - before.copyNanos()) / callerTime};
        } finally {
            for (int s = 0; s < n; s++) {
                if (batches[s] != null) {
                    t.makeDeviceCurrent(ordinals[s]);
                    batches[s].close();
                }
            }
        }
    }

    private interface PerCaller {
        void run(int caller);
    }

    /**
     * One warm-up round, then the best of --repeat rounds of every caller at once. The callers are
     * threads that live through all the rounds; a barrier starts each round, each caller takes its
     * clock just before and after its call, and a round lasts from the first start to the last end.
     */
    private double bestTogether(int callers, PerCaller body) throws Exception {
        int rounds = repeat + 1;
        CyclicBarrier start = new CyclicBarrier(callers);
        long[][] began = new long[rounds][callers];
        long[][] ended = new long[rounds][callers];
        Throwable[] failure = new Throwable[1];
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < callers; c++) {
            int caller = c;
            Thread th = new Thread(() -> {
                try {
                    for (int r = 0; r < rounds; r++) {
                        start.await();
                        began[r][caller] = System.nanoTime();
                        body.run(caller);
                        ended[r][caller] = System.nanoTime();
                    }
                } catch (Throwable e) {
                    synchronized (failure) {
                        if (failure[0] == null) {
                            failure[0] = e;  // the first cause, not the broken barrier it leaves the others
                        }
                    }
                    start.reset();  // the others stop at the barrier instead of waiting for ever
                }
            }, "shard-bench-caller-" + c);
            th.start();
            threads.add(th);
        }
        for (Thread th : threads) {
            th.join();
        }
        synchronized (failure) {
            if (failure[0] != null) {
                throw new IllegalStateException("a caller failed: " + failure[0], failure[0]);
            }
        }
        double best = Double.MAX_VALUE;
        for (int r = 1; r < rounds; r++) {
            long first = Long.MAX_VALUE;
            long last = Long.MIN_VALUE;
            for (int c = 0; c < callers; c++) {
                first = Math.min(first, began[r][c]);
                last = Math.max(last, ended[r][c]);
            }
            best = Math.min(best, (last - first) / 1e9);
        }
        return best;
    }

    private static long[] sequential(long from, int n) {
        long[] k = new long[n];
        for (int i = 0; i < n; i++) {
            k[i] = from + i;
        }
        return k;
    }

    /** 60 % present keys (caller s takes its own slice of the last filled keys), 40 % never inserted. */
    private long[] testKeys(long filled, int caller) {
        long[] keys = new long[batch];
        int existing = (int) (batch * 0.6);
        long from = Math.max(0, filled - (long) batch * (caller + 1));
        for (int i = 0; i < existing; i++) {
            keys[i] = from + i;
        }
        for (int i = existing; i < batch; i++) {
            keys[i] = (1L << 40) + (long) caller * batch + i;
        }
        return keys;
    }

    /** One caller's device buffers, on the device current when made. */
    private static final class Batch implements AutoCloseable {
        final DeviceMemory keys;
        final DeviceMemory values;
        final DeviceMemory out;
        final DeviceMemory found;
        final float[] rows;

        Batch(int n, int dim) {
            keys = new DeviceMemory(n * 8L, "bench keys");
            values = new DeviceMemory((long) n * dim * 4, "bench values");
            out = new DeviceMemory((long) n * dim * 4, "bench out");
            found = new DeviceMemory(n, "bench found");
            rows = new float[n * dim];
            for (int i = 0; i < rows.length; i++) {
                rows[i] = i % 997;
            }
        }

        void upload(long[] k, int n) {
            Cuda.check(cuMemcpyHtoD(keys.pointer(), Pointer.to(k), n * 8L), "cuMemcpyHtoD (bench keys)");
            Cuda.check(cuMemcpyHtoD(values.pointer(), Pointer.to(rows), rows.length * 4L), "cuMemcpyHtoD (bench values)");
        }

        @Override
        public void close() {
            found.close();
            out.close();
            values.close();
            keys.close();
        }
    }
}
