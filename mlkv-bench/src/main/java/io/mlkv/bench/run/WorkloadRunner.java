package io.mlkv.bench.run;

import io.mlkv.bench.Progress;
import io.mlkv.core.MlkvStore;
import io.mlkv.core.StoreStats;
import io.mlkv.core.TierStats;
import io.mlkv.core.VectorInitializer;
import io.mlkv.core.workload.KeyGenerator;
import io.mlkv.core.workload.KeyGenerators;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * Runs a {@link Workload} against a store: a load phase that writes {@code recordcount} records
 * with deterministic values, then a timed phase in which client threads run the operation mix,
 * recording every operation's latency in HdrHistogram and sampling throughput and the DRAM hit
 * rate once a second.
 */
public final class WorkloadRunner {
    private static final int LOAD_BATCH = 65_536;
    private static final long HIGHEST_MICROS = TimeUnit.HOURS.toMicros(1);

    private final MlkvStore store;
    private final Workload workload;
    private final int threads;
    private final boolean verify;
    private boolean deviceReads;
    private final long seed;
    private final int dim;
    private final AtomicLong nextInsertKey;
    private final Map<Operation, Recorder> recorders = new EnumMap<>(Operation.class);
    private final Map<Operation, LongAdder> keysPerOp = new EnumMap<>(Operation.class);
    private final LongAdder opsDone = new LongAdder();
    private final LongAdder keysDone = new LongAdder();
    private final LongAdder integrityFailures = new LongAdder();
    private final LongAdder verifiedKeys = new LongAdder();

    public WorkloadRunner(MlkvStore store, Workload workload, int threads, boolean verify, long seed) {
        checkOptions(workload, threads, verify);
        this.store = store;
        this.workload = workload;
        this.threads = threads;
        this.verify = verify;
        this.seed = seed;
        this.dim = store.dim();
        this.nextInsertKey = new AtomicLong(Math.round(workload.recordCount() * workload.keySpaceFactor()));
        for (Operation op : workload.mix().keySet()) {
            recorders.put(op, new Recorder(HIGHEST_MICROS, 3));
            keysPerOp.put(op, new LongAdder());
        }
    }

    /** The value every record's element {@code d} has: a pure function of the key, so reads can be checked. */
    public static float expected(long key, int d) {
        return (float) (key % 100_003) + d * 0.25f;
    }

    /** Writes the records {@code 0 .. recordcount-1}, then flushes. Returns the seconds it took. */
    public double load() {
        long start = System.nanoTime();
        Progress progress = new Progress("load", workload.recordCount(), "keys");
        long[] keys = new long[LOAD_BATCH];
        float[] values = new float[LOAD_BATCH * dim];
        for (long from = 0; from < workload.recordCount(); from += LOAD_BATCH) {
            int n = (int) Math.min(LOAD_BATCH, workload.recordCount() - from);
            long[] k = n == LOAD_BATCH ? keys : new long[n];
            float[] v = n == LOAD_BATCH ? values : new float[n * dim];
            for (int i = 0; i < n; i++) {
                k[i] = from + i;
            }
            fill(k, v);
            store.multiPut(k, v);
            progress.update(from + n);
        }
        store.flush();
        return (System.nanoTime() - start) / 1e9;
    }

