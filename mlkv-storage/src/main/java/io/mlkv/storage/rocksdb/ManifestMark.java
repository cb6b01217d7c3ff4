package io.mlkv.storage.rocksdb;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@value #FILE_NAME} file: how far this store has seen RocksDB's MANIFEST grow.
 *
 * <p>RocksDB reads a MANIFEST cut short as if its last records had never been written: it opens
 * an older version of the store and then deletes the newer SST and log files as obsolete. So
 * before RocksDB touches the directory, the MANIFEST that {@code CURRENT} names is checked
 * against this mark, which is rewritten after every open, at close, and within a second of the
 * MANIFEST growing (flushes and compactions, which RocksDB has fsynced into the MANIFEST before
 * the mark can see them). A MANIFEST older or shorter than the mark is refused as
 * {@code CORRUPTION}; a truncation of only what the last second added can go unnoticed.
 *
 * <p>A polling thread rather than RocksDB's event listener keeps the mark fresh: the listener
 * looks up its Java classes from RocksDB's own threads, which fails (and then crashes the JVM)
 * wherever the store's classes are not on the system class path, such as under a test launcher
 * or an application server.
 *
 * <p>The mark is replaced by rename but not fsynced: after a power loss it may hold an earlier
 * (smaller) record, which only weakens the check, never a later one, because the MANIFEST bytes
 * it describes were synced first. A missing or unreadable mark disables the check (older stores,
 * restored checkpoints) with a log line.
 */
final class ManifestMark {
    static final String FILE_NAME = "MLKV-MANIFEST-MARK";
    private static final Pattern CURRENT = Pattern.compile("MANIFEST-(\\d+)\n");
    private static final Pattern MARK = Pattern.compile("MANIFEST-(\\d+) (\\d+)\n?");
    private static final Logger LOG = LoggerFactory.getLogger(ManifestMark.class);

    private ManifestMark() {
    }

    /**
     * Refuses a directory whose CURRENT is damaged or whose MANIFEST is older or shorter than
     * the mark. Reads only.
     */
    static void check(Path dir) {
        Path current = dir.resolve("CURRENT");
        if (!Files.exists(current)) {
            return;
        }
        String op = "open " + dir;
        long number = currentManifest(dir, op);
        Path manifest = dir.resolve(manifestName(number));
        long size;
        try {
            size = Files.size(manifest);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.CORRUPTION, op, "CURRENT names " + manifest.getFileName()
                    + ", which is missing; " + repairHint());
        }
        String text;
        try {
            text = Files.readString(dir.resolve(FILE_NAME), StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            return;
        } catch (IOException e) {
            LOG.warn("cannot read {} in {} ({}); the MANIFEST length check is skipped", FILE_NAME, dir, e.toString());
            return;
        }
        Matcher m = MARK.matcher(text);
        if (!m.matches()) {
            LOG.warn("{} in {} is unreadable; the MANIFEST length check is skipped", FILE_NAME, dir);
            return;
        }
        long markNumber = Long.parseLong(m.group(1));
        long markSize = Long.parseLong(m.group(2));
        if (number < markNumber) {
            throw new MlkvException(StatusCode.CORRUPTION, op, "CURRENT names " + manifest.getFileName()
                    + " but this store last used " + manifestName(markNumber) + "; " + repairHint());
        }
        if (number == markNumber && size < markSize) {
            throw new MlkvException(StatusCode.CORRUPTION, op, manifest.getFileName() + " is " + size
                    + " bytes but this store saw it reach " + markSize + " bytes: it was truncated; " + repairHint());
        }
    }

    /** The MANIFEST number CURRENT names; {@code CORRUPTION} if CURRENT is damaged. */
    static long currentManifest(Path dir, String op) {
        String text;
        try {
            text = Files.readString(dir.resolve("CURRENT"), StandardCharsets.ISO_8859_1);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, op, e.getClass().getSimpleName(),
                    "cannot read CURRENT: " + e.getMessage(), e);
        }
        Matcher m = CURRENT.matcher(text);
        if (!m.matches()) {
            throw new MlkvException(StatusCode.CORRUPTION, op, "CURRENT is damaged (" + text.length()
                    + " bytes that do not name a MANIFEST); " + repairHint());
        }
        return Long.parseLong(m.group(1));
    }

    /** Records the MANIFEST that CURRENT names and its length now. */
    static void record(Path dir) {
        recordIfChanged(dir, null);
    }

    /**
     * Records the MANIFEST and its length if they differ from {@code last} (null: always);
     * returns what is recorded now, or {@code last} if nothing could be read.
     */
    private static synchronized String recordIfChanged(Path dir, String last) {
        try {
            long number = currentManifest(dir, "record MANIFEST length in " + dir);
            long size = Files.size(dir.resolve(manifestName(number)));
            String mark = manifestName(number) + " " + size + "\n";
            if (mark.equals(last)) {
                return last;
            }
            Path tmp = dir.resolve(FILE_NAME + ".tmp");
            Files.writeString(tmp, mark, StandardCharsets.UTF_8);
            Files.move(tmp, dir.resolve(FILE_NAME), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            return mark;
        } catch (IOException | MlkvException e) {
            // A stale mark only weakens the check at the next open; the write itself succeeded.
            LOG.warn("cannot record the MANIFEST length in {} ({})", dir, e.toString());
            return last;
        }
    }

    /** One daemon thread for every open store: looks at each store's MANIFEST once a second. */
    private static final ScheduledExecutorService WATCHER = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "mlkv-manifest-mark");
        t.setDaemon(true);
        return t;
    });

    /**
     * Records the mark now and then whenever the MANIFEST has grown, once a second, until the
     * returned handle is closed (which records it a last time).
     */
    static AutoCloseable watch(Path dir) {
        String[] last = {recordIfChanged(dir, null)};
        ScheduledFuture<?> task = WATCHER.scheduleWithFixedDelay(() -> last[0] = recordIfChanged(dir, last[0]),
                1, 1, TimeUnit.SECONDS);
        return () -> {
            task.cancel(false);
            record(dir);
        };
    }

    static String manifestName(long number) {
        return String.format("MANIFEST-%06d", number);
    }

    private static String repairHint() {
        return "nothing was changed; MlkvStore.repair(directory) salvages what is intact";
    }
}
