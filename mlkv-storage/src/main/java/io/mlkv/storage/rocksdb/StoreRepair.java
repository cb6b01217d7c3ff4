package io.mlkv.storage.rocksdb;

import io.mlkv.storage.FileSync;
import io.mlkv.storage.FileTrees;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.agrona.collections.LongHashSet;
import org.rocksdb.AbstractRocksIterator;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.DBOptions;
import org.rocksdb.LiveFileMetaData;
import org.rocksdb.Options;
import org.rocksdb.ReadOptions;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.SstFileReader;
import org.rocksdb.SstFileReaderIterator;
import org.rocksdb.Status;
import org.rocksdb.WALRecoveryMode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Salvages a store directory that a normal open refuses as {@code CORRUPTION} (a damaged SST,
 * MANIFEST, CURRENT or write-ahead log), into a new store in its place.
 *
 * <p>Steps, none of which writes into the damaged files:
 * <ol>
 *   <li>The directory's files are linked (or copied) into a work directory beside it; if CURRENT is
 *       damaged or names a missing MANIFEST, the work copy's CURRENT names the newest MANIFEST.</li>
 *   <li>The work copy is opened read-only with checks relaxed: write-ahead-log records that fail
 *       their checksums are skipped, and if the MANIFEST names files that are gone, RocksDB's
 *       best-efforts recovery opens the newest state whose files all exist.</li>
 *   <li>Every entry of that state is read with checksums verified. A read that fails skips, by
 *       bisection over the key space, to the first key whose block reads cleanly; the skipped key
 *       range is reported.</li>
 *   <li>SST files in the directory that the recovered state does not list (what a truncated
 *       MANIFEST forgot) are read the same way, newest first; their entries fill keys the
 *       recovered state lacks.</li>
 *   <li>The salvaged entries are written to a new store, which is fsynced; then the damaged
 *       directory is renamed to {@code NAME.damaged-TIMESTAMP} and the new store renamed into
 *       its place.</li>
 * </ol>
 * Deleted keys that only a lost part of the MANIFEST or log recorded as deleted can come back;
 * the report says which files and ranges were involved.
 */
public final class StoreRepair {
    private static final Logger LOG = LoggerFactory.getLogger(StoreRepair.class);
    private static final Pattern MANIFEST = Pattern.compile("MANIFEST-(\\d+)");
    private static final Pattern SST = Pattern.compile("(\\d+)\\.sst");
    private static final int WRITE_ROWS = 4096;

    private StoreRepair() {
    }