    /** Runs the timed phase; {@code loadSeconds} is carried into the result. */
    public RunResult run(double loadSeconds) throws InterruptedException {
        long total = workload.operationCount();
        Progress progress = new Progress("run", total, "ops");
        CountDownLatch done = new CountDownLatch(threads);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<RunResult.TimelinePoint> timeline = new ArrayList<>();
        Map<Operation, Histogram> totals = new EnumMap<>(Operation.class);
        for (Operation op : recorders.keySet()) {
            totals.put(op, new Histogram(HIGHEST_MICROS, 3));
        }
        long start = System.nanoTime();
        List<Thread> clients = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            long quota = total / threads + (t < total % threads ? 1 : 0);
            int id = t;
            Thread client = new Thread(() -> {
                try {
                    client(id, quota);
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                } finally {
                    done.countDown();
                }
            }, "mlkv-client-" + t);
            clients.add(client);
            client.start();
        }
        TierStats lastDram = store.stats().tier("DRAM");
        long lastOps = 0;
        long lastKeys = 0;
        long lastSample = start;
        boolean finished = false;
        while (!finished) {
            finished = done.await(1, TimeUnit.SECONDS);
            long now = System.nanoTime();
            double secs = (now - lastSample) / 1e9;
            long ops = opsDone.sum();
            long keys = keysDone.sum();
            TierStats dram = store.stats().tier("DRAM");
            long hits = dram.hits() - lastDram.hits();
            long lookups = hits + dram.misses() - lastDram.misses();
            if (secs > 0.05) {
                timeline.add(new RunResult.TimelinePoint((now - start) / 1e9, (ops - lastOps) / secs,
                        (keys - lastKeys) / secs, lookups == 0 ? Double.NaN : (double) hits / lookups));
            }
            lastDram = dram;
            lastOps = ops;
            lastKeys = keys;
            lastSample = now;
            for (Map.Entry<Operation, Recorder> e : recorders.entrySet()) {
                totals.get(e.getKey()).add(e.getValue().getIntervalHistogram());
            }
            progress.update(ops);
            if (failure.get() != null) {
                break;
            }
        }
        for (Thread c : clients) {
            c.join();
        }
        double runSeconds = (System.nanoTime() - start) / 1e9;
        Throwable f = failure.get();
        if (f != null) {
            throw new IllegalStateException("a client thread failed: " + f, f);
        }
        for (Map.Entry<Operation, Recorder> e : recorders.entrySet()) {
            totals.get(e.getKey()).add(e.getValue().getIntervalHistogram());
        }
        List<RunResult.OperationStats> perOp = new ArrayList<>();
        for (Map.Entry<Operation, Histogram> e : totals.entrySet()) {
            Histogram h = e.getValue();
            perOp.add(new RunResult.OperationStats(e.getKey().name().toLowerCase(java.util.Locale.ROOT), h.getTotalCount(),
                    keysPerOp.get(e.getKey()).sum(), h.getMean(), h.getValueAtPercentile(50), h.getValueAtPercentile(95),
                    h.getValueAtPercentile(99), h.getValueAtPercentile(99.9), h.getMaxValue()));
        }
        StoreStats stats = store.stats();
        return new RunResult(workload.name(), threads, dim, workload.batchSize(), loadSeconds, runSeconds,
                opsDone.sum(), keysDone.sum(), perOp, timeline, verify ? verifiedKeys.sum() : -1, integrityFailures.sum(),
                stats);
    }

    /**
     * Checks the runner's options without a store, so a command can refuse them before it opens
     * one.
     */
    public static void checkOptions(Workload workload, int threads, boolean verify) {
        if (threads < 1) {
            throw new IllegalArgumentException("--threads must be at least 1, was " + threads);
        }
        if (verify && workload.perturbsValues()) {
            throw new IllegalArgumentException("--verify cannot follow workload " + workload.name()
                    + ": its accumulate / train steps change values in ways reads cannot predict");
        }
    }

    /**
     * READ and TRAIN_STEP operations use the store's device-pointer path: each client copies its
     * batch of keys to the GPU (through pinned memory), reads into device buffers and, for a
     * training step, accumulates deltas that live on the GPU, as training code whose tensors live
     * on the GPU would. Needs a store with an HBM tier.
     */
    public WorkloadRunner deviceReads(boolean on) {
        this.deviceReads = on;
        return this;
    }

    /** Device buffers of one client for {@link #deviceReads}. */
    private static final class DeviceBatch implements AutoCloseable {
        final io.mlkv.gpu.cuda.PinnedMemory hostKeys;
        final io.mlkv.gpu.cuda.DeviceMemory keys;
        final io.mlkv.gpu.cuda.DeviceMemory out;
        final io.mlkv.gpu.cuda.DeviceMemory found;
        final io.mlkv.gpu.cuda.DeviceMemory deltas;

        DeviceBatch(MlkvStore store, int n, int dim) {
            store.makeGpuCurrent();
            hostKeys = new io.mlkv.gpu.cuda.PinnedMemory(n * 8L, "bench keys");
            keys = new io.mlkv.gpu.cuda.DeviceMemory(n * 8L, "bench keys");
            out = new io.mlkv.gpu.cuda.DeviceMemory((long) n * dim * 4, "bench out");
            found = new io.mlkv.gpu.cuda.DeviceMemory(n, "bench found");
            deltas = new io.mlkv.gpu.cuda.DeviceMemory((long) n * dim * 4, "bench deltas");
            io.mlkv.gpu.cuda.Cuda.check(jcuda.driver.JCudaDriver.cuMemsetD32(deltas.pointer(), Float.floatToIntBits(0.001f),
                    (long) n * dim), "cuMemsetD32 (bench deltas)");
        }

        /** A training step on the device: read the batch's rows into device memory, then add device deltas. */
        void trainStep(MlkvStore store, long[] batch) {
            store.makeGpuCurrent();
            hostKeys.buffer().order(java.nio.ByteOrder.nativeOrder()).asLongBuffer().put(0, batch);
            io.mlkv.gpu.cuda.Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyHtoD(keys.pointer(), hostKeys.pointer(),
                    batch.length * 8L), "cuMemcpyHtoD (bench keys)");
            store.multiGet(keys.pointer(), batch.length, out.pointer(), found.pointer());
            store.accumulate(keys.pointer(), batch.length, deltas.pointer());
        }

        void read(MlkvStore store, long[] batch, float[] outHost, boolean[] foundHost, boolean copyBack) {
            store.makeGpuCurrent();
            hostKeys.buffer().order(java.nio.ByteOrder.nativeOrder()).asLongBuffer().put(0, batch);
            io.mlkv.gpu.cuda.Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyHtoD(keys.pointer(), hostKeys.pointer(),
                    batch.length * 8L), "cuMemcpyHtoD (bench keys)");
            store.multiGet(keys.pointer(), batch.length, out.pointer(), found.pointer());
            if (copyBack) {
                store.makeGpuCurrent();
                io.mlkv.gpu.cuda.Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyDtoH(jcuda.Pointer.to(outHost), out.pointer(),
                        outHost.length * 4L), "cuMemcpyDtoH (bench out)");
                byte[] f = new byte[foundHost.length];
                io.mlkv.gpu.cuda.Cuda.check(jcuda.driver.JCudaDriver.cuMemcpyDtoH(jcuda.Pointer.to(f), found.pointer(),
                        f.length), "cuMemcpyDtoH (bench found)");
                for (int i = 0; i < f.length; i++) {
                    foundHost[i] = f[i] != 0;
                }
            }
        }

        @Override
        public void close() {
            deltas.close();
            found.close();
            out.close();
            keys.close();
            hostKeys.close();
        }
    }

    private void client(int id, long quota) {
        if (deviceReads) {
            try (DeviceBatch device = new DeviceBatch(store, workload.batchSize(), dim)) {
                client(id, quota, device);
            }
        } else {
            client(id, quota, null);
        }
    }

    private void client(int id, long quota, DeviceBatch device) {
        SplittableRandom random = new SplittableRandom(seed * 31 + id);
        long keySpace = Math.round(workload.recordCount() * workload.keySpaceFactor());
        KeyGenerator keys = KeyGenerators.create(new KeyGenerators.Spec(workload.distribution(), keySpace,
                workload.theta(), workload.hotSetFraction(), workload.hotOpFraction(), seed * 17 + id));
        Operation[] ops = workload.mix().keySet().toArray(new Operation[0]);
        double[] cumulative = new double[ops.length];
        double sum = 0;
        for (int i = 0; i < ops.length; i++) {
            sum += workload.mix().get(ops[i]);
            cumulative[i] = sum;
        }
        int n = workload.batchSize();
        long[] batch = new long[n];
        float[] values = new float[n * dim];
        float[] out = new float[n * dim];
        boolean[] found = new boolean[n];
        float[] deltas = new float[n * dim];
        java.util.Arrays.fill(deltas, 0.001f);
        VectorInitializer init = (key, o, off, d) -> {
            for (int j = 0; j < d; j++) {
                o[off + j] = expected(key, j);
            }
        };
        for (long done = 0; done < quota; done++) {
            double pick = random.nextDouble() * sum;
            int which = 0;
            while (which < ops.length - 1 && pick >= cumulative[which]) {
                which++;
            }
            Operation op = ops[which];
            if (op == Operation.INSERT) {
                long first = nextInsertKey.getAndAdd(n);
                for (int i = 0; i < n; i++) {
                    batch[i] = first + i;
                }
                keys.grow(n);
            } else {
                keys.fill(batch);
            }
            long t0 = System.nanoTime();
            switch (op) {
                case READ:
                    if (device != null) {
                        device.read(store, batch, out, found, verify);
                    } else {
                        store.multiGet(batch, out, found);
                    }
                    break;
                case UPDATE:
                case INSERT:
                    fill(batch, values);
                    store.multiPut(batch, values);
                    break;
                case READ_MODIFY_WRITE:
                    store.multiGet(batch, out, found);
                    fill(batch, values);
                    store.multiPut(batch, values);
                    break;
                case FIND_OR_INSERT:
                    store.findOrInsert(batch, out, init);
                    java.util.Arrays.fill(found, true);
                    break;
                case ACCUMULATE:
                    store.accumulate(batch, deltas);
                    break;
                case DELETE:
                    store.multiDelete(batch);
                    break;
                case TRAIN_STEP:
                    if (device != null) {
                        device.trainStep(store, batch);
                    } else {
                        store.multiGet(batch, out, found);
                        store.accumulate(batch, deltas);
                    }
                    break;
                default:
                    throw new IllegalStateException("unsupported operation " + op);
            }
            long micros = (System.nanoTime() - t0) / 1000;
            recorders.get(op).recordValue(Math.min(micros, HIGHEST_MICROS));
            keysPerOp.get(op).add(n);
            opsDone.increment();
            keysDone.add(n);
            if (verify && (op == Operation.READ || op == Operation.READ_MODIFY_WRITE || op == Operation.FIND_OR_INSERT)) {
                check(batch, out, found);
            }
        }
    }

    private void fill(long[] keys, float[] values) {
        for (int i = 0; i < keys.length; i++) {
            for (int d = 0; d < dim; d++) {
                values[i * dim + d] = expected(keys[i], d);
            }
        }
    }

    private void check(long[] keys, float[] out, boolean[] found) {
        int compared = 0;
        for (int i = 0; i < keys.length; i++) {
            if (found[i]) {
                compared++;
                if (out[i * dim] != expected(keys[i], 0) || out[i * dim + dim - 1] != expected(keys[i], dim - 1)) {
                    integrityFailures.increment();
                }
            }
        }
        verifiedKeys.add(compared);
    }
}
