package io.mlkv.bench;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoD;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuCtxSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.table.GpuHashTable;
import io.mlkv.gpu.table.ScoreMode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import jcuda.Pointer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The GPU table benchmark, following HierarchicalKV's published method: fill the table to a load
 * factor with sequential keys, then time one call of {@code --batch} keys (60 % taken from the
 * last inserted batch, 40 % new) with a host clock around the call and a stream synchronize,
 * best of {@code --repeat}; unit 2^30 key-values per second.
 */
@Command(name = "gpu-bench", mixinStandardHelpOptions = true,
        description = "Benchmarks the GPU hash table (device-pointer API, then host-array API) with "
                + "HierarchicalKV's method and prints markdown tables in B-KV/s (2^30 key-values per second).")
final class GpuBenchCommand implements Callable<Integer> {

    @Option(names = "--dims", split = ",", defaultValue = "8,32,64", description = "Dimensions (default ${DEFAULT-VALUE}).")
    List<Integer> dims;

    @Option(names = "--load-factors", split = ",", defaultValue = "0.5,0.75,1.0",
            description = "Load factors (default ${DEFAULT-VALUE}).")
    List<Double> loadFactors;

    @Option(names = "--capacity", description = "Slots; default 128Mi for dim <= 32 and 64Mi above, as HierarchicalKV's benchmark.")
    Long capacity;

    @Option(names = "--batch", defaultValue = "1048576", description = "Keys per call (default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--repeat", defaultValue = "2", description = "Timed calls per cell; the best counts (default ${DEFAULT-VALUE}).")
    int repeat;

    @Option(names = "--host-api", defaultValue = "true", negatable = true,
            description = "Also time the host-array API, copies included (default ${DEFAULT-VALUE}).")
    boolean hostApi;

    @Option(names = "--unique-keys", defaultValue = "false",
            description = "Promise the table that no key repeats in a batch (GpuHashTable.uniqueKeys), as the "
                    + "benchmark's batches are: the assigning calls skip their handling of repeated keys (default ${DEFAULT-VALUE}).")
    boolean uniqueKeys;

    @Option(names = "--warm-up-calls", defaultValue = "1000",
            description = "Calls of each operation on a small table before the first cell, so that the JVM has "
                    + "compiled the call path before anything is timed (default ${DEFAULT-VALUE}; 0 skips it).")
    int warmUpCalls;

    @Option(names = "--call-cost", split = ",",
            description = "Instead of the HierarchicalKV tables: time single device-pointer calls of these batch "
                    + "sizes (for example 64,65536) on a 1Mi-slot table of the first dimension, --repeat times "
                    + "each, and print the median and 10th percentile in microseconds: the cost of a call "
                    + "beyond its kernel's work.")
    List<Integer> callCostBatches;

    /** The largest --call-cost batch: half the 1Mi-slot table it runs on. */
    private static final int CALL_COST_MAX_KEYS = 1 << 19;

    /** Keys per call of the warm-up. */
    private static final int WARM_UP_KEYS = 4096;

    private static final String[] OPS = {"insert_or_assign", "find", "find_or_insert", "assign", "insert_and_evict",
        "export_batch", "contains"};

