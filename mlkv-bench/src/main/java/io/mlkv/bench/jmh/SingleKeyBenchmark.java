package io.mlkv.bench.jmh;

import io.mlkv.core.Durability;
import io.mlkv.core.GpuMode;
import io.mlkv.core.MlkvStore;
import io.mlkv.storage.dram.DramTier;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
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

/**
 * One key per call, as a YCSB-style client or a request handler reads and writes: the store's
 * {@code get} and {@code put} of a table DRAM holds (write-back) against a
 * {@code ConcurrentHashMap<Long, float[]>} whose row is copied out or in, the same uniform random
 * keys, in the same run. One operation is one key.
 *
 * <p>Run: {@code java -jar mlkv-bench/target/mlkv-bench.jar jmh SingleKeyBenchmark -f 1 -wi 2 -i 5 -w 2s -r 3s [-t 4]}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g"})
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 3)
public class SingleKeyBenchmark {

    /** What is measured. */
    public enum Impl { STORE_ALL_IN_DRAM, CONCURRENT_HASH_MAP }

    @Param({"STORE_ALL_IN_DRAM", "CONCURRENT_HASH_MAP"})
    public Impl impl;

    @Param("64")
    public int dim;

    @Param("1048576")
    public int keys;

    private Path dir;
    private MlkvStore store;
    private ConcurrentHashMap<Long, float[]> map;

    @Setup(Level.Trial)
    public void open() throws IOException {
        if (impl == Impl.STORE_ALL_IN_DRAM) {
            dir = Files.createTempDirectory("mlkv-jmh");
            long dram = (long) keys * 4 / DramTier.BUCKET_SLOTS * DramTier.bucketBytes(dim);
            store = MlkvStore.builder().dim(dim).directory(dir).dramCapacityBytes(dram).blockCacheBytes(128L << 20)
                    .durability(Durability.WRITE_BACK).gpu(GpuMode.OFF).build();
            int batch = 65536;
            float[] rows = new float[batch * dim];
            for (int from = 0; from < keys; from += batch) {
                long[] k = new long[Math.min(batch, keys - from)];
                for (int i = 0; i < k.length; i++) {
                    k[i] = from + i;
                }
                store.multiPut(k, k.length == batch ? rows : new float[k.length * dim]);
            }
        } else {
            map = new ConcurrentHashMap<>(keys * 2);
            for (long k = 0; k < keys; k++) {
                map.put(k, new float[dim]);
            }
        }
    }

    @TearDown(Level.Trial)
    public void close() throws IOException {
        if (store != null) {
            store.close();
            io.mlkv.storage.FileTrees.delete(dir);
        }
    }

    /** Each JMH thread's own keys and output row. */
    @State(Scope.Thread)
    public static class Caller {
        SplittableRandom random;
        float[] out;

        @Setup(Level.Trial)
        public void open(SingleKeyBenchmark b) {
            random = new SplittableRandom(Thread.currentThread().getId());
            out = new float[b.dim];
        }
    }

    @Benchmark
    public float get(Caller c) {
        long key = c.random.nextInt(keys);
        if (store != null) {
            if (!store.get(key, c.out)) {
                throw new IllegalStateException("key " + key + " not found");
            }
        } else {
            System.arraycopy(map.get(key), 0, c.out, 0, dim);
        }
        return c.out[0];
    }

    /** One key's row overwritten: the store's {@code put} (write-back), the map's put of a copy. */
    @Benchmark
    public void put(Caller c) {
        long key = c.random.nextInt(keys);
        c.out[0] = key;
        if (store != null) {
            store.put(key, c.out);
        } else {
            map.put(key, c.out.clone());
        }
    }
}
