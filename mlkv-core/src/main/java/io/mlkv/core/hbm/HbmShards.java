package io.mlkv.core.hbm;

import static jcuda.driver.JCudaDriver.cuPointerGetAttribute;

import io.mlkv.core.tiers.Lifecycle;
import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.OwnedResources;
import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.gpu.shard.BatchPartition;
import io.mlkv.gpu.shard.OwnerSplit;
import io.mlkv.gpu.shard.PeerBuffers;
import io.mlkv.gpu.shard.ShardParts;
import io.mlkv.gpu.shard.ShardedGpuTable;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.dram.DramTier;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.FutureTask;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Function;
import java.util.function.ToLongFunction;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUpointer_attribute;

/**
 * The store's HBM tier as one or more shards, each an {@link HbmTier} with its own migration,
 * device writes and combined calls, on a CUDA device of the process (several shards may share
 * one). Every key has one owner shard, {@link ShardedGpuTable#ownerOf}, so a key lives in at most
 * one shard's table; DRAM and RocksDB below are the store's, one per host.
 *
 * <p>With one shard every call goes straight to it. With several:
 * <ul>
 *   <li><b>Device-pointer calls</b> take their batch on any of the shards' devices (the <em>home</em>
 *       of the call, found from the keys pointer). A kernel there splits the batch by owner, stably
 *       (a key repeated in a batch keeps its order, so the last put wins and every delta is added,
 *       as with one shard), a read's output rows travel with it (rows of keys not found come back
 *       as they were), the parts for shards on other devices are peer-copied there and run on
 *       them in parallel (on the store's shard threads) while the parts for shards on the
 *       home device run one after another on the caller's thread, and one kernel each puts rows
 *       and flags back in batch order.</li>
 *   <li><b>Host-array calls</b> split the batch by owner on the CPU.</li>
 *   <li><b>Checkpoints</b> write shard {@code s} to {@code hbm/shard-s} and the shard count to
 *       {@code hbm/shards.properties}; a store opened with another count starts its HBM tier cold
 *       (every checkpointed entry is in RocksDB too).</li>
 * </ul>
 */
public final class HbmShards implements AutoCloseable {
    /** The keys of one device call's part, at most: a batch above it goes in parts of this size. */
    private static final int MAX_PART = 1 << 20;
    /** Where a checkpoint of several shards records their count, inside {@link HbmTier#CHECKPOINT_DIR}. */
    static final String SHARDS_FILE = "shards.properties";
    /**
     * Copy every part to buffers of its own even where its shard lives on the home device, as
     * parts for another device are: {@code -Dmlkv.hbmShardCopyLocalParts=true}, so a one-GPU run
     * exercises the peer-copy path. Read when the store opens.
     */
    private final boolean copyLocalParts = Boolean.getBoolean("mlkv.hbmShardCopyLocalParts");

    /** One shard's tier and what drives it. */
    public record Stack(HbmMigration migration, DeviceWrites writes, CombinedDeviceCalls combined) {
    }

    private final int dim;
    private final HbmTier[] tiers;
    private final Stack[] stacks;
    private final Map<Integer, Home> homes = new LinkedHashMap<>();
    /** Runs the shards' parts of host-array reads, and of device calls the parts for other devices. */
    private final ExecutorService workers;
    private final OwnedResources owned = new OwnedResources();
    private Lifecycle lifecycle;
    /** Device calls split over shards, their time, and of it the partition and reorder kernels' and the peer copies'. */
    private final LongAdder routedParts = new LongAdder();
    private final LongAdder routeNanos = new LongAdder();
    private final LongAdder partitionNanos = new LongAdder();
    private final LongAdder copyNanos = new LongAdder();