    @Override
    public Integer call() {
        boolean callCost = callCostBatches != null && !callCostBatches.isEmpty();
        if (callCost && callCostBatches.stream().anyMatch(n -> n <= 0 || n > CALL_COST_MAX_KEYS)) {
            throw new IllegalArgumentException("--call-cost batch sizes must be 1 to " + CALL_COST_MAX_KEYS + ", were " + callCostBatches);
        }
        if (repeat <= 0) {
            throw new IllegalArgumentException("--repeat must be at least 1, was " + repeat);
        }
        warmUp();
        if (callCost) {
            return callCost();
        }
        List<String> deviceRows = new ArrayList<>();
        List<String> hostRows = new ArrayList<>();
        List<String> boundRows = new ArrayList<>();
        double bandwidth = -1;
        String deviceName = "?";
        for (int dim : dims) {
            long cap = capacity != null ? capacity : (dim <= 32 ? 128L << 20 : 64L << 20);
            for (double lf : loadFactors) {
                try (GpuHashTable t = GpuHashTable.create(dim, cap, ScoreMode.LRU, batch);
                        Buffers b = new Buffers(batch, dim)) {
                    deviceName = t.deviceName();
                    t.uniqueKeys(uniqueKeys);
                    if (bandwidth < 0) {
                        bandwidth = measureCopyBandwidth();
                        System.err.printf(Locale.ROOT, "device %s: device-to-device copy %.2f TB/s (read + write)%n",
                                deviceName, bandwidth / 1e12);
                    }
                    long filled = fill(t, b, lf);
                    long[] keys = testKeys(filled);
                    float[] values = new float[batch * dim];
                    for (int i = 0; i < values.length; i++) {
                        values[i] = i % 997;
                    }
                    upload(b, keys, values);
                    double[] dev = new double[OPS.length];
                    double[] host = new double[OPS.length];
                    HostArrays h = hostApi ? new HostArrays(batch, dim) : null;
                    for (int op = 0; op < OPS.length; op++) {
                        String name = OPS[op];
                        dev[op] = best(() -> runDevice(t, b, name, batch));
                        if (hostApi) {
                            host[op] = best(() -> runHost(t, keys, values, h, name));
                        }
                    }
                    String cell = String.format(Locale.ROOT, "| %d, %dM | %.2f |", dim, cap >> 20, lf);
                    deviceRows.add(cell + rates(dev));
                    if (hostApi) {
                        StringBuilder share = new StringBuilder();
                        for (int op = 0; op < OPS.length; op++) {
                            share.append(String.format(Locale.ROOT, " %.3f (%.0f %%) |", rate(host[op]),
                                    100 * Math.max(0, 1 - dev[op] / host[op])));
                        }
                        hostRows.add(cell + share);
                    }
                    StringBuilder bound = new StringBuilder();
                    for (int op = 0; op < OPS.length; op++) {
                        double limit = bandwidth / bytesPerKey(OPS[op], dim) / (1L << 30);
                        bound.append(String.format(Locale.ROOT, " %.2f (%.0f %%) |", limit, 100 * rate(dev[op]) / limit));
                    }
                    boundRows.add(cell + bound);
                    System.err.println("done: " + cell + rates(dev));
                }
            }
        }
        String header = "| dim, capacity | λ | " + String.join(" | ", OPS) + " |";
        String rule = "|---|---|" + "---|".repeat(OPS.length);
        System.out.printf(Locale.ROOT, "%n### Device-pointer API, %s, batch %d, B-KV/s (best of %d)%s%n%n%s%n%s%n", deviceName,
                batch, repeat, uniqueKeys ? ", keys promised unique (no handling of repeated keys)" : "", header, rule);
        deviceRows.forEach(System.out::println);
        if (hostApi) {
            System.out.printf(Locale.ROOT, "%n### Host-array API from Java (copies included), B-KV/s and share of time outside the "
                    + "device call%n%n%s%n%s%n", header, rule);
            hostRows.forEach(System.out::println);
        }
        System.out.printf(Locale.ROOT, "%n### Bandwidth limit per op (minimal bytes per key at %.2f TB/s measured copy), "
                + "B-KV/s, and the share of it reached%n%n%s%n%s%n", bandwidth / 1e12, header, rule);
        boundRows.forEach(System.out::println);
        return 0;
    }

    private interface Timed {
        void run();
    }