    /**
     * Repairs the store in {@code dir}; no store may have it open.
     *
     * @throws MlkvException {@code LOCKED} if a store holds the directory, {@code INCOMPATIBLE_FORMAT}
     *                       if it is not an MLKV store, {@code IO_ERROR} if files cannot be moved
     */
    public static RepairReport repair(Path dir) {
        if (dir == null) {
            throw new IllegalArgumentException("repair: directory must not be null");
        }
        Path abs = dir.toAbsolutePath().normalize();
        if (!Files.isRegularFile(abs.resolve(StoreFormat.FILE_NAME))) {
            throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, "repair " + abs, "no " + StoreFormat.FILE_NAME
                    + " file: not an MLKV store");
        }
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        Path parent = abs.getParent();
        String name = abs.getFileName().toString();
        Path work = parent.resolve(name + ".repair-work-" + stamp);
        Path fresh = parent.resolve(name + ".repaired-" + stamp);
        Path damaged = parent.resolve(name + ".damaged-" + stamp);
        try (DirectoryLock lock = DirectoryLock.acquire(abs, "repair")) {
            int dim = StoreFormat.readDim(abs);
            List<RepairReport.Dropped> unreadable = new ArrayList<>();
            List<String> notes = new ArrayList<>();
            linkFiles(abs, work);
            fixCurrent(work, notes);
            long[] counts = new long[3];
            try (RocksDbTier out = RocksDbTier.open(fresh, dim, 8L << 20, false)) {
                salvage(work, dim, out, counts, unreadable, notes);
                out.syncWal();
            }
            FileSync.OS.tree(fresh);
            Files.move(abs, damaged, StandardCopyOption.ATOMIC_MOVE);
            Files.move(fresh, abs, StandardCopyOption.ATOMIC_MOVE);
            FileSync.OS.directory(parent);
            FileTrees.delete(work);
            RepairReport report = new RepairReport(counts[0], counts[1], counts[2], List.copyOf(unreadable),
                    List.copyOf(notes), damaged);
            LOG.info("repaired store at {}: {}", abs, report);
            return report;
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "repair " + abs, e.getClass().getSimpleName(),
                    e.getMessage(), e);
        } finally {
            try {
                FileTrees.delete(work);
                if (Files.exists(fresh) && Files.exists(abs)) {
                    FileTrees.delete(fresh);
                }
            } catch (IOException e) {
                LOG.warn("cannot remove the repair's work directories {} / {}: {}", work, fresh, e.toString());
            }
        }
    }

    private static void linkFiles(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> s = Files.list(from)) {
            for (Path f : s.filter(Files::isRegularFile).toList()) {
                String n = f.getFileName().toString();
                if (n.equals(DirectoryLock.FILE_NAME) || n.equals("LOCK")) {
                    continue;
                }
                try {
                    Files.createLink(to.resolve(n), f);
                } catch (IOException | UnsupportedOperationException e) {
                    Files.copy(f, to.resolve(n));
                }
            }
        }
    }

    /** Points the work copy's CURRENT at the newest MANIFEST if it is damaged or names a missing one. */
    private static void fixCurrent(Path work, List<String> notes) throws IOException {
        long named = -1;
        try {
            named = ManifestMark.currentManifest(work, "repair");
        } catch (MlkvException e) {
            notes.add("CURRENT was damaged: " + e.getMessage());
        }
        long newest = -1;
        try (Stream<Path> s = Files.list(work)) {
            for (Path f : s.toList()) {
                Matcher m = MANIFEST.matcher(f.getFileName().toString());
                if (m.matches()) {
                    newest = Math.max(newest, Long.parseLong(m.group(1)));
                }
            }
        }
        if (newest < 0) {
            notes.add("no MANIFEST found; only SST files are read");
            return;
        }
        if (named == newest) {
            return;
        }
        Path current = work.resolve("CURRENT");
        Files.deleteIfExists(current);
        Files.writeString(current, ManifestMark.manifestName(newest) + "\n", StandardCharsets.ISO_8859_1);
        notes.add("opened " + ManifestMark.manifestName(newest) + " (CURRENT named "
                + (named < 0 ? "nothing usable" : ManifestMark.manifestName(named)) + ")");
    }

    private static void salvage(Path work, int dim, RocksDbTier out, long[] counts, List<RepairReport.Dropped> unreadable,
            List<String> notes) throws IOException {
        Rows rows = new Rows(dim, out);
        Set<String> live = new HashSet<>();
        RocksDB view = null;
        List<ColumnFamilyHandle> handles = new ArrayList<>();
        RocksLogBridge log = new RocksLogBridge();
        try (DBOptions options = new DBOptions().setParanoidChecks(false).setLogger(log)
                .setWalRecoveryMode(WALRecoveryMode.SkipAnyCorruptedRecords)) {
            view = openView(work, options, handles, notes);
            if (view != null) {
                ColumnFamilyHandle data = handles.get(0);
                for (LiveFileMetaData f : view.getLiveFilesMetaData()) {
                    live.add(Path.of(f.fileName()).getFileName().toString());
                }
                long estimate = estimate(view, data);
                try (ReadOptions ro = new ReadOptions().setVerifyChecksums(true).setFillCache(false);
                        AbstractRocksIterator<?> it = view.newIterator(data, ro)) {
                    long read = copy(it, "the recovered state", rows, Wanted.EVERY_KEY, unreadable);
                    counts[0] += read;
                    counts[2] += Math.max(0, estimate - read);
                }
            }
            long[] unlisted = salvageUnlisted(work, live, rows, view, handles, unreadable);
            counts[0] += unlisted[0];
            counts[1] += unlisted[0];
            counts[2] += unlisted[1];
            rows.flush();
        } finally {
            for (ColumnFamilyHandle h : handles) {
                h.close();
            }
            if (view != null) {
                view.close();
            }
            log.close();
        }
    }

    private static RocksDB openView(Path work, DBOptions options, List<ColumnFamilyHandle> handles, List<String> notes) {
        List<ColumnFamilyDescriptor> families = new ArrayList<>();
        families.add(new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY));
        try (Options listOptions = new Options()) {
            for (byte[] cf : RocksDB.listColumnFamilies(listOptions, work.toString())) {
                if (!Arrays.equals(cf, RocksDB.DEFAULT_COLUMN_FAMILY)) {
                    families.add(new ColumnFamilyDescriptor(cf));
                }
            }
        } catch (RocksDBException e) {
            notes.add("the MANIFEST cannot be read (" + e.getMessage() + "); only SST files are read");
            return null;
        }
        try {
            return RocksDB.openReadOnly(options, work.toString(), families, handles);
        } catch (RocksDBException first) {
            handles.clear();
            options.setBestEffortsRecovery(true);
            try {
                RocksDB db = RocksDB.openReadOnly(options, work.toString(), families, handles);
                notes.add("opened the newest state whose files all exist (" + first.getMessage() + ")");
                return db;
            } catch (RocksDBException second) {
                handles.clear();
                notes.add("the recorded state cannot be opened (" + second.getMessage() + "); only SST files are read");
                return null;
            }
        }
    }

    private static long estimate(RocksDB view, ColumnFamilyHandle data) {
        try {
            return view.getLongProperty(data, "rocksdb.estimate-num-keys");
        } catch (RocksDBException e) {
            return 0;
        }
    }

    /** Reads SST files of the data column family that the recovered state does not list, newest first. */
    private static long[] salvageUnlisted(Path work, Set<String> live, Rows rows, RocksDB view,
            List<ColumnFamilyHandle> handles, List<RepairReport.Dropped> unreadable) throws IOException {
        // Newest file first: a key goes to the new store once, from the newest file that has it,
        // and only if the recovered state (when there is one) lacks it.
        LongHashSet taken = new LongHashSet();
        Wanted wanted = new Wanted() {
            @Override
            public boolean test(long key, byte[] encoded) {
                return !taken.contains(key) && (view == null || !presentIn(view, handles.get(0), encoded));
            }

            @Override
            public void accepted(long key) {
                taken.add(key);
            }
        };
        List<Path> files;
        try (Stream<Path> s = Files.list(work)) {
            files = s.filter(f -> SST.matcher(f.getFileName().toString()).matches()
                    && !live.contains(f.getFileName().toString()))
                    .sorted(Comparator.comparing((Path f) -> f.getFileName().toString()).reversed()).toList();
        }
        long salvaged = 0;
        long lost = 0;
        for (Path f : files) {
            try (Options o = new Options(); SstFileReader reader = new SstFileReader(o)) {
                reader.open(f.toString());
                if (!Arrays.equals(reader.getTableProperties().getColumnFamilyName(), RocksDB.DEFAULT_COLUMN_FAMILY)) {
                    continue;
                }
                long entries = reader.getTableProperties().getNumEntries();
                try (ReadOptions ro = new ReadOptions().setVerifyChecksums(true);
                        SstFileReaderIterator it = reader.newIterator(ro)) {
                    long before = rows.seen;
                    salvaged += copy(it, f.getFileName().toString(), rows, wanted, unreadable);
                    lost += Math.max(0, entries - (rows.seen - before));
                }
            } catch (RocksDBException e) {
                unreadable.add(new RepairReport.Dropped(f.getFileName().toString(), Long.MIN_VALUE, Long.MAX_VALUE,
                        e.getMessage()));
            }
        }
        return new long[] {salvaged, lost};
    }

    private static boolean presentIn(RocksDB view, ColumnFamilyHandle data, byte[] key) {
        try {
            return view.get(data, key) != null;
        } catch (RocksDBException e) {
            // Its block in the recovered state is damaged: the unlisted file's copy is the best there is.
            return false;
        }
    }

    /** Which entries read during a repair go to the new store. */
    private interface Wanted {
        /** Every entry read. */
        Wanted EVERY_KEY = (key, encoded) -> true;

        boolean test(long key, byte[] encoded);

        /** Called once an entry {@link #test} wanted has gone to the new store. */
        default void accepted(long key) {
        }
    }

    /**
     * Copies every readable entry of {@code it} that {@code wanted} takes; skips damaged blocks by
     * bisection. Returns the entries copied.
     */
    private static long copy(AbstractRocksIterator<?> it, String source, Rows rows, Wanted wanted,
            List<RepairReport.Dropped> unreadable) {
        long copied = 0;
        it.seekToFirst();
        long last = Long.MIN_VALUE;
        boolean any = false;
        while (true) {
            while (it.isValid()) {
                byte[] k = key(it);
                long key = ValueCodec.decodeKey(k);
                rows.seen++;
                any = true;
                last = key;
                if (wanted.test(key, k)) {
                    byte[] v = value(it);
                    if (rows.add(key, v)) {
                        wanted.accepted(key);
                        copied++;
                    } else {
                        unreadable.add(new RepairReport.Dropped(source, key, key, "a value of " + v.length
                                + " bytes, not this store's format"));
                    }
                }
                it.next();
            }
            RocksDBException failure = status(it);
            if (failure == null) {
                return copied;
            }
            if (any && last == Long.MAX_VALUE) {
                return copied;
            }
            long from = any ? last + 1 : Long.MIN_VALUE;
            if (!readsCleanly(it, Long.MAX_VALUE)) {
                unreadable.add(new RepairReport.Dropped(source, from, Long.MAX_VALUE, failure.getMessage()));
                return copied;
            }
            long lo = from;
            long hi = Long.MAX_VALUE;
            while (lo < hi) {
                long mid = lo + ((hi - lo) >>> 1);
                if (readsCleanly(it, mid)) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            // A seek that reads cleanly can still land beyond keys it could not read (a damaged
            // index block hides the data blocks under it), so the gap ends where the seek landed.
            it.seek(ValueCodec.encodeKey(lo));
            long to = it.isValid() ? ValueCodec.decodeKey(key(it)) - 1 : Long.MAX_VALUE;
            unreadable.add(new RepairReport.Dropped(source, from, to, failure.getMessage()));
            if (!it.isValid()) {
                return copied;
            }
            any = false;
        }
    }

    private static boolean readsCleanly(AbstractRocksIterator<?> it, long key) {
        it.seek(ValueCodec.encodeKey(key));
        return it.isValid() || status(it) == null;
    }

    private static RocksDBException status(AbstractRocksIterator<?> it) {
        try {
            it.status();
            return null;
        } catch (RocksDBException e) {
            Status s = e.getStatus();
            if (s != null && s.getCode() != Status.Code.Corruption && s.getCode() != Status.Code.IOError) {
                throw RocksDbTier.failure("repair", e);
            }
            return e;
        }
    }

    private static byte[] key(AbstractRocksIterator<?> it) {
        return it instanceof SstFileReaderIterator s ? s.key() : ((org.rocksdb.RocksIterator) it).key();
    }

    private static byte[] value(AbstractRocksIterator<?> it) {
        return it instanceof SstFileReaderIterator s ? s.value() : ((org.rocksdb.RocksIterator) it).value();
    }

    /** Salvaged rows on their way to the new store, written in batches. */
    private static final class Rows {
        private final int dim;
        private final RocksDbTier out;
        private final long[] keys = new long[WRITE_ROWS];
        private final float[] values;
        private int n;
        /** Entries read from the current source, copied or not. */
        long seen;

        Rows(int dim, RocksDbTier out) {
            this.dim = dim;
            this.out = out;
            this.values = new float[WRITE_ROWS * dim];
        }

        /** Adds a row; false if the value does not decode (wrong size or header). */
        boolean add(long key, byte[] value) {
            try {
                ValueCodec.decodeValue(key, value, values, n, dim);
            } catch (MlkvException e) {
                return false;
            }
            keys[n++] = key;
            if (n == WRITE_ROWS) {
                flush();
            }
            return true;
        }

        void flush() {
            out.putAll(keys, values, n);
            n = 0;
        }
    }
}
