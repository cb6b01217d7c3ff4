package io.mlkv.storage.rocksdb;

import io.mlkv.storage.BatchChecks;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorVisitor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.rocksdb.BlockBasedTableConfig;
import org.rocksdb.BloomFilter;
import org.rocksdb.ByteBufferGetStatus;
import org.rocksdb.Cache;
import org.rocksdb.Checkpoint;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.CompressionType;
import org.rocksdb.DBOptions;
import org.rocksdb.Env;
import org.rocksdb.HyperClockCache;
import org.rocksdb.IndexType;
import org.rocksdb.LRUCache;
import org.rocksdb.ReadOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.SstFileManager;
import org.rocksdb.Status;
import org.rocksdb.WALRecoveryMode;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;
import org.agrona.CloseHelper;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The SSD tier: vectors in RocksDB, the store's authoritative copy.
 *
 * <p>Options are chosen for point and batched lookups of fixed-size values: a whole-key Bloom
 * filter (10 bits per key, about 1 % false positives) in every SST file and in the memtable, so a
 * miss rarely reads a data block; filters and indexes partitioned into 4 KiB blocks behind a
 * top-level index pinned in the LRU block cache, so a large SST never makes a lookup read a whole
 * filter; 4 KiB data blocks; no compression, because float32 embeddings hardly compress and
 * decompression would cost every read. Batched reads use RocksDB's {@code MultiGet}; large
 * batched writes go to RocksDB in write batches of at most {@value #WRITE_BATCH_BYTES} bytes, so
 * memtables, and the SST files they flush to, stay bounded. Every write goes through the
 * write-ahead log, so an acknowledged write survives the process being killed; with
 * {@code syncWrites} it is also fsynced and survives power loss.
 *
 * <p><b>Corruption is refused, never served.</b> RocksDB runs with paranoid checks and replays its
 * write-ahead log in the mode that tolerates only a torn last record (the write in flight at a
 * crash, never acknowledged) and fails on damage anywhere else; reads verify block checksums, and
 * a key that {@code MultiGet} reports without a value is confirmed absent by the Bloom filter or a
 * point read, so a damaged block surfaces as {@code CORRUPTION} instead of a miss. The MANIFEST is
 * checked against {@link ManifestMark} before RocksDB opens. RocksDB's log goes to SLF4J, so a
 * refused open leaves the directory byte for byte as it was.
 *
 * <p>The directory is marked with an {@code MLKV-FORMAT} file recording the format, element type
 * and dimension; opening it with another dimension fails before RocksDB touches anything.
 * {@link DirectoryLock} refuses a second opener, in this or another process, however the path is
 * spelled.
 *
 * <p>Thread-safe.
 */
public final class RocksDbTier implements VectorTier {
    /** Keys per RocksDB MultiGet call; bounds the temporary lists of a very large batch. */
    private static final int MULTIGET_CHUNK = 8192;
    /** Largest RocksDB write batch a {@link #putAll} sends; larger ones are split. */
    static final long WRITE_BATCH_BYTES = 16L << 20;
    /** RocksDB's memtable size (per column family). */
    private static final long WRITE_BUFFER_BYTES = 64L << 20;
    /** Write-ahead logs beyond this size make RocksDB flush the families holding the oldest one. */
    static final long MAX_TOTAL_WAL_BYTES = 2 * WRITE_BUFFER_BYTES;
    private static final byte[] META_CF = "mlkv-meta".getBytes(StandardCharsets.UTF_8);
    /**
     * Whether SST files are read through memory maps instead of {@code pread}: a block in the page
     * cache is then read without a system call or a copy into the block cache, which halved the
     * time of reads below DRAM in docs/BENCHMARKS.md ("SST files read through memory maps").
     * {@code -Dmlkv.rocksdbMmapReads=false} reads with {@code pread}. See {@link #mmapReads()}.
     */
    private static final boolean MMAP_READS = !"false".equals(System.getProperty("mlkv.rocksdbMmapReads"));

    private static final Logger LOG = LoggerFactory.getLogger(RocksDbTier.class);

    static {
        RocksDB.loadLibrary();
    }

    private final Path dir;
    private final int dim;
    private final DirectoryLock lock;
    private final RocksLogBridge rocksLog;
    /** Keeps {@link ManifestMark} up to date while the tier is open. */
    private AutoCloseable manifestWatch;
    private final Cache blockCache;
    private final BloomFilter bloom;
    /** Tracks SST space and lets RocksDB recover by itself once a full disk has room again. */
    private final SstFileManager sstFiles;
    private final DBOptions dbOptions;
    private final ColumnFamilyOptions cfOptions;
    private final WriteOptions writeOptions;
    private final ReadOptions readOptions;
    private final List<ColumnFamilyDescriptor> descriptors;
    /**
     * Read-held by every operation and open cursor, write-held to swap the RocksDB handle after a
     * failed write: RocksDB refuses all writes after a failed write-ahead-log append (a full disk,
     * say) until it is reopened, which is what {@link #recover()} does.
     */
    private final ReentrantReadWriteLock handleLock = new ReentrantReadWriteLock();
    private RocksDB db;
    private ColumnFamilyHandle data;
    private ColumnFamilyHandle meta;
    private volatile MlkvException writeFailure;
    private final AtomicBoolean closed = new AtomicBoolean();

    private RocksDbTier(Path dir, int dim, long blockCacheBytes, boolean syncWrites, DirectoryLock lock) {
        this.dir = dir;
        this.dim = dim;
        this.lock = lock;
        this.rocksLog = new RocksLogBridge();
        this.blockCache = newBlockCache(blockCacheBytes);
        this.bloom = new BloomFilter(10, false);
        BlockBasedTableConfig table = new BlockBasedTableConfig()
                .setBlockCache(blockCache)
                .setFilterPolicy(bloom)
                .setWholeKeyFiltering(true)
                .setCacheIndexAndFilterBlocks(true)
                .setCacheIndexAndFilterBlocksWithHighPriority(true)
                .setPinL0FilterAndIndexBlocksInCache(true)
                .setIndexType(IndexType.kTwoLevelIndexSearch)
                .setPartitionFilters(true)
                .setMetadataBlockSize(4096)
                .setPinTopLevelIndexAndFilter(true)
                .setBlockSize(4096)
                .setFormatVersion(5);
        this.cfOptions = new ColumnFamilyOptions()
                .setTableFormatConfig(table)
                .setCompressionType(CompressionType.NO_COMPRESSION)
                .setMemtablePrefixBloomSizeRatio(0.05)
                .setMemtableWholeKeyFiltering(true)
                .setWriteBufferSize(WRITE_BUFFER_BYTES)
                .setLevelCompactionDynamicLevelBytes(true);
        this.sstFiles = newSstFileManager();
        this.dbOptions = new DBOptions()
                .setSstFileManager(sstFiles)
                .setCreateIfMissing(true)
                .setCreateMissingColumnFamilies(true)
                .setParanoidChecks(true)
                .setWalRecoveryMode(WALRecoveryMode.TolerateCorruptedTailRecords)
                .setBestEffortsRecovery(false)
                .setLogger(rocksLog)
                .setMaxBackgroundJobs(Math.max(2, Runtime.getRuntime().availableProcessors()))
                .setBytesPerSync(1L << 20)
                // The metadata family is written at open and close only: without a bound its one
                // unflushed record would keep every write-ahead log since the open, as much disk
                // as the data written, all replayed at the next open.
                .setMaxTotalWalSize(MAX_TOTAL_WAL_BYTES)
                .setAllowMmapReads(MMAP_READS);
        this.writeOptions = new WriteOptions().setSync(syncWrites);
        this.readOptions = new ReadOptions();
        this.descriptors = List.of(
                new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY, cfOptions),
                new ColumnFamilyDescriptor(META_CF, cfOptions));
        try {
            openHandles();
        } catch (RocksDBException e) {
            closeOptions();
            throw openFailure(dir, e);
        }
        manifestWatch = ManifestMark.watch(dir);
    }

    /**
     * The block cache (also for baselines configured as the tier is): RocksDB's LRU cache, or with {@code -Dmlkv.rocksdbClockCache=true} its
     * HyperClockCache, whose look-ups take no shard mutex (meant for many threads reading through
     * one cache; on two cores it measured within the spread of the LRU cache, docs/BENCHMARKS.md).
     */
    public static Cache newBlockCache(long bytes) {
        return Boolean.getBoolean("mlkv.rocksdbClockCache") ? new HyperClockCache(bytes, 0, -1, false) : new LRUCache(bytes);
    }

    /** Whether the tier reads SST files through memory maps (for baselines configured as the tier is). */
    public static boolean mmapReads() {
        return MMAP_READS;
    }

    private void openHandles() throws RocksDBException {
        List<ColumnFamilyHandle> handles = new ArrayList<>();
        db = RocksDB.open(dbOptions, dir.toString(), descriptors, handles);
        data = handles.get(0);
        meta = handles.get(1);
    }

    private void closeHandles() throws RocksDBException {
        RocksDB d = db;
        db = null;
        if (d != null) {
            data.close();
            meta.close();
            d.closeE();
        }
    }

    /** Takes the handle lock for an operation; a write first reopens RocksDB after a failed write. */
    private void enter(boolean write) {
        if (write && writeFailure != null) {
            recover();
        }
        handleLock.readLock().lock();
        if (closed.get() || db == null) {
            handleLock.readLock().unlock();
            if (closed.get()) {
                throw new IllegalStateException("RocksDB tier at " + dir + " is closed");
            }
            recover();
            handleLock.readLock().lock();
        }
    }

    private void exit() {
        handleLock.readLock().unlock();
    }

    /** Reopens RocksDB after a failed write; throws, naming both failures, if it cannot. */
    private void recover() {
        if (handleLock.getReadHoldCount() > 0) {
            throw new IllegalStateException("RocksDB at " + dir + " must be reopened after a failed"
                    + " write, which cannot happen while this thread has an export cursor open");
        }
        handleLock.writeLock().lock();
        try {
            if (closed.get()) {
                throw new IllegalStateException("RocksDB tier at " + dir + " is closed");
            }
            MlkvException cause = writeFailure;
            if (cause == null && db != null) {
                return;
            }
            try {
                closeHandles();
            } catch (RocksDBException e) {
                LOG.warn("closing RocksDB at {} after a failed write: {}", dir, e.getMessage());
            }
            try {
                openHandles();
                writeFailure = null;
                LOG.info("reopened RocksDB at {} after a failed write ({})", dir,
                        cause == null ? "earlier reopen failed" : cause.getMessage());
            } catch (RocksDBException e) {
                MlkvException f = failure("reopen " + dir + " after a failed write", e);
                if (cause != null) {
                    f.addSuppressed(cause);
                }
                throw f;
            }
        } finally {
            handleLock.writeLock().unlock();
        }
    }

    /** Records a failed write so the next write reopens RocksDB first. */
    private MlkvException writeFailed(String op, RocksDBException e) {
        MlkvException f = failure(op, e);
        writeFailure = f;
        return f;
    }

    /**
     * Opens or creates the tier in {@code dir}.
     *
     * @param blockCacheBytes size of RocksDB's block cache
     * @param syncWrites      fsync the write-ahead log on every write (survives power loss)
     * @throws MlkvException {@code LOCKED} if another store has the directory open,
     *                       {@code INCOMPATIBLE_FORMAT} if it holds another dimension or is not
     *                       an MLKV store, {@code IO_ERROR} if it cannot be created or read
     */
    public static RocksDbTier open(Path dir, int dim, long blockCacheBytes, boolean syncWrites) {
        if (dir == null) {
            throw new IllegalArgumentException("storage directory must not be null");
        }
        if (dim <= 0) {
            throw new IllegalArgumentException("dim must be positive, was " + dim);
        }
        if (blockCacheBytes <= 0) {
            throw new IllegalArgumentException("blockCacheBytes must be positive, was " + blockCacheBytes);
        }
        Path abs = dir.toAbsolutePath();
        // A store of another dimension is refused before the lock file is written.
        StoreFormat.checkIfPresent(abs, dim);
        try {
            Files.createDirectories(abs);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "open " + abs, e.getClass().getSimpleName(),
                    "cannot create the directory: " + e.getMessage(), e);
        }
        DirectoryLock lock = DirectoryLock.acquire(abs, "open");
        try {
            StoreFormat.createOrCheck(abs, dim);
            ManifestMark.check(abs);
            return new RocksDbTier(abs, dim, blockCacheBytes, syncWrites, lock);
        } catch (RuntimeException e) {
            try {
                lock.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /** The store's directory. */
    public Path directory() {
        return dir;
    }

    @Override
    public int dim() {
        return dim;
    }

    @Override
    public int multiGet(long[] keys, float[] out, boolean[] found) {
        BatchChecks.checkOutputRows("multiGet", keys, out, dim);
        BatchChecks.checkFlags("multiGet", "found", keys, found);
        return multiGet(keys, 0, keys.length, out, found);
    }

    /**
     * Looks up {@code keys[from, to)}; results go to the same positions of {@code out} and
     * {@code found} as the keys have in {@code keys}.
     */
    public int multiGet(long[] keys, int from, int to, float[] out, boolean[] found) {
        enter(false);
        try {
            return multiGetLocked(keys, from, to, out, found);
        } finally {
            exit();
        }
    }

    private int multiGetLocked(long[] keys, int from, int to, float[] out, boolean[] found) {
        int hits = 0;
        for (int start = from; start < to; start += MULTIGET_CHUNK) {
            int end = Math.min(to, start + MULTIGET_CHUNK);
            List<byte[]> encoded = new ArrayList<>(end - start);
            for (int i = start; i < end; i++) {
                encoded.add(ValueCodec.encodeKey(keys[i]));
            }
            List<ColumnFamilyHandle> families = Collections.nCopies(end - start, data);
            List<byte[]> values;
            try {
                values = db.multiGetAsList(readOptions, families, encoded);
            } catch (RocksDBException e) {
                throw failure("multiGet (n=" + (end - start) + ")", e);
            }
            for (int i = start; i < end; i++) {
                byte[] v = values.get(i - start);
                if (v == null) {
                    v = confirmAbsent(encoded.get(i - start));
                }
                found[i] = v != null;
                if (v != null) {
                    ValueCodec.decodeValue(keys[i], v, out, i, dim);
                    hits++;
                }
            }
        }
        return hits;
    }

    /**
     * RocksDB's Java {@code MultiGet} returns no value both for an absent key and for one whose
     * block failed its checksum. A key the Bloom filter and memtable rule out is absent; the rare
     * one they cannot (about 1 % false positives) is read again on its own, which throws
     * {@code CORRUPTION} for a damaged block and returns the value if it appeared meanwhile.
     */
    private byte[] confirmAbsent(byte[] key) {
        if (!db.keyMayExist(data, readOptions, key, null)) {
            return null;
        }
        try {
            return db.get(data, readOptions, key);
        } catch (RocksDBException e) {
            throw failure("multiGet", e);
        }
    }

    /**
     * Tells which of {@code keys[0, n)} are present, without returning values: one RocksDB
     * {@code MultiGet} per {@link #MULTIGET_CHUNK} keys into direct buffers of this thread, each
     * value buffer a few bytes long, so that no value is copied whole and nothing is allocated per
     * key but its status. Unlike the byte-array {@code MultiGet}, a key's status tells an absent
     * key from a failed read, which throws.
     *
     * @return the number present
     */
    public int exists(long[] keys, int n, boolean[] out) {
        enter(false);
        try {
            ExistsBuffers b = EXISTS_BUFFERS.get();
            int present = 0;
            for (int start = 0; start < n; start += MULTIGET_CHUNK) {
                int m = Math.min(n, start + MULTIGET_CHUNK) - start;
                for (int i = 0; i < m; i++) {
                    ByteBuffer k = b.keys.get(i);
                    k.clear();
                    ValueCodec.encodeKey(keys[start + i], k);
                    k.flip();
                    b.values.get(i).clear();
                }
                List<ByteBufferGetStatus> statuses;
                try {
                    statuses = db.multiGetByteBuffers(readOptions, Collections.nCopies(m, data), b.keys.subList(0, m),
                            b.values.subList(0, m));
                } catch (RocksDBException e) {
                    throw failure("exists (n=" + m + ")", e);
                }
                for (int i = 0; i < m; i++) {
                    Status.Code code = statuses.get(i).status.getCode();
                    if (code != Status.Code.Ok && code != Status.Code.NotFound) {
                        throw failure("exists", new RocksDBException(statuses.get(i).status));
                    }
                    out[start + i] = code == Status.Code.Ok;
                    present += out[start + i] ? 1 : 0;
                }
            }
            return present;
        } finally {
            exit();
        }
    }

    /**
     * Direct buffers of one thread for {@link #exists}: a key buffer (big-endian, as
     * {@link ValueCodec#encodeKey} lays a key out) and a value buffer of a few bytes per key of a
     * chunk; RocksDB copies at most that much of a value and reports its full size.
     */
    private static final class ExistsBuffers {
        final List<ByteBuffer> keys = new ArrayList<>(MULTIGET_CHUNK);
        final List<ByteBuffer> values = new ArrayList<>(MULTIGET_CHUNK);

        ExistsBuffers() {
            ByteBuffer keySlab = ByteBuffer.allocateDirect(MULTIGET_CHUNK * 8);
            ByteBuffer valueSlab = ByteBuffer.allocateDirect(MULTIGET_CHUNK * 8);
            for (int i = 0; i < MULTIGET_CHUNK; i++) {
                keys.add(keySlab.slice(i * 8, 8).order(ByteOrder.BIG_ENDIAN));
                values.add(valueSlab.slice(i * 8, 8));
            }
        }
    }

    private static final ThreadLocal<ExistsBuffers> EXISTS_BUFFERS = ThreadLocal.withInitial(ExistsBuffers::new);

    /** Reads one key; returns whether it was found. */
    public boolean get(long key, float[] out, int row) {
        enter(false);
        try {
            byte[] v = db.get(data, readOptions, ValueCodec.encodeKey(key));
            if (v == null) {
                return false;
            }
            ValueCodec.decodeValue(key, v, out, row, dim);
            return true;
        } catch (RocksDBException e) {
            throw failure("get", e);
        } finally {
            exit();
        }
    }

    @Override
    public void multiPut(long[] keys, float[] values) {
        BatchChecks.checkRows("multiPut", keys, values, dim);
        putAll(keys, values, keys.length);
    }

    /**
     * Writes rows {@code [0, count)} in order (a later row wins), in write batches of at most
     * {@value #WRITE_BATCH_BYTES} bytes: each batch is atomic, and a crash between two of them
     * keeps a prefix of the rows. When this returns every row is in the write-ahead log.
     */
    public void putAll(long[] keys, float[] values, int count) {
        if (count == 0) {
            return;
        }
        int rowsPerBatch = (int) Math.max(1, WRITE_BATCH_BYTES / (8 + ValueCodec.HEADER_BYTES + 4L * dim));
        enter(true);
        try {
            for (int from = 0; from < count; from += rowsPerBatch) {
                int to = Math.min(count, from + rowsPerBatch);
                try (WriteBatch batch = new WriteBatch()) {
                    for (int i = from; i < to; i++) {
                        batch.put(data, ValueCodec.encodeKey(keys[i]), ValueCodec.encodeValue(values, i, dim));
                    }
                    db.write(writeOptions, batch);
                }
            }
        } catch (RocksDBException e) {
            throw writeFailed("write (n=" + count + ")", e);
        } finally {
            exit();
        }
    }

    @Override
    public void multiDelete(long[] keys) {
        BatchChecks.checkKeys("multiDelete", keys);
        enter(true);
        try (WriteBatch batch = new WriteBatch()) {
            for (long key : keys) {
                batch.delete(data, ValueCodec.encodeKey(key));
            }
            db.write(writeOptions, batch);
        } catch (RocksDBException e) {
            throw writeFailed("delete (n=" + keys.length + ")", e);
        } finally {
            exit();
        }
    }

    @Override
    public int contains(long[] keys, boolean[] out) {
        BatchChecks.checkKeys("contains", keys);
        BatchChecks.checkFlags("contains", "out", keys, out);
        return exists(keys, keys.length, out);
    }

    /** Counts the keys by a full scan: exact, and O(number of keys). */
    @Override
    public long size() {
        enter(false);
        long n = 0;
        // An iterator reads an implicit snapshot taken when it is created.
        try (ReadOptions ro = new ReadOptions().setFillCache(false);
                RocksIterator it = db.newIterator(data, ro)) {
            for (it.seekToFirst(); it.isValid(); it.next()) {
                n++;
            }
            checkIterator(it, "count");
        } finally {
            exit();
        }
        return n;
    }

    @Override
    public void forEach(VectorVisitor visitor) {
        try (ExportCursor cursor = exportCursor()) {
            float[] buf = new float[dim];
            while (cursor.next(buf)) {
                visitor.visit(cursor.key(), buf);
            }
        }
    }

    /**
     * A cursor over a point-in-time snapshot taken now, in ascending key order. Close it, on the
     * thread that opened it, to release the snapshot; a write that must reopen RocksDB after a
     * failure waits until open cursors are closed.
     */
    public ExportCursor exportCursor() {
        enter(false);
        try {
            return new ExportCursor();
        } catch (RuntimeException e) {
            exit();
            throw e;
        }
    }

    /** Reads a number stored under {@code name} in the tier's metadata, or {@code fallback}. */
    public long readMeta(String name, long fallback) {
        enter(false);
        try {
            byte[] v = db.get(meta, name.getBytes(StandardCharsets.UTF_8));
            return v == null ? fallback : ByteBuffer.wrap(v).order(ByteOrder.LITTLE_ENDIAN).getLong();
        } catch (RocksDBException e) {
            throw failure("read metadata " + name, e);
        } finally {
            exit();
        }
    }

    /** Stores a number under {@code name} in the tier's metadata, through the write-ahead log. */
    public void writeMeta(String name, long value) {
        byte[] v = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(value).array();
        enter(true);
        try {
            db.put(meta, writeOptions, name.getBytes(StandardCharsets.UTF_8), v);
        } catch (RocksDBException e) {
            throw writeFailed("write metadata " + name, e);
        } finally {
            exit();
        }
    }

    /**
     * Writes a consistent copy of the tier to {@code target}, which must not exist: RocksDB's own
     * checkpoint (hard links to immutable SST files where the file system allows, copies
     * otherwise) plus the format marker, so {@code target} opens as a store of its own.
     */
    public void checkpoint(Path target) {
        enter(true);
        try (Checkpoint cp = Checkpoint.create(db)) {
            cp.createCheckpoint(target.toString());
            Files.copy(dir.resolve(StoreFormat.FILE_NAME), target.resolve(StoreFormat.FILE_NAME));
        } catch (RocksDBException e) {
            throw failure("checkpoint to " + target, e);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "checkpoint to " + target, e.getClass().getSimpleName(),
                    e.getMessage(), e);
        } finally {
            exit();
        }
    }

    /** Fsyncs the write-ahead log, so everything written so far survives power loss. */
    public void syncWal() {
        enter(true);
        try {
            db.flushWal(true);
        } catch (RocksDBException e) {
            throw writeFailed("sync write-ahead log", e);
        } finally {
            exit();
        }
    }

    @Override
    public void close() {
        handleLock.writeLock().lock();
        try {
            if (!closed.compareAndSet(false, true)) {
                return;
            }
            closeHandles();
            CloseHelper.close(manifestWatch);
        } catch (RocksDBException e) {
            throw failure("close " + dir, e);
        } finally {
            try {
                closeOptions();
            } finally {
                try {
                    lock.close();
                } finally {
                    handleLock.writeLock().unlock();
                }
            }
        }
    }

    private void closeOptions() {
        readOptions.close();
        writeOptions.close();
        dbOptions.close();
        cfOptions.close();
        bloom.close();
        blockCache.close();
        sstFiles.close();
        rocksLog.close();
    }

    private static SstFileManager newSstFileManager() {
        try {
            return new SstFileManager(Env.getDefault());
        } catch (RocksDBException e) {
            throw failure("create SST file manager", e);
        }
    }

    private static void checkIterator(RocksIterator it, String op) {
        try {
            it.status();
        } catch (RocksDBException e) {
            throw failure(op, e);
        }
    }

    private static MlkvException openFailure(Path dir, RocksDBException e) {
        String msg = String.valueOf(e.getMessage());
        if (msg.contains("/LOCK") || msg.contains("lock hold by current process")) {
            return new MlkvException(StatusCode.LOCKED, "open " + dir, codeName(e),
                    "the storage directory is already open in another store (this or another process); "
                            + "close that store first or choose another directory (" + msg + ")",
                    e);
        }
        return failure("open " + dir, e);
    }

    /** Turns a RocksDB failure into the project's exception, naming the RocksDB status. */
    static MlkvException failure(String op, RocksDBException e) {
        Status s = e.getStatus();
        StatusCode code = s != null && s.getCode() == Status.Code.Corruption
                ? StatusCode.CORRUPTION : StatusCode.IO_ERROR;
        return new MlkvException(code, op, codeName(e), e.getMessage(), e);
    }

    private static String codeName(RocksDBException e) {
        Status s = e.getStatus();
        if (s == null) {
            return "RocksDBException";
        }
        String name = s.getCode().name();
        if (s.getSubCode() != null && s.getSubCode() != Status.SubCode.None) {
            name += "(" + s.getSubCode().name() + ")";
        }
        return name;
    }

    /** Walks a snapshot of the tier in key order; see {@link #exportCursor()}. */
    public final class ExportCursor implements AutoCloseable {
        private final ReadOptions options;
        private final RocksIterator iterator;
        private final AtomicBoolean cursorClosed = new AtomicBoolean();
        private boolean started;
        private long key;

        private ExportCursor() {
            // The iterator pins an implicit snapshot taken here.
            options = new ReadOptions().setFillCache(false);
            iterator = db.newIterator(data, options);
        }

        /** Moves to the next entry and copies its vector into {@code out[0, dim)}. */
        public boolean next(float[] out) {
            if (!started) {
                iterator.seekToFirst();
                started = true;
            } else {
                iterator.next();
            }
            if (!iterator.isValid()) {
                checkIterator(iterator, "export");
                return false;
            }
            key = ValueCodec.decodeKey(iterator.key());
            ValueCodec.decodeValue(key, iterator.value(), out, 0, dim);
            return true;
        }

        /** The key of the entry {@link #next} moved to. */
        public long key() {
            return key;
        }

        @Override
        public void close() {
            if (cursorClosed.compareAndSet(false, true)) {
                iterator.close();
                options.close();
                exit();
            }
        }
    }
}