    private double best(Timed body) {
        body.run();
        double best = Double.MAX_VALUE;
        for (int r = 0; r < repeat; r++) {
            long t0 = System.nanoTime();
            body.run();
            best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        return best;
    }

    private double rate(double seconds) {
        return batch / seconds / (1L << 30);
    }

    private String rates(double[] secs) {
        StringBuilder sb = new StringBuilder();
        for (double s : secs) {
            sb.append(String.format(Locale.ROOT, " %.3f |", rate(s)));
        }
        return sb.toString();
    }

    /**
     * The fewest bytes of device memory one key's operation must touch: its input key, the
     * bucket's 128 digests, the matching stored key, and the value rows it reads or writes.
     */
    static double bytesPerKey(String op, int dim) {
        double row = dim * 4.0;
        double probe = 8 + 128 + 8;
        switch (op) {
            case "find":
                return probe + row + row + 1;
            case "contains":
                return probe + 1;
            case "assign":
            case "insert_or_assign":
            case "insert_and_evict":
                return probe + row + row + 8;
            case "find_or_insert":
                return probe + row + row + row;
            case "export_batch":
                return 8 + row + 8 + row;
            default:
                throw new IllegalArgumentException(op);
        }
    }

    private long fill(GpuHashTable t, Buffers b, double lf) {
        long target = (long) (t.capacity() * lf);
        long[] keys = new long[batch];
        float[] vals = new float[batch * t.dim()];
        long next = 0;
        while (next < target) {
            int n = (int) Math.min(batch, target - next);
            for (int i = 0; i < n; i++) {
                keys[i] = next + i;
            }
            upload(b, keys, vals);
            t.insertOrAssign(b.keys.pointer(), b.values.pointer(), null, n);
            next += n;
        }
        return target;
    }

    /** 60 % of the keys from the last filled batch, 40 % never inserted. */
    private long[] testKeys(long filled) {
        long[] keys = new long[batch];
        int existing = (int) (batch * 0.6);
        long from = Math.max(0, filled - batch);
        for (int i = 0; i < existing; i++) {
            keys[i] = from + i;
        }
        for (int i = existing; i < batch; i++) {
            keys[i] = (1L << 40) + i;
        }
        return keys;
    }

    private void upload(Buffers b, long[] keys, float[] vals) {
        Cuda.check(cuMemcpyHtoD(b.keys.pointer(), Pointer.to(keys), keys.length * 8L), "cuMemcpyHtoD (bench keys)");
        Cuda.check(cuMemcpyHtoD(b.values.pointer(), Pointer.to(vals), vals.length * 4L), "cuMemcpyHtoD (bench values)");
    }

    /**
     * Runs every operation {@code warmUpCalls} times on a small table of the first dimension,
     * through both APIs, so that the first timed cell does not pay for the JVM's compilation of
     * the call path (interpreted Java adds tens of microseconds to a call).
     */
    private void warmUp() {
        if (warmUpCalls <= 0) {
            return;
        }
        int dim = dims.get(0);
        int n = Math.min(WARM_UP_KEYS, batch);
        long t0 = System.nanoTime();
        try (GpuHashTable t = GpuHashTable.create(dim, 1L << 20, ScoreMode.LRU, n); Buffers b = new Buffers(n, dim)) {
            t.uniqueKeys(uniqueKeys);
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = i;
            }
            float[] values = new float[n * dim];
            upload(b, keys, values);
            HostArrays h = new HostArrays(n, dim);
            for (String op : OPS) {
                for (int c = 0; c < warmUpCalls; c++) {
                    runDevice(t, b, op, n);
                    if (hostApi) {
                        runHost(t, keys, values, h, op);
                    }
                }
            }
        }
        System.err.printf(Locale.ROOT, "warm-up: %d calls of each operation on a %d-key batch, %.1f s%n", warmUpCalls, n,
                (System.nanoTime() - t0) / 1e9);
    }

    /**
     * Times single calls of each operation: {@code repeat} calls per batch size (after as many
     * untimed), distinct keys inserted first, so that every call finds work of the same kind.
     */
    private int callCost() {
        int dim = dims.get(0);
        int largest = callCostBatches.stream().mapToInt(Integer::intValue).max().getAsInt();
        StringBuilder header = new StringBuilder("| operation |");
        StringBuilder rule = new StringBuilder("|---|");
        for (int n : callCostBatches) {
            header.append(String.format(Locale.ROOT, " %,d keys: median | p10 |", n));
            rule.append("---|---|");
        }
        List<String> lines = new ArrayList<>();
        String deviceName;
        try (GpuHashTable t = GpuHashTable.create(dim, 1L << 20, ScoreMode.LRU, largest);
                Buffers b = new Buffers(largest, dim)) {
            deviceName = t.deviceName();
            t.uniqueKeys(uniqueKeys);
            long[] keys = new long[largest];
            for (int i = 0; i < largest; i++) {
                keys[i] = 1_000_003L * i + 7;
            }
            upload(b, keys, new float[largest * dim]);
            t.insertOrAssign(b.keys.pointer(), b.values.pointer(), null, largest);
            for (String op : OPS) {
                StringBuilder line = new StringBuilder("| " + op + " |");
                for (int n : callCostBatches) {
                    long[] nanos = new long[repeat];
                    for (int r = -repeat; r < repeat; r++) {
                        long t0 = System.nanoTime();
                        runDevice(t, b, op, n);
                        if (r >= 0) {
                            nanos[r] = System.nanoTime() - t0;
                        }
                    }
                    Arrays.sort(nanos);
                    line.append(String.format(Locale.ROOT, " %.1f | %.1f |", nanos[repeat / 2] / 1e3,
                            nanos[repeat / 10] / 1e3));
                }
                lines.add(line.toString());
            }
        }
        System.out.printf(Locale.ROOT, "%n### Cost of one device-pointer call, %s, dim %d, 1Mi slots, microseconds over %d "
                + "calls%s%n%n%s%n%s%n", deviceName, dim, repeat, uniqueKeys ? ", keys promised unique" : "", header, rule);
        lines.forEach(System.out::println);
        return 0;
    }

