package io.mlkv.storage;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * Makes files and directory entries durable. A file's data survives power loss only once the
 * file is fsynced, and its name only once its directory is; a write that is to appear whole or not
 * at all is made durable under a temporary name and then renamed, and the rename itself is made
 * durable by fsyncing the directory that holds it. {@link #OS} does it for real; tests pass a
 * recording implementation to check the order.
 */
public interface FileSync {
    /** Fsyncs a regular file's data and metadata. */
    void file(Path file) throws IOException;

    /** Fsyncs a directory, making the names created, renamed or removed in it durable. */
    void directory(Path dir) throws IOException;

    /** The operating system's fsync. */
    FileSync OS = new FileSync() {
        @Override
        public void file(Path file) throws IOException {
            try (FileChannel c = FileChannel.open(file, StandardOpenOption.READ)) {
                c.force(true);
            }
        }

        @Override
        public void directory(Path dir) throws IOException {
            try (FileChannel c = FileChannel.open(dir, StandardOpenOption.READ)) {
                c.force(true);
            }
        }
    };

    /** Fsyncs every file under {@code root}, then every directory, deepest first, {@code root} last. */
    default void tree(Path root) throws IOException {
        List<Path> all;
        try (Stream<Path> s = Files.walk(root)) {
            all = s.sorted(Comparator.reverseOrder()).toList();
        }
        for (Path p : all) {
            if (Files.isRegularFile(p)) {
                file(p);
            }
        }
        for (Path p : all) {
            if (Files.isDirectory(p)) {
                directory(p);
            }
        }
    }
}
