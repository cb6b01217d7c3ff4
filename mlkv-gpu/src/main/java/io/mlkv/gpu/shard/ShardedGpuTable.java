package io.mlkv.gpu.shard;


import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.gpu.cuda.OwnedResources;
import io.mlkv.gpu.cufile.DeviceFileIo;
import io.mlkv.gpu.table.GpuHashTable;
import io.mlkv.gpu.table.ScoreMode;
import io.mlkv.gpu.table.TableSnapshot;
import io.mlkv.storage.BatchChecks;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.ReservedKeys;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorVisitor;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.FutureTask;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.LongSupplier;
import jcuda.driver.CUdeviceptr;

/**
 * One key-to-vector table over several GPU hash tables ("shards"), each on a CUDA device of this
 * process; several shards may share a device. Every key has one owner shard, {@link #ownerOf}: the
 * high 32 bits of a second hash of the key (the key XOR {@code 0x9E3779B97F4A7C15}, then the
 * table's 64-bit finaliser), scaled to the shard count. It is neither {@code key % N}, which
 * sequential ids would fill in turn, nor the bits the shards' own buckets and digests use, so each
 * shard's keys spread over all of its buckets. The capacity is the sum of the shards'.
 *
 * <p><b>Device-pointer calls</b> ({@link #find}, {@link #insertOrAssign}, {@link #assign},
 * {@link #accumOrAssign}) take a batch on any of the table's devices, the <em>home</em> device of
 * that call. A kernel on the home device partitions the batch by owner, stably (the keys of one
 * shard keep their batch order, so a key repeated in a batch ends with its last occurrence's row,
 * as on one table), with each key's batch position; each shard's part (keys, positions, and the
 * rows of the writing calls, gathered into partition order) is copied to the shard's device
 * ({@code cuMemcpyPeerAsync}, over NVLink where present) unless it is already there, and the shards
 * work in parallel (one thread each; the last on the caller's thread). A {@link #find} writes each
 * row and flag straight into the caller's output at the key's batch position (across devices, by
 * peer writes); an {@link #assign}'s flags come back in partition order and one kernel puts them
 * in batch order. Peer access between every two devices is enabled when the table opens.
 *
 * <p><b>Host-array calls</b> ({@link VectorTier}) split the batch the same way on the CPU and run the
 * shards' host calls in parallel.
 *
 * <p>Thread-safe: calls whose batches live on different devices run at the same time; calls on one
 * home device are serialised (they share its partition buffers); each shard serialises the calls
 * that reach it; {@link #close()} waits for the calls in progress. Reserved keys ({@link ReservedKeys}) are refused by the host-array calls before
 * anything is written and ignored by the device calls, as by {@link GpuHashTable}.
 */
public final class ShardedGpuTable implements VectorTier {
    /** The most shards one table takes (the partition kernel keeps a counter per shard in shared memory). */
    public static final int MAX_SHARDS = 32;

    private static final String SNAPSHOT_PROPERTIES = "sharded.properties";

    private final int dim;
    private final GpuHashTable[] shards;
    private final Map<Integer, Home> homes = new LinkedHashMap<>();
    private final int maxBatch;
    private final ExecutorService workers;
    private final OwnedResources owned = new OwnedResources();
    private final AtomicBoolean closed = new AtomicBoolean();
    /** Held shared by every call, exclusively by close: buffers are freed only once no call uses them. */
    private final ReentrantReadWriteLock inUse = new ReentrantReadWriteLock();
    private final LongAdder calls = new LongAdder();
    private final LongAdder partitionNanos = new LongAdder();
    private final LongAdder shardNanos = new LongAdder();
    private final LongAdder copyNanos = new LongAdder();