    private void runDevice(GpuHashTable t, Buffers b, String op, int n) {
        switch (op) {
            case "insert_or_assign":
                t.insertOrAssign(b.keys.pointer(), b.values.pointer(), null, n);
                break;
            case "find":
                t.find(b.keys.pointer(), n, b.out.pointer(), b.flags.pointer(), null, null);
                break;
            case "find_or_insert":
                t.findOrInsert(b.keys.pointer(), b.values.pointer(), null, n, b.out.pointer(), null);
                break;
            case "assign":
                t.assign(b.keys.pointer(), b.values.pointer(), null, n, null);
                break;
            case "insert_and_evict":
                t.insertAndEvict(b.keys.pointer(), b.values.pointer(), null, n, b.evictedKeys.pointer(),
                        b.evictedValues.pointer(), b.evictedScores.pointer());
                break;
            case "export_batch":
                t.exportBatch(0, n, b.evictedKeys.pointer(), b.evictedValues.pointer(), b.evictedScores.pointer());
                break;
            case "contains":
                t.contains(b.keys.pointer(), n, b.flags.pointer());
                break;
            default:
                throw new IllegalArgumentException(op);
        }
    }

    /** Output arrays of the host-array API, allocated once, outside the timed calls. */
    private record HostArrays(float[] out, boolean[] flags, long[] keys) {
        HostArrays(int n, int dim) {
            this(new float[n * dim], new boolean[n], new long[n]);
        }
    }

    private void runHost(GpuHashTable t, long[] keys, float[] values, HostArrays h, String op) {
        switch (op) {
            case "insert_or_assign":
                t.insertOrAssign(keys, values, null);
                break;
            case "find":
                t.find(keys, h.out(), h.flags());
                break;
            case "find_or_insert":
                t.findOrInsert(keys, values, null, h.out(), null);
                break;
            case "assign":
                t.assign(keys, values, null, null);
                break;
            case "insert_and_evict":
                t.insertAndEvict(keys, values, null, h.keys(), h.out(), null);
                break;
            case "export_batch":
                t.exportBatch(0, Math.min(batch, t.stagingKeys()), h.keys(), h.out(), null);
                break;
            case "contains":
                t.containsKeys(keys, h.flags());
                break;
            default:
                throw new IllegalArgumentException(op);
        }
    }

    /** Bytes read plus written per second by a large device-to-device copy. */
    private static double measureCopyBandwidth() {
        long bytes = 2L << 30;
        try (DeviceMemory a = new DeviceMemory(bytes, "bandwidth source");
                DeviceMemory c = new DeviceMemory(bytes, "bandwidth target")) {
            Cuda.check(cuMemcpyDtoD(c.pointer(), a.pointer(), bytes), "cuMemcpyDtoD (warm-up)");
            Cuda.check(cuCtxSynchronize(), "cuCtxSynchronize");
            double best = Double.MAX_VALUE;
            for (int r = 0; r < 5; r++) {
                long t0 = System.nanoTime();
                Cuda.check(cuMemcpyDtoD(c.pointer(), a.pointer(), bytes), "cuMemcpyDtoD");
                Cuda.check(cuCtxSynchronize(), "cuCtxSynchronize");
                best = Math.min(best, (System.nanoTime() - t0) / 1e9);
            }
            return 2.0 * bytes / best;
        }
    }

    /** Device buffers for one batch. */
    private static final class Buffers implements AutoCloseable {
        final DeviceMemory keys;
        final DeviceMemory values;
        final DeviceMemory out;
        final DeviceMemory flags;
        final DeviceMemory evictedKeys;
        final DeviceMemory evictedValues;
        final DeviceMemory evictedScores;

        Buffers(int n, int dim) {
            long rows = (long) n * dim * 4;
            keys = new DeviceMemory(n * 8L, "bench keys");
            values = new DeviceMemory(rows, "bench values");
            out = new DeviceMemory(rows, "bench out");
            flags = new DeviceMemory(n, "bench flags");
            evictedKeys = new DeviceMemory(n * 8L, "bench evicted keys");
            evictedValues = new DeviceMemory(rows, "bench evicted values");
            evictedScores = new DeviceMemory(n * 8L, "bench evicted scores");
        }

        @Override
        public void close() {
            evictedScores.close();
            evictedValues.close();
            evictedKeys.close();
            flags.close();
            out.close();
            values.close();
            keys.close();
        }
    }
}
