package io.mlkv.server;

import io.mlkv.client.HashScheme;
import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The hash scheme of each partition, recorded in the data directory when the partition is first
 * served ({@value #FILE}), so that a restart with another scheme is refused instead of quietly
 * making every stored block unreachable. A data directory that holds a store but no record
 * predates schemes: its partitions were created with {@link HashScheme#MLKV_V1}.
 */
final class PartitionSchemes {
    static final String FILE = "partition-hash-schemes.properties";

    private PartitionSchemes() {
    }

    /**
     * Checks the wanted schemes against those recorded; called before the store is opened (which
     * wants its directory empty or its own, so the record is written only after it opened).
     *
     * @return what to {@link #record} once the store is open, or null when nothing is new
     * @throws IllegalArgumentException naming the partition, both schemes and the way out
     */
    static Map<String, String> check(Path dataDir, Map<String, HashScheme> wanted) {
        Path file = dataDir.resolve(FILE);
        Properties recorded = new Properties();
        boolean existingStore;
        try {
            existingStore = Files.isDirectory(dataDir) && hasEntries(dataDir);
            if (Files.exists(file)) {
                try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
                    recorded.load(r);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        boolean legacy = existingStore && !Files.exists(file);
        Map<String, String> merged = new TreeMap<>();
        recorded.forEach((k, v) -> merged.put((String) k, (String) v));
        boolean changed = false;
        for (Map.Entry<String, HashScheme> e : wanted.entrySet()) {
            String was = merged.get(e.getKey());
            if (was == null && legacy) {
                was = HashScheme.MLKV_V1.toString();
                merged.put(e.getKey(), was);
                changed = true;
            }
            if (was == null) {
                merged.put(e.getKey(), e.getValue().toString());
                changed = true;
            } else if (!HashScheme.parse(was).equals(e.getValue())) {
                throw new IllegalArgumentException("partition '" + e.getKey() + "' was created with hash scheme " + was
                        + " (" + file + "); this server asks for " + e.getValue() + ": serve it with " + was
                        + ", or use a new partition key or data directory");
            }
        }
        return changed ? merged : null;
    }

    /** Writes what {@link #check} returned (atomically: a temporary file renamed over the old). */
    static void record(Path dataDir, Map<String, String> schemes) {
        write(dataDir.resolve(FILE), schemes);
    }

    private static boolean hasEntries(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.findAny().isPresent();
        }
    }

    private static void write(Path file, Map<String, String> schemes) {
        Properties p = new Properties();
        p.putAll(schemes);
        try {
            Files.createDirectories(file.getParent());
            Path tmp = file.resolveSibling(FILE + ".tmp");
            try (Writer w = Files.newBufferedWriter(tmp, StandardCharsets.UTF_8)) {
                p.store(w, "hash scheme of each partition, fixed at its creation");
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