    private ShardedGpuTable(Builder b) {
        this.dim = b.dim;
        this.maxBatch = b.maxBatch;
        this.shards = new GpuHashTable[b.devices.length];
        AtomicInteger threadNo = new AtomicInteger();
        this.workers = Executors.newFixedThreadPool(b.devices.length, r -> {
            Thread t = new Thread(r, "mlkv-shard-" + threadNo.getAndIncrement());
            t.setDaemon(true);
            return t;
        });
        try {
            for (int s = 0; s < shards.length; s++) {
                int ordinal = b.devices[s];
                try {
                    shards[s] = owned.add(GpuHashTable.create(dim, b.capacityPerShard, b.scoreMode, b.stagingKeys, ordinal));
                } catch (RuntimeException e) {
                    throw new IllegalStateException("shard " + s + ": CUDA device " + ordinal + " could not be opened: "
                            + e.getMessage(), e);
                }
            }
            // Each device once (several shards may share one), peer access before any part is copied.
            Map<Integer, CudaDevice> devices = new LinkedHashMap<>();
            for (GpuHashTable shard : shards) {
                devices.putIfAbsent(shard.deviceOrdinal(), shard.device());
            }
            CudaDevice.enablePeerAccessAmong(devices.values());
            for (Map.Entry<Integer, CudaDevice> d : devices.entrySet()) {
                homes.put(d.getKey(), owned.add(new Home(d.getValue(), b.copyLocalParts)));
            }
        } catch (RuntimeException e) {
            try {
                closeAll();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /** A builder for a table of {@code dim} floats per key. */
    public static Builder builder(int dim) {
        return new Builder(dim);
    }

    /**
     * The owner shard of {@code key} among {@code shards}: {@code (mix64(key ^ 0x9E3779B97F4A7C15) >>> 32)
     * * shards >>> 32}, where {@code mix64} is the table's 64-bit finaliser. The partition kernel
     * computes the same function.
     */
    public static int ownerOf(long key, int shards) {
        return (int) (((mix64(key ^ 0x9E3779B97F4A7C15L) >>> 32) * shards) >>> 32);
    }

    /** The table kernels' 64-bit finaliser ({@code mix64} in src-native): buckets take its low bits, digests its top byte. */
    static long mix64(long k) {
        k ^= k >>> 33;
        k *= 0xff51afd7ed558ccdL;
        k ^= k >>> 33;
        k *= 0xc4ceb9fe1a85ec53L;
        k ^= k >>> 33;
        return k;
    }

    @Override
    public int dim() {
        return dim;
    }

    /** The number of shards. */
    public int shardCount() {
        return shards.length;
    }

    /** Shard {@code s}'s table (its own calls bypass the partition: only for keys it owns). */
    public GpuHashTable shard(int s) {
        return shards[s];
    }

    /** The sum of the shards' capacities, in slots. */
    public long capacity() {
        long c = 0;
        for (GpuHashTable s : shards) {
            c += s.capacity();
        }
        return c;
    }

    /** Keys per partition of a device call; larger batches go in parts of this size. */
    public int maxBatch() {
        return maxBatch;
    }

    // ------------------------------------------------------------------ device-pointer API

    /**
     * Looks up {@code n} keys held on device {@code homeDevice}: each found key's value to row
     * {@code i} of {@code outValues} (rows of keys not found untouched) and 1/0 to byte {@code i}
     * of {@code found}, both on the home device.
     */
    public void find(int homeDevice, CUdeviceptr keysIn, long n, CUdeviceptr outValues, CUdeviceptr found) {
        if (outValues == null) {
            throw new IllegalArgumentException("find: outValues must not be null");
        }
        run("find", homeDevice, keysIn, null, n, outValues, found,
                (t, k, rows, at, c, permFound, out, f) -> t.findInto(k, c, at, out, f));
    }

    /** Inserts or overwrites {@code n} rows held on {@code homeDevice}; each shard drops what it evicts. */
    public void insertOrAssign(int homeDevice, CUdeviceptr keysIn, CUdeviceptr valuesIn, long n) {
        run("insertOrAssign", homeDevice, keysIn, valuesIn, n, null, null,
                (t, k, rows, at, c, permFound, out, f) -> t.insertOrAssign(k, rows, null, c));
    }

    /** Overwrites the keys present; 1/0 to byte {@code i} of {@code found} (may be null) on the home device. */
    public void assign(int homeDevice, CUdeviceptr keysIn, CUdeviceptr valuesIn, long n, CUdeviceptr found) {
        run("assign", homeDevice, keysIn, valuesIn, n, null, found,
                (t, k, rows, at, c, permFound, out, f) -> t.assign(k, rows, null, c, permFound));
    }

    /** Adds each row of {@code deltas} to its key's value; absent keys are inserted as their delta. */
    public void accumOrAssign(int homeDevice, CUdeviceptr keysIn, CUdeviceptr deltas, long n) {
        run("accumOrAssign", homeDevice, keysIn, deltas, n, null, null,
                (t, k, rows, at, c, permFound, out, f) -> t.accumOrAssign(k, rows, null, c));
    }

    /**
     * Writes every entry into {@code dir} (created): shard {@code s}'s entries as a {@link
     * TableSnapshot} in {@code shard-s/}, then {@code sharded.properties} (dim and shard count),
     * written last, so a directory without it is not a finished snapshot. The table must not change
     * meanwhile.
     *
     * @return entries written
     */
    public long writeSnapshot(Path dir, DeviceFileIo io) throws IOException {
        return whileOpenIo(() -> writeSnapshotOpen(dir, io));
    }

    private long writeSnapshotOpen(Path dir, DeviceFileIo io) throws IOException {
        Files.createDirectories(dir);
        long n = 0;
        for (int s = 0; s < shards.length; s++) {
            n += TableSnapshot.write(shards[s], dir.resolve("shard-" + s), io);
        }
        Files.writeString(dir.resolve(SNAPSHOT_PROPERTIES), "dim=" + dim + "\nshards=" + shards.length + "\nentries=" + n + "\n");
        return n;
    }

    /**
     * Inserts the entries of a snapshot that {@link #writeSnapshot} wrote. Saved with as many shards
     * as this table has, each shard loads its own directory; saved with another count, every saved
     * shard's entries go through this table's partition ({@link #insertOrAssign} from the first
     * shard's device), so the snapshot is re-sharded.
     *
     * @return entries loaded
     * @throws MlkvException {@code INCOMPATIBLE_FORMAT} naming both for another dim, or a directory that
     *     is not a finished snapshot of a sharded table
     */
    public long loadSnapshot(Path dir, DeviceFileIo io) throws IOException {
        return whileOpenIo(() -> loadSnapshotOpen(dir, io));
    }

    private long loadSnapshotOpen(Path dir, DeviceFileIo io) throws IOException {
        Path propsFile = dir.resolve(SNAPSHOT_PROPERTIES);
        if (!Files.isRegularFile(propsFile)) {
            throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, "load " + dir, "no " + SNAPSHOT_PROPERTIES
                    + ": not a finished snapshot of a sharded table");
        }
        Properties props = new Properties();
        try (Reader r = Files.newBufferedReader(propsFile)) {
            props.load(r);
        }
        int savedDim = Integer.parseInt(props.getProperty("dim", "-1"));
        int savedShards = Integer.parseInt(props.getProperty("shards", "-1"));
        if (savedDim != dim || savedShards < 1) {
            throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, "load " + dir, "a snapshot of dim " + savedDim
                    + " in " + savedShards + " shards; this table has dim " + dim);
        }
        long n = 0;
        if (savedShards == shards.length) {
            for (int s = 0; s < shards.length; s++) {
                n += TableSnapshot.load(shards[s], dir.resolve("shard-" + s), io);
            }
            return n;
        }
        int home = shards[0].deviceOrdinal();
        for (int s = 0; s < savedShards; s++) {
            makeDeviceCurrent(home);
            n += TableSnapshot.read(dir.resolve("shard-" + s), dim, io, (keys, values, count) ->
                    insertOrAssign(home, keys, values, count));
        }
        return n;
    }

    /**
     * Makes {@code device}'s context current on the calling thread, for callers that allocate or
     * copy the batches they pass.
     *
     * @throws IllegalArgumentException if no shard lives on that device
     */
    public void makeDeviceCurrent(int device) {
        home("makeDeviceCurrent", device).device.makeCurrent();
    }

    /**
     * Time spent so far by device calls, summed over calls: partitioning and restoring the batch
     * order on the home devices, the shards' parts from hand-off to return (copies included), and
     * of that the peer copies alone (summed over shards, which copy at the same time).
     */
    public Timings timings() {
        return new Timings(calls.sum(), partitionNanos.sum(), shardNanos.sum(), copyNanos.sum());
    }

    /**
     * Cumulative times of device calls; see {@link #timings()}.
     *
     * @param calls          device calls (each part of a batch above {@link #maxBatch()} counts)
     * @param partitionNanos the home device's partition, gather and reorder kernels
     * @param shardNanos     from handing the parts to the shards until the last returned
     * @param copyNanos      peer copies to and from the shards, summed over shards
     */
    public record Timings(long calls, long partitionNanos, long shardNanos, long copyNanos) {
    }

    /**
     * One shard's call on its part of a batch: its keys, rows (partitioned, or null) and their
     * batch positions, on the shard's device; the part's found flags in partition order on the
     * home device (copied back to the home's flags when the part was copied); and the caller's
     * outputs in batch order, which a find writes straight into at the positions.
     */
    private interface ShardCall {
        void apply(GpuHashTable table, CUdeviceptr keys, CUdeviceptr rows, CUdeviceptr positions, long n,
                CUdeviceptr permFound, CUdeviceptr out, CUdeviceptr found);
    }

    private void run(String op, int homeDevice, CUdeviceptr keysIn, CUdeviceptr rowsIn, long n, CUdeviceptr out,
            CUdeviceptr found, ShardCall call) {
        if (n < 0) {
            throw new IllegalArgumentException(op + ": n must not be negative, was " + n);
        }
        Home home = home(op, homeDevice);
        inUse.readLock().lock();
        home.lock.lock();
        try {
            checkOpen();
            for (long off = 0; off < n; off += maxBatch) {
                int c = (int) Math.min(maxBatch, n - off);
                runPart(op, home, keysIn.withByteOffset(off * Long.BYTES),
                        rowsIn == null ? null : rowsIn.withByteOffset(off * dim * Float.BYTES), c,
                        out == null ? null : out.withByteOffset(off * dim * Float.BYTES),
                        found == null ? null : found.withByteOffset(off), call);
            }
        } finally {
            home.lock.unlock();
            inUse.readLock().unlock();
        }
    }

    private void runPart(String op, Home home, CUdeviceptr keys, CUdeviceptr rows, int n, CUdeviceptr out,
            CUdeviceptr found, ShardCall call) {
        long t0 = System.nanoTime();
        home.device.makeCurrent();
        int[] start = home.partition(keys, rows, n);
        long t1 = System.nanoTime();
        // A find writes in batch order itself; another call's flags come back in partition order.
        boolean permutedFlags = out == null && found != null;
        List<Future<?>> parts = new ArrayList<>();
        int inline = -1;
        for (int s = 0; s < shards.length; s++) {
            if (start[s + 1] == start[s]) {
                continue;
            }
            if (inline >= 0) {
                int shard = inline;
                parts.add(workers.submit(() -> home.parts[shard].run(shards[shard], call, start[shard],
                        start[shard + 1] - start[shard], rows != null, permutedFlags, out, found)));
            }
            inline = s;  // the last shard with keys runs on the caller's thread
        }
        if (inline >= 0) {
            // Run here as a task, so that its failure is reported with the others' once all have ended.
            int shard = inline;
            FutureTask<Void> mine = new FutureTask<>(() -> home.parts[shard].run(shards[shard], call, start[shard],
                    start[shard + 1] - start[shard], rows != null, permutedFlags, out, found), null);
            mine.run();
            parts.add(mine);
        }
        ShardParts.awaitAll(op, parts);
        long t2 = System.nanoTime();
        if (permutedFlags) {
            home.device.makeCurrent();
            home.restoreFlags(n, found);
        }
        long t3 = System.nanoTime();
        calls.increment();
        partitionNanos.add((t1 - t0) + (t3 - t2));
        shardNanos.add(t2 - t1);
    }

    private Home home(String op, int device) {
        Home h = homes.get(device);
        if (h == null) {
            throw new IllegalArgumentException(op + ": no shard of this table lives on CUDA device " + device
                    + "; its devices are " + homes.keySet());
        }
        return h;
    }

    /** A call that may throw IOException. */
    private interface IoCall {
        long run() throws IOException;
    }

    /** Runs {@code call} holding {@link #inUse} shared, once the table is known open. */
    private long whileOpen(LongSupplier call) {
        inUse.readLock().lock();
        try {
            checkOpen();
            return call.getAsLong();
        } finally {
            inUse.readLock().unlock();
        }
    }

    private long whileOpenIo(IoCall call) throws IOException {
        inUse.readLock().lock();
        try {
            checkOpen();
            return call.run();
        } finally {
            inUse.readLock().unlock();
        }
    }

    private void checkOpen() {
        if (closed.get()) {
            throw new IllegalStateException("sharded GPU table is closed");
        }
    }

    /**
     * What a device holds to be the home of device calls: its partition kernels and buffers, and,
     * per shard, where that shard's part of a batch goes (on the shard's device).
     */
    private final class Home implements AutoCloseable {
        final CudaDevice device;
        final ReentrantLock lock = new ReentrantLock();
        final Kernels kernels;
        final BatchPartition partition;
        final Part[] parts;
        private final OwnedResources resources = new OwnedResources();
        /** Closed first: each part frees its buffers on its own device, then the home's on this one. */
        private final OwnedResources partResources = new OwnedResources();

        Home(CudaDevice device, boolean copyLocalParts) {
            this.device = device;
            device.makeCurrent();
            try {
                kernels = resources.add(Kernels.load());
                partition = resources.add(new BatchPartition(kernels, shards.length, dim, maxBatch));
                parts = new Part[shards.length];
                for (int s = 0; s < shards.length; s++) {
                    boolean remote = shards[s].deviceOrdinal() != device.ordinal() || copyLocalParts;
                    parts[s] = partResources.add(new Part(this, shards[s].device(), remote));
                }
                device.makeCurrent();
            } catch (RuntimeException e) {
                try {
                    close();
                } catch (RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw e;
            }
        }

        /**
         * Partitions {@code n} keys (and their rows, when given) by owner; returns where each
         * shard's part starts (and n).
         */
        int[] partition(CUdeviceptr keys, CUdeviceptr rows, int n) {
            return partition.partition(keys, rows, n);
        }

        /** Puts the shards' found flags, in partition order, back in batch order. */
        void restoreFlags(int n, CUdeviceptr found) {
            partition.restoreFlags(n, found);
        }

        @Override
        public void close() {
            try {
                partResources.close();
            } finally {
                device.makeCurrent();
                resources.close();
            }
        }
    }

    /** Where one shard's part of a home's batch goes: the home's buffers, or copies on the shard's device. */
    private final class Part implements AutoCloseable {
        final Home home;
        final CudaDevice device;
        /** Null where the part is worked on in the home's buffers. */
        final PeerBuffers peer;

        Part(Home home, CudaDevice device, boolean remote) {
            this.home = home;
            this.device = device;
            this.peer = remote ? new PeerBuffers(device, maxBatch, dim) : null;
        }

        /**
         * The shard's call on its part [first, first + n) of the home's partitioned batch; with
         * {@code flagsBack}, the part's found flags end in the home's permFound.
         */
        void run(GpuHashTable table, ShardCall call, int first, int n, boolean rowsIn, boolean flagsBack,
                CUdeviceptr out, CUdeviceptr found) {
            CUdeviceptr homeKeys = home.partition.keys(first);
            CUdeviceptr homePositions = home.partition.positions(first);
            CUdeviceptr homeRows = home.partition.rows(first);
            CUdeviceptr homeFound = home.partition.found(first);
            if (peer == null) {
                call.apply(table, homeKeys, rowsIn ? homeRows : null, homePositions, n, homeFound, out, found);
                return;
            }
            long t0 = System.nanoTime();
            device.makeCurrent();
            peer.copy(peer.keys(), device, homeKeys, home.device, (long) n * Long.BYTES, "keys");
            peer.copy(peer.positions(), device, homePositions, home.device, (long) n * Integer.BYTES, "positions");
            if (rowsIn) {
                peer.copy(peer.rows(), device, homeRows, home.device, (long) n * dim * Float.BYTES, "rows");
            }
            peer.sync("to");
            long t1 = System.nanoTime();
            call.apply(table, peer.keys(), rowsIn ? peer.rows() : null, peer.positions(), n, peer.found(), out, found);
            long t2 = System.nanoTime();
            if (flagsBack) {
                device.makeCurrent();
                peer.copy(homeFound, home.device, peer.found(), device, n, "found flags");
                peer.sync("from");
            }
            copyNanos.add((t1 - t0) + (System.nanoTime() - t2));
        }

        @Override
        public void close() {
            if (peer != null) {
                peer.close();
            }
        }
    }

    // ------------------------------------------------------------------ host-array API

    private interface HostCall {
        int apply(int shard, OwnerSplit split);
    }

    /** Runs {@code call} for every shard with keys in the batch, in parallel; returns the sum. */
    private int onShards(String op, long[] keys, HostCall call) {
        return (int) whileOpen(() -> onOpenShards(op, new OwnerSplit(keys, keys.length, shards.length, dim), call));
    }

    private int onOpenShards(String op, OwnerSplit split, HostCall call) {
        List<Future<Integer>> parts = new ArrayList<>();
        for (int s = 0; s < shards.length; s++) {
            if (split.size(s) == 0) {
                continue;
            }
            int shard = s;
            parts.add(workers.submit(() -> call.apply(shard, split)));
        }
        int total = 0;
        for (Future<Integer> f : ShardParts.awaitAll(op, parts)) {
            total += ShardParts.done(f);
        }
        return total;
    }

    @Override
    public int multiGet(long[] keys, float[] out, boolean[] found) {
        BatchChecks.checkOutputRows("multiGet", keys, out, dim);
        BatchChecks.checkFlags("multiGet", "found", keys, found);
        ReservedKeys.check("multiGet", keys);
        return onShards("multiGet", keys, (s, split) -> {
            float[] rows = new float[split.size(s) * dim];
            boolean[] hit = new boolean[split.size(s)];
            int n = shards[s].find(split.keys(s), rows, hit);
            split.scatterFound(s, rows, hit, out, found);
            return n;
        });
    }

    @Override
    public void multiPut(long[] keys, float[] values) {
        BatchChecks.checkRows("multiPut", keys, values, dim);
        ReservedKeys.check("multiPut", keys);
        onShards("multiPut", keys, (s, split) -> {
            shards[s].insertOrAssign(split.keys(s), split.rows(s, values), null);
            return 0;
        });
    }

    @Override
    public void multiDelete(long[] keys) {
        BatchChecks.checkKeys("multiDelete", keys);
        ReservedKeys.check("multiDelete", keys);
        onShards("multiDelete", keys, (s, split) -> {
            shards[s].erase(split.keys(s));
            return 0;
        });
    }

    @Override
    public int contains(long[] keys, boolean[] out) {
        BatchChecks.checkFlags("contains", "out", keys, out);
        ReservedKeys.check("contains", keys);
        return onShards("contains", keys, (s, split) -> {
            boolean[] hit = new boolean[split.size(s)];
            int n = shards[s].containsKeys(split.keys(s), hit);
            split.scatterFlags(s, hit, out);
            return n;
        });
    }

    @Override
    public long size() {
        return whileOpen(() -> {
            long n = 0;
            for (GpuHashTable s : shards) {
                n += s.size();
            }
            return n;
        });
    }

    /** Visits each shard in turn, as {@link GpuHashTable#forEach} does: not a point-in-time view. */
    @Override
    public void forEach(VectorVisitor visitor) {
        whileOpen(() -> {
            for (GpuHashTable s : shards) {
                s.forEach(visitor);
            }
            return 0;
        });
    }

    /**
     * Waits for the calls in progress, stops the shard threads, then frees every home's buffers and
     * every shard, in reverse order of opening. Calls made after it fail with {@link IllegalStateException}.
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            inUse.writeLock().lock();
            try {
                closeAll();
            } finally {
                inUse.writeLock().unlock();
            }
        }
    }

    private void closeAll() {
        workers.shutdownNow();
        owned.close();
    }

    @Override
    public String toString() {
        int[] ordinals = new int[shards.length];
        for (int s = 0; s < shards.length; s++) {
            ordinals[s] = shards[s] == null ? -1 : shards[s].deviceOrdinal();
        }
        return "ShardedGpuTable[dim=" + dim + ", shards on devices " + Arrays.toString(ordinals) + "]";
    }

    /** Settings of a {@link ShardedGpuTable}; each setter checks its argument at once. */
    public static final class Builder {
        private final int dim;
        private int[] devices = {0};
        private long capacityPerShard = 1L << 20;
        private ScoreMode scoreMode = ScoreMode.LRU;
        private int stagingKeys = 1 << 18;
        private int maxBatch = 1 << 20;
        private boolean copyLocalParts;

        private Builder(int dim) {
            if (dim < 1 || dim > 65536) {
                throw new IllegalArgumentException("dim must be between 1 and 65536, was " + dim);
            }
            this.dim = dim;
        }

        /**
         * The CUDA device of each shard, one entry per shard (default {@code {0}}: one shard on
         * device 0). An ordinal may repeat: several shards on one device.
         */
        public Builder devices(int... ordinals) {
            if (ordinals == null || ordinals.length == 0 || ordinals.length > MAX_SHARDS) {
                throw new IllegalArgumentException("devices: give 1 to " + MAX_SHARDS + " device ordinals, one per shard, was "
                        + (ordinals == null ? "null" : Arrays.toString(ordinals)));
            }
            for (int o : ordinals) {
                if (o < 0) {
                    throw new IllegalArgumentException("devices: ordinals must not be negative, was " + Arrays.toString(ordinals));
                }
            }
            this.devices = ordinals.clone();
            return this;
        }

        /** Slots per shard (each rounded up as {@link GpuHashTable#create} rounds), default 2^20. */
        public Builder capacityPerShard(long slots) {
            if (slots < 1 || slots > (1L << 40)) {
                throw new IllegalArgumentException("capacityPerShard must be between 1 and 2^40 slots, was " + slots);
            }
            this.capacityPerShard = slots;
            return this;
        }

        /** How each shard scores entries for eviction, default LRU. */
        public Builder scoreMode(ScoreMode mode) {
            if (mode == null) {
                throw new IllegalArgumentException("scoreMode must not be null");
            }
            if (mode == ScoreMode.CUSTOM) {
                throw new IllegalArgumentException("scoreMode CUSTOM is not offered by the sharded table yet (its calls take no scores)");
            }
            this.scoreMode = mode;
            return this;
        }

        /** Keys per staging chunk of each shard's host-array calls, default 2^18. */
        public Builder stagingKeys(int keys) {
            if (keys < 1) {
                throw new IllegalArgumentException("stagingKeys must be positive, was " + keys);
            }
            this.stagingKeys = keys;
            return this;
        }

        /**
         * Keys per partition of a device call, default 2^20; larger batches go in parts. Each
         * device holding a shard keeps buffers for this many keys and rows, and so does each
         * device for every other device's shards.
         */
        public Builder maxBatch(int keys) {
            if (keys < 1) {
                throw new IllegalArgumentException("maxBatch must be positive, was " + keys);
            }
            this.maxBatch = keys;
            return this;
        }

        /**
         * Whether a shard on the home device of a call still gets its part as a copy, as a
         * shard on another device does (default false: it works on the home's buffers). For
         * tests and measurements of the exchange with several shards on one GPU.
         */
        public Builder copyLocalParts(boolean copy) {
            this.copyLocalParts = copy;
            return this;
        }

        /**
         * Opens the shards' devices, their tables, peer access between every two devices and the
         * partition buffers.
         *
         * @throws IllegalStateException naming the shard and ordinal of a device that cannot be
         *     opened, or two devices that cannot reach each other
         */
        public ShardedGpuTable build() {
            return new ShardedGpuTable(this);
        }
    }
}