    /**
     * Takes over {@code tiers} (closed with this); call {@link #build} before any other call.
     * With several devices, enables peer access between every two of them.
     */
    public HbmShards(int dim, HbmTier[] tiers) {
        if (tiers.length < 1 || tiers.length > ShardedGpuTable.MAX_SHARDS) {
            throw new IllegalArgumentException("an HBM tier has 1 to " + ShardedGpuTable.MAX_SHARDS + " shards, was "
                    + tiers.length);
        }
        this.dim = dim;
        this.tiers = tiers.clone();
        this.stacks = new Stack[tiers.length];
        for (HbmTier t : tiers) {
            owned.add(t);
        }
        if (tiers.length == 1) {
            workers = null;
            return;
        }
        AtomicInteger threadNo = new AtomicInteger();
        workers = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "mlkv-hbm-shard-" + threadNo.getAndIncrement());
            t.setDaemon(true);
            return t;
        });
        Map<Integer, CudaDevice> devices = new LinkedHashMap<>();
        for (HbmTier t : tiers) {
            devices.putIfAbsent(t.deviceOrdinal(), t.table().device());
        }
        OwnedResources opened = new OwnedResources();
        try {
            CudaDevice.enablePeerAccessAmong(devices.values());
            for (Map.Entry<Integer, CudaDevice> d : devices.entrySet()) {
                homes.put(d.getKey(), opened.add(new Home(d.getValue())));
            }
        } catch (RuntimeException e) {
            // The tiers stay the caller's to close when this constructor fails.
            workers.shutdownNow();
            try {
                opened.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        owned.add(workers::shutdownNow);
        owned.add(opened);
    }

    /**
     * Builds each shard's migration, device writes and combined calls (closed with this); parts of
     * a call that run on other threads join the caller's operation in {@code lifecycle}.
     */
    public void build(Lifecycle lifecycle, Function<HbmTier, Stack> stack) {
        this.lifecycle = lifecycle;
        for (int s = 0; s < tiers.length; s++) {
            stacks[s] = stack.apply(tiers[s]);
            owned.add(stacks[s].combined());
        }
    }

    /** The entries each shard holds (for tests and benchmarks). */
    public long[] entriesPerShard() {
        long[] n = new long[tiers.length];
        for (int s = 0; s < tiers.length; s++) {
            n[s] = tiers[s].counters().entries();
        }
        return n;
    }

    /** Whether writes of keys HBM holds stay there (the same for every shard). */
    public boolean writeBack() {
        return tiers[0].writeBack();
    }

    /** Maps the DRAM tier for GPU reads: once per process, shared by the shards on the first shard's device. */
    public void mapDram(DramTier dram) {
        tiers[0].mapDram(dram);
        for (int s = 1; s < tiers.length; s++) {
            tiers[s].mapDram(dram, tiers[0]);
        }
    }

    /** Frequency admission in every shard. */
    public void admitByFrequency() {
        for (HbmTier t : tiers) {
            t.admitByFrequency();
        }
    }

    /** Makes the first shard's CUDA context current on the calling thread. */
    public void makeCurrent() {
        tiers[0].makeCurrent();
    }

    /**
     * Makes CUDA device {@code ordinal}'s context current on the calling thread.
     *
     * @throws IllegalArgumentException if no shard lives on that device
     */
    public void makeCurrent(int ordinal) {
        for (HbmTier t : tiers) {
            if (t.deviceOrdinal() == ordinal) {
                t.makeCurrent();
                return;
            }
        }
        throw new IllegalArgumentException("no HBM shard of this store lives on CUDA device " + ordinal
                + "; its devices are " + devices());
    }

    /** The CUDA device of each shard, in shard order. */
    public List<Integer> devices() {
        List<Integer> d = new ArrayList<>();
        for (HbmTier t : tiers) {
            d.add(t.deviceOrdinal());
        }
        return d;
    }

    // ------------------------------------------------------------------ host arrays

    /** Reads through the tiers, HBM first ({@link HbmMigration#read}); returns the number found. */
    public int read(long[] keys, float[] out, boolean[] found) {
        if (stacks.length == 1) {
            return stacks[0].migration().read(keys, out, found);
        }
        OwnerSplit split = new OwnerSplit(keys, keys.length, tiers.length, dim);
        List<Future<Integer>> parts = new ArrayList<>();
        for (int s = 0; s < stacks.length; s++) {
            if (split.size(s) == 0) {
                continue;
            }
            int shard = s;
            parts.add(workers.submit(() -> {
                lifecycle.enterFor();
                try {
                    long[] k = split.keys(shard);
                    float[] o = new float[k.length * dim];
                    boolean[] f = new boolean[k.length];
                    int n = stacks[shard].migration().read(k, o, f);
                    split.scatterFound(shard, o, f, out, found);
                    return n;
                } finally {
                    lifecycle.exit();
                }
            }));
        }
        int n = 0;
        for (Future<Integer> f : ShardParts.awaitAll("multiGet", parts)) {
            n += ShardParts.done(f);
        }
        return n;
    }

    /** Promotes keys into HBM ({@link HbmMigration#prefetch}); returns how many were promoted. */
    public int prefetch(long[] keys) {
        if (stacks.length == 1) {
            return stacks[0].migration().prefetch(keys);
        }
        OwnerSplit split = new OwnerSplit(keys, keys.length, tiers.length, dim);
        int n = 0;
        for (int s = 0; s < stacks.length; s++) {
            if (split.size(s) > 0) {
                n += stacks[s].migration().prefetch(split.keys(s));
            }
        }
        return n;
    }

    /** Writes every dirty entry of every shard below. Caller holds the mutation lock. */
    public void writeDirty() {
        for (Stack s : stacks) {
            s.migration().writeDirty();
        }
    }

    /** Drops the copies of {@code keys}. Caller holds the mutation lock. */
    public void erase(long[] keys) {
        if (tiers.length == 1) {
            tiers[0].erase(keys);
            return;
        }
        OwnerSplit split = new OwnerSplit(keys, keys.length, tiers.length, dim);
        for (int s = 0; s < tiers.length; s++) {
            if (split.size(s) > 0) {
                tiers[s].erase(split.keys(s));
            }
        }
    }

    /** {@link HbmTier#update} of rows {@code [0, count)}, each in its owner. Caller holds the mutation lock. */
    public void update(long[] keys, float[] values, int count) {
        if (tiers.length == 1) {
            tiers[0].update(keys, values, count);
            return;
        }
        OwnerSplit split = new OwnerSplit(keys, count, tiers.length, dim);
        for (int s = 0; s < tiers.length; s++) {
            if (split.size(s) > 0) {
                tiers[s].update(split.keys(s), split.rows(s, values), split.size(s));
            }
        }
    }

    /** {@link HbmTier#writeHeld} of rows {@code [0, count)}, each in its owner. Caller holds the mutation lock. */
    public void writeHeld(long[] keys, float[] values, int count, boolean[] held) {
        if (tiers.length == 1) {
            tiers[0].writeHeld(keys, values, count, held);
            return;
        }
        OwnerSplit split = new OwnerSplit(keys, count, tiers.length, dim);
        for (int s = 0; s < tiers.length; s++) {
            if (split.size(s) > 0) {
                boolean[] h = new boolean[split.size(s)];
                tiers[s].writeHeld(split.keys(s), split.rows(s, values), split.size(s), h);
                split.scatterFlags(s, h, held);
            }
        }
    }

    /** {@link HbmTier#peek}, each key in its owner; returns the number found. Caller holds the mutation lock. */
    public int peek(long[] keys, float[] out, boolean[] found) {
        if (tiers.length == 1) {
            return tiers[0].peek(keys, out, found);
        }
        OwnerSplit split = new OwnerSplit(keys, keys.length, tiers.length, dim);
        int n = 0;
        for (int s = 0; s < tiers.length; s++) {
            if (split.size(s) > 0) {
                float[] o = new float[split.size(s) * dim];
                boolean[] f = new boolean[split.size(s)];
                n += tiers[s].peek(split.keys(s), o, f);
                split.scatterFound(s, o, f, out, found);
            }
        }
        return n;
    }

    // ------------------------------------------------------------------ device pointers

    /** The home shard's {@link DeviceWrites#checkReserved}: refuses a reserved key before anything is written. */
    public void checkReserved(String op, CUdeviceptr keys, long n) {
        stacks[homeShard(op, keys)].writes().checkReserved(op, keys, n);
    }

    /** Whether {@link #writeClean} takes a batch of {@code n} keys (with several shards it goes in parts of at most 2^20). */
    public boolean takesClean(long n) {
        return stacks[0].writes().takesClean(stacks.length == 1 ? n : Math.min(n, MAX_PART));
    }

    /** {@code n} keys of the call's device, copied to the host. */
    public long[] keysToHost(CUdeviceptr keys, long n) {
        return tiers[homeShard("keysToHost", keys)].keysToHost(keys, n);
    }

    /** Rows {@code rows} of {@code values} on the same device as {@code keys}, copied to the host. */
    public float[] rowsToHost(CUdeviceptr keys, CUdeviceptr values, long n, int[] rows) {
        return tiers[homeShard("rowsToHost", keys)].rowsToHost(values, n, rows);
    }

    /** {@link CombinedDeviceCalls#multiGet}, each key in its owner. */
    public long multiGet(CUdeviceptr keys, long n, CUdeviceptr out, CUdeviceptr found) {
        if (stacks.length == 1) {
            return stacks[0].combined().multiGet(keys, n, out, found);
        }
        return route("multiGet", keys, null, n, out, found,
                (st, k, rows, c, f) -> st.combined().multiGet(k, c, rows, f));
    }

    /** {@link CombinedDeviceCalls#multiPut}, each key in its owner. */
    public void multiPut(CUdeviceptr keys, long n, CUdeviceptr values) {
        if (stacks.length == 1) {
            stacks[0].combined().multiPut(keys, n, values);
            return;
        }
        route("multiPut", keys, values, n, null, null, (st, k, rows, c, f) -> {
            st.combined().multiPut(k, c, rows);
            return 0;
        });
    }

    /** {@link CombinedDeviceCalls#accumulate}, each key in its owner. */
    public void accumulate(CUdeviceptr keys, long n, CUdeviceptr deltas) {
        if (stacks.length == 1) {
            stacks[0].combined().accumulate(keys, n, deltas);
            return;
        }
        route("accumulate", keys, deltas, n, null, null, (st, k, rows, c, f) -> {
            st.combined().accumulate(k, c, rows);
            return 0;
        });
    }

    /** {@link DeviceWrites#writeClean}, each key in its owner; {@code rest} gets each shard's keys it does not hold. */
    public void writeClean(DeviceWrites.Kind kind, CUdeviceptr keys, long n, CUdeviceptr rows, DeviceWrites.HostWrite rest) {
        if (stacks.length == 1) {
            stacks[0].writes().writeClean(kind, keys, n, rows, rest);
            return;
        }
        route("write", keys, rows, n, null, null, (st, k, r, c, f) -> {
            st.writes().writeClean(kind, k, c, r, rest);
            return 0;
        });
    }

    /** One shard's part of a device call: keys, rows (a write's input or a read's output) and found flags on its device. */
    private interface PartCall {
        long run(Stack shard, CUdeviceptr keys, CUdeviceptr rows, int n, CUdeviceptr found);
    }

    private long route(String op, CUdeviceptr keys, CUdeviceptr rowsIn, long n, CUdeviceptr out, CUdeviceptr found,
            PartCall call) {
        Home home = homes.get(tiers[homeShard(op, keys)].deviceOrdinal());
        long total = 0;
        for (long off = 0; off < n; off += MAX_PART) {
            int c = (int) Math.min(MAX_PART, n - off);
            CUdeviceptr k = keys.withByteOffset(off * Long.BYTES);
            CUdeviceptr r = rowsIn == null ? null : rowsIn.withByteOffset(off * dim * Float.BYTES);
            CUdeviceptr o = out == null ? null : out.withByteOffset(off * dim * Float.BYTES);
            CUdeviceptr f = found == null ? null : found.withByteOffset(off);
            total += home.routePart(op, k, r, c, o, f, call);
        }
        return total;
    }

    /** The first shard on the device that holds {@code keys} (asked of CUDA only where the shards use several devices). */
    private int homeShard(String op, CUdeviceptr keys) {
        if (homes.size() <= 1) {
            return 0;
        }
        int[] ordinal = new int[1];
        Cuda.check(cuPointerGetAttribute(Pointer.to(ordinal), CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, keys),
                "cuPointerGetAttribute (device of " + op + "'s keys)");
        for (int s = 0; s < tiers.length; s++) {
            if (tiers[s].deviceOrdinal() == ordinal[0]) {
                return s;
            }
        }
        throw new IllegalArgumentException(op + ": the batch is on CUDA device " + ordinal[0]
                + ", which holds no HBM shard of this store; its devices are " + homes.keySet());
    }

    /** A device that is the home of device calls: its partition kernels and a pool of partition buffers. */
    private final class Home implements AutoCloseable {
        final CudaDevice device;
        final Kernels kernels;
        final ConcurrentLinkedQueue<BatchPartition> idle = new ConcurrentLinkedQueue<>();
        final List<BatchPartition> all = new ArrayList<>();
        /** Per shard, buffers on its device for the parts this home sends there (null where none are copied). */
        final List<ConcurrentLinkedQueue<PeerBuffers>> idleParts = new ArrayList<>();
        final List<PeerBuffers> allParts = new ArrayList<>();

        Home(CudaDevice device) {
            this.device = device;
            device.makeCurrent();
            this.kernels = Kernels.load();
            for (int s = 0; s < tiers.length; s++) {
                idleParts.add(new ConcurrentLinkedQueue<>());
            }
        }

        long routePart(String op, CUdeviceptr keys, CUdeviceptr rowsIn, int n, CUdeviceptr out, CUdeviceptr found,
                PartCall call) {
            long t0 = System.nanoTime();
            BatchPartition p = acquire(n);
            try {
                device.makeCurrent();
                // A read's output rows go with their keys, so rows of keys not found come back as they were.
                int[] start = p.partition(keys, out != null ? out : rowsIn, n).clone();
                long t1 = System.nanoTime();
                List<Future<Long>> parts = new ArrayList<>();
                List<FutureTask<Long>> here = new ArrayList<>();
                for (int s = 0; s < tiers.length; s++) {
                    int first = start[s];
                    int count = start[s + 1] - first;
                    if (count == 0) {
                        continue;
                    }
                    int shard = s;
                    FutureTask<Long> task = new FutureTask<>(() -> {
                        lifecycle.enterFor();
                        try {
                            return runShard(p, shard, first, count, out != null || found != null, call);
                        } finally {
                            lifecycle.exit();
                        }
                    });
                    parts.add(task);
                    if (isLocal(shard)) {
                        here.add(task);
                    } else {
                        workers.execute(task);
                    }
                }
                // Parts for shards on this device run one after another on the caller's thread: one GPU
                // gains nothing from running them at once, and they would contend for the store's lock.
                here.forEach(FutureTask::run);
                long total = 0;
                for (Future<Long> f : ShardParts.awaitAll(op, parts)) {
                    total += ShardParts.done(f);
                }
                long t2 = System.nanoTime();
                device.makeCurrent();
                if (out != null) {
                    p.scatterRows(n, out);
                }
                if (found != null) {
                    p.restoreFlags(n, found);
                }
                long t3 = System.nanoTime();
                routedParts.increment();
                routeNanos.add(t3 - t0);
                partitionNanos.add((t1 - t0) + (t3 - t2));
                return total;
            } finally {
                idle.add(p);
            }
        }

        /** Whether shard {@code s}'s parts are worked on in place, in this home's buffers. */
        private boolean isLocal(int s) {
            return tiers[s].deviceOrdinal() == device.ordinal() && !copyLocalParts;
        }

        /** Shard {@code s}'s part [first, first + n) of {@code p}; {@code back}: rows and flags come back. */
        private long runShard(BatchPartition p, int s, int first, int n, boolean back, PartCall call) {
            HbmTier tier = tiers[s];
            if (isLocal(s)) {
                tier.makeCurrent();
                return call.run(stacks[s], p.keys(first), p.rows(first), n, p.found(first));
            }
            PeerBuffers b = acquirePart(s, n);
            try {
                CudaDevice owner = tier.table().device();
                long t0 = System.nanoTime();
                tier.makeCurrent();
                b.copy(b.keys(), owner, p.keys(first), device, (long) n * Long.BYTES, "keys");
                b.copy(b.rows(), owner, p.rows(first), device, (long) n * dim * Float.BYTES, "rows");
                b.sync("to");
                long t1 = System.nanoTime();
                long r = call.run(stacks[s], b.keys(), b.rows(), n, b.found());
                long t2 = System.nanoTime();
                if (back) {
                    tier.makeCurrent();
                    b.copy(p.rows(first), device, b.rows(), owner, (long) n * dim * Float.BYTES, "rows");
                    b.copy(p.found(first), device, b.found(), owner, n, "found flags");
                    b.sync("from");
                }
                copyNanos.add((t1 - t0) + (System.nanoTime() - t2));
                return r;
            } finally {
                idleParts.get(s).add(b);
            }
        }

        /** An idle partition set that holds {@code n} keys, or a new one. */
        private BatchPartition acquire(int n) {
            for (BatchPartition p : idle) {
                if (p.capacity() >= n && idle.remove(p)) {
                    return p;
                }
            }
            device.makeCurrent();
            BatchPartition p = new BatchPartition(kernels, tiers.length, dim, capacityFor(n));
            synchronized (all) {
                all.add(p);
            }
            return p;
        }

        private PeerBuffers acquirePart(int s, int n) {
            for (PeerBuffers b : idleParts.get(s)) {
                if (b.capacity() >= n && idleParts.get(s).remove(b)) {
                    return b;
                }
            }
            PeerBuffers b = new PeerBuffers(tiers[s].table().device(), capacityFor(n), dim);
            synchronized (allParts) {
                allParts.add(b);
            }
            return b;
        }

        @Override
        public void close() {
            // Buffers on other devices first (each makes its own device current), then this device's.
            OwnedResources onOthers = new OwnedResources();
            synchronized (allParts) {
                allParts.forEach(onOthers::add);
            }
            OwnedResources here = new OwnedResources();
            here.add(kernels);
            synchronized (all) {
                all.forEach(here::add);
            }
            try {
                onOthers.close();
            } finally {
                device.makeCurrent();
                here.close();
            }
        }
    }

    /** At least 64K keys, a power of two: concurrent calls of similar sizes reuse each other's buffers. */
    private static int capacityFor(int n) {
        return Math.max(1 << 16, Integer.highestOneBit(Math.max(1, n - 1)) << 1);
    }

    // ------------------------------------------------------------------ checkpoints

    /**
     * Writes every shard's entries into {@code dir/hbm}: the one shard's there, several to
     * {@code hbm/shard-s} each and then their count to {@code hbm/shards.properties}. Caller holds
     * the mutation lock.
     *
     * @return the path that moved the data ({@code cufile} or {@code posix})
     */
    public String checkpoint(Path dir, FileIo io) throws IOException {
        Path hbm = dir.resolve(HbmTier.CHECKPOINT_DIR);
        String path = null;
        for (int s = 0; s < tiers.length; s++) {
            path = tiers[s].checkpoint(shardDir(hbm, s), io);
        }
        if (tiers.length > 1) {
            Files.writeString(hbm.resolve(SHARDS_FILE), "shards=" + tiers.length + "\n");
        }
        return path;
    }

    /**
     * Loads what {@link #checkpoint} wrote into {@code dir/hbm}.
     *
     * @return entries loaded
     * @throws MlkvException {@code INCOMPATIBLE_FORMAT} naming both counts if the checkpoint has another
     *     number of shards (nothing is loaded)
     */
    public long warm(Path dir, FileIo io) throws IOException {
        Path hbm = dir.resolve(HbmTier.CHECKPOINT_DIR);
        int saved = savedShards(hbm);
        if (saved != tiers.length) {
            throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, "warm the HBM tier from " + hbm,
                    "the checkpoint's HBM tier has " + saved + " shard(s) and this store " + tiers.length
                            + "; open it with " + saved + " HBM device(s) to start warm (every entry is in RocksDB either way)");
        }
        long n = 0;
        for (int s = 0; s < tiers.length; s++) {
            n += tiers[s].warm(shardDir(hbm, s), io);
        }
        return n;
    }

    /** Where shard {@code s} of a checkpoint's {@code hbm} lies: {@code hbm} itself for the one shard of a store. */
    private Path shardDir(Path hbm, int s) {
        return tiers.length == 1 ? hbm : hbm.resolve("shard-" + s);
    }

    private static int savedShards(Path hbm) throws IOException {
        Path file = hbm.resolve(SHARDS_FILE);
        if (!Files.isRegularFile(file)) {
            return 1;
        }
        Properties props = new Properties();
        try (Reader r = Files.newBufferedReader(file)) {
            props.load(r);
        }
        try {
            return Integer.parseInt(props.getProperty("shards", "").trim());
        } catch (NumberFormatException e) {
            throw new MlkvException(StatusCode.CORRUPTION, "read " + file, "no shard count in it");
        }
    }

    // ------------------------------------------------------------------ counters

    /** The shards' counters, summed. */
    public HbmTier.Counters counters() {
        long[] sum = sums(tiers, t -> {
            HbmTier.Counters c = t.counters();
            return new long[] {c.hits(), c.misses(), c.installs(), c.evictions(), c.writeBacks(), c.entries(), c.capacity(),
                c.lookupNanos(), c.installNanos()};
        });
        return new HbmTier.Counters(sum[0], sum[1], sum[2], sum[3], sum[4], sum[5], sum[6], sum[7], sum[8]);
    }

    public long dramProbeNanos() {
        return sum(tiers, HbmTier::dramProbeNanos);
    }

    public long dramWriteNanos() {
        return sum(tiers, HbmTier::dramWriteNanos);
    }

    public long spillAppendNanos() {
        return sum(tiers, HbmTier::spillAppendNanos);
    }

    public long admissionRejections() {
        return sum(tiers, HbmTier::admissionRejections);
    }

    public long[] deferredInstalls() {
        return sums(tiers, HbmTier::deferredInstalls);
    }

    public long spillReadsOnGpu() {
        return sum(stacks, s -> s.migration().spillReadsOnGpu());
    }

    public long dramReadsOnGpu() {
        return sum(stacks, s -> s.migration().dramReadsOnGpu());
    }

    private static <T> long sum(T[] shards, ToLongFunction<T> counter) {
        long n = 0;
        for (T t : shards) {
            n += counter.applyAsLong(t);
        }
        return n;
    }

    /** Element-wise sums of the shards' arrays of counters (all of one length). */
    private static <T> long[] sums(T[] shards, Function<T, long[]> counters) {
        long[] sum = null;
        for (T t : shards) {
            long[] c = counters.apply(t);
            if (sum == null) {
                sum = new long[c.length];
            }
            for (int i = 0; i < c.length; i++) {
                sum[i] += c[i];
            }
        }
        return sum;
    }

    /** Why the DRAM tier is not mapped for some shard's reads, or null where every shard reads it on the GPU. */
    public String dramMapFailure() {
        for (HbmTier t : tiers) {
            if (t.dramMapFailure() != null) {
                return t.dramMapFailure();
            }
        }
        return null;
    }

    /**
     * Device calls split over several shards: parts routed (a batch above 2^20 keys counts once per
     * 2^20), their wall time from partition to reorder, of it the partition and reorder kernels on the
     * home device, and the peer copies to and from other devices (summed over parts, which copy at
     * the same time). All zero with one shard.
     */
    public long[] routeTimings() {
        return new long[] {routedParts.sum(), routeNanos.sum(), partitionNanos.sum(), copyNanos.sum()};
    }

    /** {@link CombinedDeviceCalls#counts}, summed over shards. */
    public long[] combinedCounts() {
        return sums(stacks, s -> s.combined().counts());
    }

    /** Closes the combined calls, the homes' buffers and then the tiers; the store calls it with no call in flight. */
    @Override
    public void close() {
        owned.close();
    }
}
