package io.mlkv.bench;

import picocli.CommandLine.Mixin;
import io.mlkv.cli.StoreOptions;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

import io.mlkv.core.GpuMode;
import io.mlkv.core.HbmAdmission;
import io.mlkv.core.MlkvStore;
import io.mlkv.core.StoreStats;
import io.mlkv.core.workload.KeyGenerator;
import io.mlkv.core.workload.KeyGenerators;
import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.storage.dram.DramTier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The store's device-pointer paths timed the way HierarchicalKV times its hybrid mode: one
 * caller, batches of {@code --batch} keys already in device memory, a host clock around each call
 * (which returns with its results in device memory; what it queues without waiting, such as a
 * read's installs into HBM, the next call waits for, so it is timed there), the best and the median of
 * {@code --calls} timed calls after {@code --warmup} untimed ones. The table lives in HBM and in
 * a DRAM tier large enough for all of it (HierarchicalKV's hybrid mode keeps every value in HBM or
 * host memory). Workloads: {@code read} (device multiGet; baseline in the same run: the same
 * store opened without a GPU, reading the same batches with host arrays), {@code train} (a
 * training step: device multiGet, then device accumulate of the same keys, with HBM write-back),
 * {@code train-clean} (the same without write-back: HBM holds clean copies only) and
 * {@code write} (device multiPut with write-back). The HierarchicalKV figures the ratios use are
 * options, so that a run can pass those its own run of HierarchicalKV's hybrid benchmark printed
 * ({@code scripts/gpu-train-bench.sh} does).
 *
 * <pre>mlkv-bench store-bench --records 2097152 --hbm-entries 1048576 --dim 64 --batch 1048576 --workloads read,train,write</pre>
 */
@Command(name = "store-bench", mixinStandardHelpOptions = true,
        description = "Times the tiered store's device reads with HierarchicalKV's hybrid-find method (one caller, "
                + "1M-key batches in device memory, best and median of timed calls) against the store without a GPU.")
final class StoreBenchCommand implements Callable<Integer> {
    /** The workloads, by the names {@code --workloads} takes. */
    enum Workload {
        READ, TRAIN, TRAIN_CLEAN, WRITE;

        static Workload named(String name) {
            for (Workload w : values()) {
                if (w.label().equals(name)) {
                    return w;
                }
            }
            throw new IllegalArgumentException("--workloads: unknown workload '" + name + "'; use read, train, train-clean or write");
        }

        String label() {
            return name().toLowerCase(Locale.ROOT).replace('_', '-');
        }
    }

    @Option(names = "--records", defaultValue = "4194304", description = "Keys in the table (default ${DEFAULT-VALUE}).")
    int records;

    @Option(names = "--hbm-entries", description = "Entries of the HBM tier, split evenly over --hbm-devices; default half of --records.")
    Long hbmEntries;

    @Option(names = "--hbm-devices", split = ",", defaultValue = "0",
            description = "CUDA devices of the HBM tier, one shard each; a device may repeat (several shards on one GPU) "
                    + "(default ${DEFAULT-VALUE}).")
    List<Integer> hbmDevices;

    @Mixin
    StoreOptions.Dim dimOption = new StoreOptions.Dim(64);
    private int dim;

    @Option(names = "--batch", defaultValue = "1048576", description = "Keys per call (default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--calls", defaultValue = "16", description = "Timed calls per distribution (default ${DEFAULT-VALUE}).")
    int calls;

    @Option(names = "--warmup", defaultValue = "32",
            description = "Untimed calls first, which fill HBM and let its contents settle (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--distributions", split = ",", defaultValue = "scrambled,uniform",
            description = "Key distributions (scrambled is YCSB's zipfian; default ${DEFAULT-VALUE}).")
    List<String> distributions;

    @Option(names = "--theta", defaultValue = "0.99", description = "Zipfian skew (default ${DEFAULT-VALUE}).")
    double theta;

    @Option(names = "--hbm-admission", defaultValue = "ALWAYS", description = "ALWAYS, SECOND_MISS or FREQUENCY (default ${DEFAULT-VALUE}).")
    HbmAdmission admission;

    @Option(names = "--dir", description = "Store directory; default a temporary one, deleted afterwards.")
    Path dir;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the key batches (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--workloads", split = ",", defaultValue = "read",
            description = "read, train, train-clean, write (default ${DEFAULT-VALUE}).")
    List<String> workloads;

    @Option(names = "--callers", defaultValue = "1",
            description = "Threads calling at once, each with its own batches and device buffers; above 1 the figure is "
                    + "the aggregate over all timed calls, and each caller's call times are summarised (default ${DEFAULT-VALUE}).")
    int callers;

    /** Keys/s of every timed call of every caller in the last {@link #timeCallers}. */
    private double[] callerRates = new double[0];

    @Option(names = "--hkv-find", defaultValue = "0.199",
            description = "HierarchicalKV hybrid find, B-KV/s, for the ratios (default ${DEFAULT-VALUE}: shared/GPU-HOST.md).")
    double hkvFind;

    @Option(names = "--hkv-assign", defaultValue = "0.195",
            description = "HierarchicalKV hybrid assign, B-KV/s (default ${DEFAULT-VALUE}).")
    double hkvAssign;

    @Option(names = "--hkv-insert-or-assign", defaultValue = "0.159",
            description = "HierarchicalKV hybrid insert_or_assign, B-KV/s (default ${DEFAULT-VALUE}).")
    double hkvInsertOrAssign;

    private static final double BKV = 1L << 30;

    @Override
    public Integer call() throws Exception {
        dim = dimOption.get();
        if (records < 1 || batch < 1 || calls < 1 || warmup < 0) {
            throw new IllegalArgumentException("--records, --batch and --calls must be positive, --warmup not negative");
        }
        if (hbmDevices.isEmpty() || hbmDevices.size() > 32 || hbmDevices.stream().anyMatch(d -> d < 0)) {
            throw new IllegalArgumentException("--hbm-devices takes 1 to 32 CUDA device ordinals of 0 or more, was " + hbmDevices);
        }
        if (callers < 1 || callers > 64) {
            throw new IllegalArgumentException("--callers must be 1 to 64, was " + callers);
        }
        if (hkvFind <= 0 || hkvAssign <= 0 || hkvInsertOrAssign <= 0) {
            throw new IllegalArgumentException("--hkv-find, --hkv-assign and --hkv-insert-or-assign must be positive");
        }
        java.util.EnumSet<Workload> chosen = java.util.EnumSet.noneOf(Workload.class);
        for (String w : workloads) {
            chosen.add(Workload.named(w));
        }
        String noGpu = !io.mlkv.gpu.cuda.Kernels.built() ? "the GPU kernels were not built into this jar"
                : io.mlkv.gpu.cuda.CudaDevice.unavailableReason();
        if (noGpu != null) {
            throw new IllegalStateException("store-bench times the store's device reads and needs a CUDA GPU: " + noGpu);
        }
        int visible = io.mlkv.gpu.cuda.CudaDevice.count();
        for (int d : hbmDevices) {
            if (d >= visible) {
                throw new IllegalArgumentException("--hbm-devices: CUDA device " + d + " does not exist; " + visible + " visible");
            }
        }
        long hbm = hbmEntries == null ? Math.max(1, records / 2) : hbmEntries;
        boolean temporary = dir == null;
        Path storeDir = temporary ? Files.createTempDirectory("mlkv-store-bench") : dir;
        // DRAM holds the whole table: a third more slots than keys, since buckets fill unevenly.
        long dramBytes = ((long) records * 4 / 3 / DramTier.BUCKET_SLOTS + 1) * DramTier.bucketBytes(dim);
        List<String> rows = new ArrayList<>();
        List<String> perCall = new ArrayList<>();
        try {
            long[][][] batches = new long[distributions.size()][][];
            for (int d = 0; d < distributions.size(); d++) {
                KeyGenerator g = KeyGenerators.create(new KeyGenerators.Spec(distributions.get(d), records, theta, 0.2, 0.8,
                        seed + d));
                batches[d] = new long[warmup + calls][batch];
                for (long[] b : batches[d]) {
                    g.fill(b);
                }
            }
            double[][] cpu = new double[distributions.size()][];
            try (MlkvStore s = open(storeDir, GpuMode.OFF, hbm, dramBytes, false)) {
                load(s);
                readAll(s, "warm DRAM");
                if (chosen.contains(Workload.READ)) {
                    for (int d = 0; d < distributions.size(); d++) {
                        cpu[d] = timeHost(s, batches[d]);
                    }
                }
            }
            for (Workload w : chosen) {
                try (MlkvStore s = open(storeDir, GpuMode.ON, hbm, dramBytes, w == Workload.TRAIN || w == Workload.WRITE)) {
                    readAll(s, "warm DRAM");
                    for (int d = 0; d < distributions.size(); d++) {
                        StoreStats[] before = new StoreStats[1];
                        double[] gpu = callers == 1 ? timeDevice(s, w, batches[d], () -> before[0] = s.stats())
                                : timeCallers(s, w, d, () -> before[0] = s.stats());
                        StoreStats after = s.stats();
                        checkWrites(s, w, batches[d]);
                        double hits = after.tier("HBM").hits() - before[0].tier("HBM").hits();
                        double misses = after.tier("HBM").misses() - before[0].tier("HBM").misses();
                        double best = max(gpu);
                        String baseline = w == Workload.READ ? String.format(Locale.ROOT, "%,.0f (%.2fx)", max(cpu[d]),
                                best / max(cpu[d])) : "-";
                        // Both ratios: a best call can be one that found less of an earlier call's queued
                        // work still pending than the others; the median is the steady state.
                        rows.add(String.format(Locale.ROOT, "| %s | %s | %,d | %,.0f | %,.0f | %.3f | %s | %,.0f | %.3fx, %.3fx |",
                                w.label(), distributions.get(d), batch, best, median(gpu), hits / Math.max(1, hits + misses),
                                baseline, hkvKeysPerS(w), best / hkvKeysPerS(w), median(gpu) / hkvKeysPerS(w)));
                        if (callers > 1) {
                            perCall.add(String.format(Locale.ROOT, "%s %s, each caller's calls: median %.2f ms, p99 %.2f ms,"
                                    + " slowest %.2f ms", w.label(), distributions.get(d), batch / median(callerRates) * 1e3,
                                    batch / quantile(callerRates, 0.01) * 1e3, batch / quantile(callerRates, 0) * 1e3));
                        }
                        if (callers == 1) {
                            perCall.add(w.label() + " " + distributions.get(d) + ": " + millis(gpu)
                                    + (w == Workload.READ ? " (GPU OFF: " + millis(cpu[d]) + ")" : ""));
                            perCall.add(w.label() + " " + distributions.get(d) + " phases: " + phases(before[0], after, gpu));
                        }
                    }
                    System.out.println(w.label() + ": " + s.stats());
                    if (hbmDevices.size() > 1) {
                        System.out.println(w.label() + ": HBM entries per shard " + java.util.Arrays.toString(s.hbmShardEntries()));
                        long[] t = s.hbmShardRouteTimings();
                        System.out.printf(Locale.ROOT, "%s: device calls split over shards: %,d parts, %.1f ms in all, of it partition"
                                + " and reorder %.1f ms (%.1f %%), peer copies %.1f ms summed over parts%n", w.label(), t[0], t[1] / 1e6,
                                t[2] / 1e6, t[1] == 0 ? 0 : 100.0 * t[2] / t[1], t[3] / 1e6);
                    }
                    System.out.printf(Locale.ROOT, "%s: promotions dropped (promoter queue full): %,d%n", w.label(),
                            s.droppedPromotions());
                    if (callers > 1) {
                        long[] g = s.combinedDeviceCalls();
                        System.out.printf(Locale.ROOT, "%s: combined device calls (groups, calls in shared groups, leader waits"
                                + " for callers, waits run out): reads %,d %,d %,d %,d, puts %,d %,d %,d %,d,"
                                + " accumulates %,d %,d %,d %,d%n", w.label(), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                                g[8], g[9], g[10], g[11]);
                    }
                }
            }
        } finally {
            if (temporary) {
                io.mlkv.storage.FileTrees.delete(storeDir);
            }
        }
        System.out.printf(Locale.ROOT, "%nstore-bench: %,d records of dim %d, HBM %,d entries in %d shard(s) on CUDA devices %s, DRAM %,d bytes (holds the table), "
                + "admission %s, %d warm-up + %d timed calls per distribution, %s%n%n", records, dim, hbm, hbmDevices.size(),
                hbmDevices, dramBytes,
                admission, warmup, calls, callers == 1 ? "one caller" : callers + " callers at once (aggregate keys/s)");
        System.out.printf(Locale.ROOT, "HierarchicalKV hybrid figures used: find %.3f, assign %.3f, insert_or_assign %.3f B-KV/s;"
                + " its training step is find then assign of the same keys%n%n", hkvFind, hkvAssign, hkvInsertOrAssign);
        System.out.println("| workload | distribution | batch | keys/s (best) | median | HBM hit rate "
                + "| GPU OFF host reads keys/s (best, ratio) | HierarchicalKV hybrid keys/s | vs HierarchicalKV (best, median) |");
        System.out.println("|---|---|---|---|---|---|---|---|---|");
        rows.forEach(System.out::println);
        System.out.println();
        System.out.println("Timed calls in order, ms:");
        perCall.forEach(line -> System.out.println("  " + line));
        return 0;
    }

    private MlkvStore open(Path d, GpuMode gpu, long hbm, long dramBytes, boolean writeBack) {
        int[] devices = hbmDevices.stream().mapToInt(Integer::intValue).toArray();
        return MlkvStore.builder().dim(dim).directory(d).dramCapacityBytes(dramBytes).gpu(gpu).hbmDevices(devices)
                .hbmCapacity(Math.max(1, hbm / devices.length))
                .hbmAdmission(admission).hbmWriteBack(writeBack).build();
    }

    /** HierarchicalKV's hybrid rate for the same work: find; find then assign; insert_or_assign. */
    private double hkvKeysPerS(Workload w) {
        return switch (w) {
            case READ -> hkvFind * BKV;
            case TRAIN, TRAIN_CLEAN -> BKV / (1 / hkvFind + 1 / hkvAssign);
            case WRITE -> hkvInsertOrAssign * BKV;
        };
    }

    private float[] rowsOf(long from, int n) {
        float[] v = new float[n * dim];
        for (int i = 0; i < n; i++) {
            Arrays.fill(v, i * dim, (i + 1) * dim, from + i);
        }
        return v;
    }

    private void load(MlkvStore s) {
        Progress p = new Progress("load", records, "keys");
        int chunk = 65536;
        for (int from = 0; from < records; from += chunk) {
            int n = Math.min(chunk, records - from);
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = from + i;
            }
            s.multiPut(keys, rowsOf(from, n));
            p.update(from + n);
        }
        s.flush();
    }

    /** Reads every key once (host arrays), so the DRAM tier holds the table. */
    private void readAll(MlkvStore s, String label) {
        Progress p = new Progress(label, records, "keys");
        int chunk = 65536;
        float[] out = new float[chunk * dim];
        boolean[] found = new boolean[chunk];
        for (int from = 0; from < records; from += chunk) {
            int n = Math.min(chunk, records - from);
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = from + i;
            }
            int got = s.multiGet(keys, n == chunk ? out : new float[n * dim], n == chunk ? found : new boolean[n]);
            if (got != n) {
                throw new IllegalStateException("warm-up read found " + got + " of " + n + " keys from " + from);
            }
            p.update(from + n);
        }
    }

    /** Keys/s of each timed call, host arrays. */
    private double[] timeHost(MlkvStore s, long[][] keyBatches) {
        float[] out = new float[batch * dim];
        boolean[] found = new boolean[batch];
        double[] rates = new double[calls];
        for (int c = 0; c < keyBatches.length; c++) {
            long t0 = System.nanoTime();
            int got = s.multiGet(keyBatches[c], out, found);
            long t = System.nanoTime() - t0;
            check(got, keyBatches[c], out);
            if (c >= warmup) {
                rates[c - warmup] = batch / (t / 1e9);
            }
        }
        return rates;
    }

    /**
     * Keys/s of each timed call or step of workload {@code w}, device pointers: every call's keys
     * are copied to the GPU before the first call (so several callers' wall time holds no key
     * copies either), the rows a write writes before each call, outside its clock; {@code
     * atTimedStart} runs before the last warm-up call ({@link #statsCalls}). Training steps add zero
     * deltas, so every row keeps its value (the key) and the reads can be checked; the work is
     * that of any delta.
     */
    private double[] timeDevice(MlkvStore s, Workload w, long[][] keyBatches, Runnable atTimedStart) {
        double[] rates = new double[calls];
        s.makeGpuCurrent();
        try (DeviceMemory keys = new DeviceMemory((long) keyBatches.length * batch * 8L, "store-bench keys");
             DeviceMemory out = new DeviceMemory((long) batch * dim * 4, "store-bench rows");
             DeviceMemory found = new DeviceMemory(batch, "store-bench found")) {
            float[] check = new float[batch * dim];
            try (DeviceMemory deltas = w == Workload.TRAIN || w == Workload.TRAIN_CLEAN
                    ? new DeviceMemory((long) batch * dim * 4, "store-bench deltas") : null) {
                if (deltas != null) {
                    Cuda.check(jcuda.driver.JCudaDriver.cuMemsetD8(deltas.pointer(), (byte) 0, (long) batch * dim * 4),
                            "cuMemsetD8 (bench deltas)");
                }
                for (int c = 0; c < keyBatches.length; c++) {
                    Cuda.check(cuMemcpyHtoD(keys.at((long) c * batch * 8L), Pointer.to(keyBatches[c]), batch * 8L),
                            "cuMemcpyHtoD (bench keys)");
                }
                for (int c = 0; c < keyBatches.length; c++) {
                    // Reading the stats waits for the GPU: read them before the last warm-up call, so
                    // that the first timed call, like every later one, finds its predecessor's
                    // unwaited work (a read's installs into HBM) still queued.
                    if (c == warmup - (statsCalls() - calls)) {
                        atTimedStart.run();
                    }
                    s.makeGpuCurrent();
                    CUdeviceptr callKeys = keys.at((long) c * batch * 8L);
                    if (w == Workload.WRITE) {
                        for (int i = 0; i < batch; i++) {
                            Arrays.fill(check, i * dim, (i + 1) * dim, keyBatches[c][i]);
                        }
                        Cuda.check(cuMemcpyHtoD(out.pointer(), Pointer.to(check), (long) batch * dim * 4), "cuMemcpyHtoD (bench rows)");
                    }
                    long t0 = System.nanoTime();
                    long got = batch;
                    if (w == Workload.WRITE) {
                        s.multiPut(callKeys, batch, out.pointer());
                    } else {
                        got = s.multiGet(callKeys, batch, out.pointer(), found.pointer());
                        if (deltas != null) {
                            s.accumulate(callKeys, batch, deltas.pointer());
                        }
                    }
                    long t = System.nanoTime() - t0;
                    if (w != Workload.WRITE && (c == 0 || c == keyBatches.length - 1)) {
                        s.makeGpuCurrent();
                        Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyDtoH(Pointer.to(check), out.pointer(), (long) batch * dim * 4),
                                "cuMemcpyDtoH (bench rows)");
                        check((int) got, keyBatches[c], check);
                    }
                    if (c >= warmup) {
                        rates[c - warmup] = batch / (t / 1e9);
                    }
                }
            }
        }
        return rates;
    }

    /**
     * {@code --callers} threads, each running workload {@code w} on its own batches (distribution
     * {@code d}, its own seed) and device buffers; after their warm-up calls they wait for each
     * other, then run their timed calls at once. Returns one figure: all timed keys over the wall
     * time from the common start to the last caller's end.
     */
    private double[] timeCallers(MlkvStore s, Workload w, int d, Runnable atTimedStart) throws Exception {
        java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(callers + 1);
        java.util.concurrent.CyclicBarrier end = new java.util.concurrent.CyclicBarrier(callers + 1);
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(callers);
        try {
            List<java.util.concurrent.Future<double[]>> running = new ArrayList<>();
            for (int c = 0; c < callers; c++) {
                KeyGenerator g = KeyGenerators.create(new KeyGenerators.Spec(distributions.get(d), records, theta, 0.2, 0.8,
                        seed + d + 1000L * (c + 1)));
                long[][] mine = new long[warmup + calls][batch];
                for (long[] b : mine) {
                    g.fill(b);
                }
                running.add(pool.submit(() -> {
                    double[] rates = timeDevice(s, w, mine, () -> {
                        try {
                            start.await();
                        } catch (Exception e) {
                            throw new IllegalStateException(e);
                        }
                    });
                    end.await();
                    return rates;
                }));
            }
            start.await();
            atTimedStart.run();
            long t0 = System.nanoTime();
            end.await();
            long t = System.nanoTime() - t0;
            double[] all = new double[callers * calls];
            for (int c = 0; c < callers; c++) {
                System.arraycopy(running.get(c).get(), 0, all, c * calls, calls);
            }
            callerRates = all;
            return new double[] {(double) callers * calls * batch / (t / 1e9)};
        } finally {
            pool.shutdownNow();
        }
    }

    /** After the timed calls of a write: the rows written read back as written, from every tier, after a flush. */
    private void checkWrites(MlkvStore s, Workload w, long[][] keyBatches) {
        if (w == Workload.WRITE || w == Workload.TRAIN) {
            s.flush();
            float[] out = new float[batch * dim];
            boolean[] found = new boolean[batch];
            check(s.multiGet(keyBatches[keyBatches.length - 1], out, found), keyBatches[keyBatches.length - 1], out);
        }
    }

    /** Every key must be found with its own row (value = key). */
    private void check(int got, long[] keys, float[] out) {
        if (got != keys.length) {
            throw new IllegalStateException("a read found " + got + " of " + keys.length + " keys");
        }
        for (int i = 0; i < keys.length; i++) {
            if (out[i * dim] != (float) keys[i]) {
                throw new IllegalStateException("key " + keys[i] + " read " + out[i * dim]);
            }
        }
    }

    /**
     * Mean ms per timed call in each measured part of a device read: the HBM lookup, the DRAM
     * reads (on the GPU where the tier is mapped), installs into HBM, moves into DRAM, and the
     * rest (host work on the misses, copies, synchronisation).
     */
    private String phases(StoreStats before, StoreStats after, double[] rates) {
        double total = 0;
        for (double r : rates) {
            total += batch / r * 1e3;
        }
        double mean = total / rates.length;
        // The stats span the timed calls and, with warm-up, the last warm-up call.
        int n = statsCalls();
        double find = (after.tier("HBM").lookupNanos() - before.tier("HBM").lookupNanos()) / 1e6 / n;
        double dram = (after.tier("DRAM").lookupNanos() - before.tier("DRAM").lookupNanos()) / 1e6 / n;
        double install = (after.tier("HBM").moveNanos() - before.tier("HBM").moveNanos()) / 1e6 / n;
        double demote = (after.tier("DRAM").moveNanos() - before.tier("DRAM").moveNanos()) / 1e6 / n;
        return String.format(Locale.ROOT, "mean %.2f = HBM find %.2f + DRAM reads %.2f + HBM installs %.2f + DRAM moves %.2f"
                + " + other %.2f", mean, find, dram, install, demote, mean - find - dram - install - demote);
    }

    /**
     * Calls of one caller between the two stats snapshots: the timed ones and, with warm-up, the
     * last warm-up call, before which the first snapshot is taken (see {@link #timeDevice}).
     */
    private int statsCalls() {
        return calls + (warmup > 0 ? 1 : 0);
    }

    private String millis(double[] rates) {
        StringBuilder b = new StringBuilder();
        for (double r : rates) {
            b.append(b.length() == 0 ? "" : " ").append(String.format(Locale.ROOT, "%.2f", batch / r * 1e3));
        }
        return b.toString();
    }

    private static double max(double[] v) {
        return Arrays.stream(v).max().orElse(0);
    }

    /** The {@code q} quantile of {@code v} (0: the smallest), by the nearest rank. */
    private static double quantile(double[] v, double q) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[(int) Math.min(s.length - 1, Math.floor(q * s.length))];
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
