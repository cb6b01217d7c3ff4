package io.mlkv.storage.rocksdb;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Properties;
import java.util.stream.Stream;

/**
 * The {@value #FILE_NAME} file that marks a directory as an MLKV store and records what its
 * values are. It is checked before RocksDB opens anything, so a store reopened with another
 * dimension fails without touching the directory.
 */
final class StoreFormat {
    static final String FILE_NAME = "MLKV-FORMAT";
    static final int FORMAT_VERSION = 1;
    static final String ELEMENT_TYPE = "float32";

    private StoreFormat() {
    }

    /** Creates the marker in a new or empty directory, or checks the one already there. */
    static void createOrCheck(Path dir, int dim) {
        Path file = dir.resolve(FILE_NAME);
        try {
            if (Files.exists(file)) {
                check(file, dim);
                return;
            }
            Files.createDirectories(dir);
            if (!isEmpty(dir)) {
                throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, "open " + dir,
                        "directory is not empty and has no " + FILE_NAME
                                + " file, so it is not an MLKV store; choose an empty directory");
            }
            Properties p = new Properties();
            p.setProperty("format", Integer.toString(FORMAT_VERSION));
            p.setProperty("elementType", ELEMENT_TYPE);
            p.setProperty("dim", Integer.toString(dim));
            Path tmp = dir.resolve(FILE_NAME + ".tmp");
            try (OutputStream out = Files.newOutputStream(tmp)) {
                p.store(out, "MLKV store format; do not edit");
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "open " + dir, e.getClass().getSimpleName(),
                    "cannot create or read " + file + ": " + e.getMessage(), e);
        }
    }

    /** Checks the marker if {@code dir} has one; reads only. */
    static void checkIfPresent(Path dir, int dim) {
        Path file = dir.resolve(FILE_NAME);
        if (!Files.isRegularFile(file)) {
            return;
        }
        try {
            check(file, dim);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "open " + dir, e.getClass().getSimpleName(),
                    "cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    /** The dimension recorded in {@code dir}'s marker. */
    static int readDim(Path dir) {
        Path file = dir.resolve(FILE_NAME);
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            p.load(in);
            return Integer.parseInt(p.getProperty("dim"));
        } catch (IOException | NumberFormatException e) {
            throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, "read " + file, e.getClass().getSimpleName(),
                    "cannot read the store's dimension: " + e.getMessage(), e);
        }
    }

    private static void check(Path file, int dim) throws IOException {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            p.load(in);
        }
        String op = "open " + file.getParent();
        String format = p.getProperty("format");
        if (!Integer.toString(FORMAT_VERSION).equals(format)) {
            throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, op, "store format " + format
                    + " is not supported by this version, which reads format " + FORMAT_VERSION);
        }
        String type = p.getProperty("elementType");
        if (!ELEMENT_TYPE.equals(type)) {
            throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, op,
                    "store holds " + type + " values; this version supports " + ELEMENT_TYPE);
        }
        String stored = p.getProperty("dim");
        if (!Integer.toString(dim).equals(stored)) {
            throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, op, "store holds vectors of dim "
                    + stored + " but dim " + dim + " was asked for; open it with dim " + stored);
        }
    }

    private static boolean isEmpty(Path dir) throws IOException {
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.noneMatch(p -> !p.getFileName().toString().equals(DirectoryLock.FILE_NAME));
        }
    }
}
