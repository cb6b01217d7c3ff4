package io.mlkv.bench.jmh;

import io.mlkv.core.Durability;
import io.mlkv.core.GpuMode;
import io.mlkv.core.MlkvStore;
import io.mlkv.core.SizeCounting;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.dram.DramTier;
import io.mlkv.storage.rocksdb.RocksDbTier;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
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
import org.rocksdb.Options;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;

/**
 * Batched {@code multiGet} and {@code multiPut} of uniformly random keys on each tier, on the
 * composed store, and on what a Java user would otherwise pick, measured in the same run. One
 * operation is one batch of {@code batch} keys, so keys/s = ops/s x batch.
 *
 * <ul>
 *   <li>{@code DRAM_TIER}: the off-heap DRAM tier alone, sized to hold every key;</li>
 *   <li>{@code ROCKSDB_TIER}: the RocksDB tier alone (our options, MultiGet);</li>
 *   <li>{@code STORE_ALL_IN_DRAM}: the store, DRAM sized to hold every key; a batch splits over
 *       the store's {@code batchThreads} (default: the available processors);</li>
 *   <li>{@code STORE_ALL_IN_DRAM_ONE_THREAD}: the same with {@code batchThreads(1)}, every batch
 *       on the caller's thread;</li>
 *   <li>{@code STORE_QUARTER_IN_DRAM}: the store, DRAM holding a quarter of the keys;</li>
 *   <li>{@code STORE_QUARTER_IN_DRAM_COUNT_ON_DEMAND}: the same with {@link SizeCounting#ON_DEMAND}:
 *       puts do not ask RocksDB whether the keys DRAM lacks exist;</li>
 *   <li>{@code CONCURRENT_HASH_MAP}, {@code CAFFEINE}, {@code AGRONA_MAP}: on-heap maps of
 *       {@code float[]} ({@link HeapBaselines});</li>
 *   <li>{@code CHRONICLE_MAP}: Chronicle Map, off heap, sized for the keys with a quarter to
 *       spare ({@link ChronicleBaseline});</li>
 *   <li>{@code RAW_ROCKSDB}: RocksDB JNI with default options, {@code multiGetAsList} and a
 *       {@code WriteBatch} per batch: what a user would write first;</li>
 *   <li>{@code RAW_ROCKSDB_TUNED}: the same code with the table options our RocksDB tier uses
 *       (whole-key Bloom filters of 10 bits per key, partitioned filters and indexes behind a pinned
 *       top level, the same 256 MiB LRU block cache, 4 KiB blocks, no compression, 64 MiB write
 *       buffers, SST files read through memory maps unless {@code -Dmlkv.rocksdbMmapReads=false}, the
 *       clock cache with {@code -Dmlkv.rocksdbClockCache=true}, as our tier): the baseline {@code ROCKSDB_TIER} is compared with.</li>
 * </ul>
 *
 * <p>Run: {@code java -jar mlkv-bench/target/mlkv-bench.jar jmh TierBenchmark -f 1 -wi 2 -i 3 -w 5s -r 5s}
 * (add {@code -p impl=DRAM_TIER,CONCURRENT_HASH_MAP} to pick implementations).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
// The options after -Xmx4g are what Chronicle Map needs on Java 17 and later, and its usage statistics off.
@Fork(value = 1, jvmArgsAppend = {"-Xmx4g", "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED", "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED", "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED", "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED", "--add-opens=java.base/java.util=ALL-UNNAMED",
    "-Dchronicle.analytics.disable=true"})
@Warmup(iterations = 2, time = 5)
@Measurement(iterations = 3, time = 5)
public class TierBenchmark {

    /** What is measured. */
    public enum Impl { DRAM_TIER, ROCKSDB_TIER, STORE_ALL_IN_DRAM, STORE_ALL_IN_DRAM_ONE_THREAD, STORE_QUARTER_IN_DRAM,
        STORE_QUARTER_IN_DRAM_COUNT_ON_DEMAND, CONCURRENT_HASH_MAP, CAFFEINE, AGRONA_MAP, CHRONICLE_MAP, RAW_ROCKSDB, RAW_ROCKSDB_TUNED }

    @Param({"DRAM_TIER", "ROCKSDB_TIER", "STORE_ALL_IN_DRAM", "STORE_ALL_IN_DRAM_ONE_THREAD", "STORE_QUARTER_IN_DRAM",
        "STORE_QUARTER_IN_DRAM_COUNT_ON_DEMAND", "CONCURRENT_HASH_MAP", "CAFFEINE", "AGRONA_MAP", "CHRONICLE_MAP", "RAW_ROCKSDB", "RAW_ROCKSDB_TUNED"})
    public Impl impl;

    @Param("64")
    public int dim;

    @Param("4096")
    public int batch;

    @Param("500000")
    public int keys;

    /** The store's DRAM policy ({@code lru}, the store's default, {@code lfu} or {@code tinylfu}); the store variants only. */
    @Param("lru")
    public String policy;

    private Path dir;
    private VectorTier target;
    private final List<long[]> batches = new ArrayList<>();
    private float[] values;

    @Setup(Level.Trial)
    public void open() throws IOException {
        dir = Files.createTempDirectory("mlkv-jmh");
        long dramAll = (long) keys * 2 / DramTier.BUCKET_SLOTS * DramTier.bucketBytes(dim);
        switch (impl) {
            case DRAM_TIER:
                target = new DramTier(dim, dramAll, "lru");
                break;
            case ROCKSDB_TIER:
                target = RocksDbTier.open(dir, dim, 256L << 20, false);
                break;
            case STORE_ALL_IN_DRAM:
                target = store(dramAll, Runtime.getRuntime().availableProcessors(), SizeCounting.ON_WRITE);
                break;
            case STORE_ALL_IN_DRAM_ONE_THREAD:
                target = store(dramAll, 1, SizeCounting.ON_WRITE);
                break;
            case STORE_QUARTER_IN_DRAM:
                target = store(dramAll / 8, Runtime.getRuntime().availableProcessors(), SizeCounting.ON_WRITE);
                break;
            case STORE_QUARTER_IN_DRAM_COUNT_ON_DEMAND:
                target = store(dramAll / 8, Runtime.getRuntime().availableProcessors(), SizeCounting.ON_DEMAND);
                break;
            case CONCURRENT_HASH_MAP:
                target = new HeapBaselines.Chm(dim);
                break;
            case CAFFEINE:
                target = new HeapBaselines.CaffeineMap(dim);
                break;
            case AGRONA_MAP:
                target = new HeapBaselines.AgronaMap(dim);
                break;
            case CHRONICLE_MAP:
                target = new ChronicleBaseline(dim, keys + keys / 4L);
                break;
            case RAW_ROCKSDB:
                target = new RawRocks(dir, dim, RawRocks.defaults());
                break;
            case RAW_ROCKSDB_TUNED:
                target = new RawRocks(dir, dim, RawRocks.asOurTier(256L << 20));
                break;
            default:
                throw new AssertionError(impl);
        }
        loadSequential(target, keys, batch);
        SplittableRandom r = new SplittableRandom(7);
        for (int b = 0; b < 64; b++) {
            long[] k = new long[batch];
            for (int i = 0; i < batch; i++) {
                k[i] = r.nextInt(keys);
            }
            batches.add(k);
        }
        values = new float[batch * dim];
        for (int i = 0; i < values.length; i++) {
            values[i] = i;
        }
    }

    /** Writes keys {@code 0 .. keys-1} (zero vectors) in batches; the set-up both benchmarks share. */
    static void loadSequential(VectorTier target, int keys, int batch) {
        int dim = target.dim();
        long[] all = new long[batch];
        float[] v = new float[batch * dim];
        for (int from = 0; from < keys; from += batch) {
            int n = Math.min(batch, keys - from);
            long[] k = n == batch ? all : new long[n];
            for (int i = 0; i < n; i++) {
                k[i] = from + i;
            }
            target.multiPut(k, n == batch ? v : new float[n * dim]);
        }
    }

    private MlkvStore store(long dramBytes, int batchThreads, SizeCounting counting) {
        return MlkvStore.builder().dim(dim).directory(dir).dramCapacityBytes(dramBytes).sizeCounting(counting)
                .policy(policy).blockCacheBytes(256L << 20).durability(Durability.WRITE_BACK).gpu(GpuMode.OFF).batchThreads(batchThreads)
                .build();
    }

    @TearDown(Level.Trial)
    public void close() throws IOException {
        target.close();
        io.mlkv.storage.FileTrees.delete(dir);
    }

    /**
     * Each JMH thread's output buffers and place in the batch list, so that several callers
     * ({@code -t N}) neither share buffers nor walk the batches in step.
     */
    @State(Scope.Thread)
    public static class Caller {
        float[] out;
        boolean[] found;
        int next;

        @Setup(Level.Trial)
        public void open(TierBenchmark b) {
            out = new float[b.batch * b.dim];
            found = new boolean[b.batch];
            next = b.callers.getAndAdd(17) & 63;
        }

        long[] nextBatch(TierBenchmark b) {
            next = (next + 1) & 63;
            return b.batches.get(next);
        }
    }

    /** Spreads the callers' starting batches. */
    private final AtomicInteger callers = new AtomicInteger();

    @Benchmark
    public int multiGet(Caller c) {
        return target.multiGet(c.nextBatch(this), c.out, c.found);
    }

    /** Writes from several callers ({@code -t N}) need a thread-safe implementation: not {@code AGRONA_MAP}. */
    @Benchmark
    public void multiPut(Caller c) {
        target.multiPut(c.nextBatch(this), values);
    }

    /** RocksDB JNI as a user would write it: byte[] keys and values, MultiGet, one WriteBatch per batch. */
    static final class RawRocks implements HeapBaselines.Measured {
        private final int dim;
        private final Options options;
        private final WriteOptions writeOptions = new WriteOptions();
        private final RocksDB db;

        /** RocksDB's defaults. */
        static Options defaults() {
            return new Options().setCreateIfMissing(true);
        }

        /** The table options of our RocksDB tier ({@code RocksDbTier}), with a block cache of {@code cacheBytes}. */
        static Options asOurTier(long cacheBytes) {
            RocksDB.loadLibrary();
            org.rocksdb.BlockBasedTableConfig table = new org.rocksdb.BlockBasedTableConfig()
                    .setBlockCache(RocksDbTier.newBlockCache(cacheBytes))
                    .setFilterPolicy(new org.rocksdb.BloomFilter(10, false))
                    .setWholeKeyFiltering(true)
                    .setCacheIndexAndFilterBlocks(true)
                    .setCacheIndexAndFilterBlocksWithHighPriority(true)
                    .setPinL0FilterAndIndexBlocksInCache(true)
                    .setIndexType(org.rocksdb.IndexType.kTwoLevelIndexSearch)
                    .setPartitionFilters(true)
                    .setMetadataBlockSize(4096)
                    .setPinTopLevelIndexAndFilter(true)
                    .setBlockSize(4096)
                    .setFormatVersion(5);
            return new Options().setCreateIfMissing(true).setTableFormatConfig(table)
                    .setAllowMmapReads(RocksDbTier.mmapReads())
                    .setCompressionType(org.rocksdb.CompressionType.NO_COMPRESSION)
                    .setMemtablePrefixBloomSizeRatio(0.05).setMemtableWholeKeyFiltering(true)
                    .setWriteBufferSize(64L << 20).setLevelCompactionDynamicLevelBytes(true);
        }

        RawRocks(Path dir, int dim, Options options) {
            this.dim = dim;
            this.options = options;
            try {
                db = RocksDB.open(options, dir.resolve("raw").toString());
            } catch (RocksDBException e) {
                throw new IllegalStateException("RocksDB.open: " + e.getMessage(), e);
            }
        }

        private static byte[] key(long k) {
            return ByteBuffer.allocate(8).putLong(k).array();
        }

        @Override
        public int dim() {
            return dim;
        }

        @Override
        public int multiGet(long[] keys, float[] out, boolean[] found) {
            List<byte[]> ks = new ArrayList<>(keys.length);
            for (long k : keys) {
                ks.add(key(k));
            }
            try {
                List<byte[]> vs = db.multiGetAsList(ks);
                int hits = 0;
                for (int i = 0; i < keys.length; i++) {
                    byte[] v = vs.get(i);
                    found[i] = v != null;
                    if (v != null) {
                        ByteBuffer.wrap(v).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out, i * dim, dim);
                        hits++;
                    }
                }
                return hits;
            } catch (RocksDBException e) {
                throw new IllegalStateException("multiGetAsList: " + e.getMessage(), e);
            }
        }

        @Override
        public void multiPut(long[] keys, float[] values) {
            try (WriteBatch wb = new WriteBatch()) {
                ByteBuffer bb = ByteBuffer.allocate(dim * 4).order(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < keys.length; i++) {
                    bb.clear();
                    bb.asFloatBuffer().put(values, i * dim, dim);
                    wb.put(key(keys[i]), bb.array().clone());
                }
                db.write(writeOptions, wb);
            } catch (RocksDBException e) {
                throw new IllegalStateException("write: " + e.getMessage(), e);
            }
        }

        @Override
        public long size() {
            throw new UnsupportedOperationException("not measured");
        }

        @Override
        public void close() {
            db.close();
            writeOptions.close();
            options.close();
        }
    }
}
