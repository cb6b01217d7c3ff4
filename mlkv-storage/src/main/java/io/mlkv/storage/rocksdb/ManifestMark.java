package io.mlkv.storage.rocksdb;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
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
 * against this mark, which is rewritten after every open, flush and compaction (each of which
 * RocksDB has already fsynced into the MANIFEST). A MANIFEST older or shorter than the mark is
 * refused as {@code CORRUPTION}.
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
    static synchronized void record(Path dir) {
        try {
            long number = currentManifest(dir, "record MANIFEST length in " + dir);
            long size = Files.size(dir.resolve(manifestName(number)));
            Path tmp = dir.resolve(FILE_NAME + ".tmp");
            Files.writeString(tmp, manifestName(number) + " " + size + "\n", StandardCharsets.UTF_8);
            Files.move(tmp, dir.resolve(FILE_NAME), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | MlkvException e) {
            // A stale mark only weakens the check at the next open; the write itself succeeded.
            LOG.warn("cannot record the MANIFEST length in {} ({})", dir, e.toString());
        }
    }

    static String manifestName(long number) {
        return String.format("MANIFEST-%06d", number);
    }

    private static String repairHint() {
        return "nothing was changed; MlkvStore.repair(directory) salvages what is intact";
    }
}
