package io.mlkv.bench.jmh;

import io.mlkv.core.Durability;
import io.mlkv.core.GpuMode;
import io.mlkv.core.MlkvStore;
import io.mlkv.core.VectorInitializer;
import io.mlkv.storage.dram.DramTier;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * The training operations, {@code findOrInsert} and {@code accumulate}, on the composed store and
 * on the on-heap maps a Java user would write them with ({@link HeapBaselines}), in the same run.
 * One operation is one batch of {@code batch} keys. {@code findOrInsert} batches are half loaded
 * keys and half never-seen keys (fresh each call; every iteration starts from a freshly loaded
 * table so the maps do not grow without bound); {@code accumulate} batches are loaded keys.
 *
 * <p>Run: {@code java -jar mlkv-bench/target/mlkv-bench.jar jmh StoreOpsBenchmark -f 1 -wi 2 -i 5 -w 3s -r 3s}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g"})
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 5, time = 3)
public class StoreOpsBenchmark {

    /** What is measured. */
    public enum Impl { STORE_ALL_IN_DRAM, STORE_QUARTER_IN_DRAM, CONCURRENT_HASH_MAP, CONCURRENT_HASH_MAP_ATOMIC, CAFFEINE,
        AGRONA_MAP }

    @Param({"STORE_ALL_IN_DRAM", "STORE_QUARTER_IN_DRAM", "CONCURRENT_HASH_MAP", "CONCURRENT_HASH_MAP_ATOMIC", "CAFFEINE",
        "AGRONA_MAP"})
    public Impl impl;

    @Param("64")
    public int dim;

    @Param("2048")
    public int batch;

    @Param("200000")
    public int keys;

    /**
     * New keys a findOrInsert iteration inserts at most, for the DRAM size of {@code STORE_ALL_IN_DRAM}:
     * about 1,000 batches/s of {@code batch / 2} new keys over a 3 s iteration, with room to spare.
     */
    private static final long GROWTH_PER_ITERATION = 4_000_000;

    private Path dir;
    private HeapBaselines.MapTier target;
    private long[][] loaded;
    private long nextNew;
    private int next;
    private float[] out;
    private float[] deltas;

    @Setup(Level.Iteration)
    public void open(BenchmarkParams params) throws IOException {
        dir = Files.createTempDirectory("mlkv-jmh");
        // "All in DRAM" holds the loaded keys and, for findOrInsert, what an iteration adds (the
        // maps keep every key in memory too), with the slack of a hashed table: four slots a key.
        long growth = params.getBenchmark().endsWith(".findOrInsert") ? GROWTH_PER_ITERATION : 0;
        long dramAll = (keys + growth) * 4 / DramTier.BUCKET_SLOTS * DramTier.bucketBytes(dim);
        switch (impl) {
            case STORE_ALL_IN_DRAM:
                target = new StoreTier(dim, dir, dramAll);
                break;
            case STORE_QUARTER_IN_DRAM:
                target = new StoreTier(dim, dir, dramAll / 16);
                break;
            case CONCURRENT_HASH_MAP:
                target = new HeapBaselines.Chm(dim);
                break;
            case CONCURRENT_HASH_MAP_ATOMIC:
                target = new HeapBaselines.AtomicChm(dim);
                break;
            case CAFFEINE:
                target = new HeapBaselines.CaffeineMap(dim);
                break;
            case AGRONA_MAP:
                target = new HeapBaselines.AgronaMap(dim);
                break;
            default:
                throw new AssertionError(impl);
        }
        TierBenchmark.loadSequential(target, keys, batch);
        SplittableRandom r = new SplittableRandom(11);
        loaded = new long[64][batch];
        for (long[] b : loaded) {
            for (int i = 0; i < batch; i++) {
                b[i] = r.nextInt(keys);
            }
        }
        nextNew = 1L << 40;
        out = new float[batch * dim];
        deltas = new float[batch * dim];
        Arrays.fill(deltas, 0.5f);
    }

    @TearDown(Level.Iteration)
    public void close() throws IOException {
        target.close();
        io.mlkv.storage.FileTrees.delete(dir);
    }

    @Benchmark
    public float findOrInsert() {
        next = (next + 1) & 63;
        long[] b = loaded[next].clone();
        for (int i = 0; i < batch; i += 2) {
            b[i] = nextNew++;
        }
        target.findOrInsert(b, out);
        return out[0];
    }

    /**
     * Each JMH thread's place in the batch list, so that several accumulating threads ({@code -t
     * N}) do not walk the batches in step. With more than one thread only the store and {@code
     * CONCURRENT_HASH_MAP_ATOMIC} add correctly: the other maps add outside any lock (or, Agrona's,
     * are not thread-safe at all).
     */
    @State(Scope.Thread)
    public static class Caller {
        int next;

        @Setup(Level.Trial)
        public void open(StoreOpsBenchmark b) {
            next = b.callers.getAndAdd(17) & 63;
        }
    }

    /** Spreads the callers' starting batches. */
    private final AtomicInteger callers = new AtomicInteger();

    @Benchmark
    public void accumulate(Caller c) {
        c.next = (c.next + 1) & 63;
        target.accumulate(loaded[c.next], deltas);
    }

    /** The store behind the same interface as the maps. */
    static final class StoreTier implements HeapBaselines.MapTier {
        private final MlkvStore store;
        private final VectorInitializer init = (key, o, off, d) -> Arrays.fill(o, off, off + d, INITIAL);

        StoreTier(int dim, Path dir, long dramBytes) {
            store = MlkvStore.builder().dim(dim).directory(dir).dramCapacityBytes(dramBytes).blockCacheBytes(128L << 20)
                    .durability(Durability.WRITE_BACK).gpu(GpuMode.OFF).build();
        }

        @Override
        public void findOrInsert(long[] keys, float[] out) {
            store.findOrInsert(keys, out, init);
        }

        @Override
        public void accumulate(long[] keys, float[] d) {
            store.accumulate(keys, d);
        }

        @Override
        public int dim() {
            return store.dim();
        }

        @Override
        public int multiGet(long[] keys, float[] out, boolean[] found) {
            return store.multiGet(keys, out, found);
        }

        @Override
        public void multiPut(long[] keys, float[] values) {
            store.multiPut(keys, values);
        }

        @Override
        public void multiDelete(long[] keys) {
            store.multiDelete(keys);
        }

        @Override
        public int contains(long[] keys, boolean[] out) {
            return store.contains(keys, out);
        }

        @Override
        public long size() {
            return store.size();
        }

        @Override
        public void forEach(io.mlkv.storage.VectorVisitor visitor) {
            store.forEach(visitor);
        }

        @Override
        public void close() {
            store.close();
        }
    }
}
