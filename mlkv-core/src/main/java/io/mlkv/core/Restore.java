package io.mlkv.core;

import io.mlkv.storage.FileSync;
import io.mlkv.storage.FileTrees;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Restores a checkpoint all or nothing; see {@link MlkvStore#restoreCheckpoint(Path, Path)}, whose
 * Javadoc states the protocol. {@code sync} is the operating system's fsync, or a test's recorder.
 */
final class Restore {
    private static final Logger LOG = LoggerFactory.getLogger(Restore.class);

    private Restore() {
    }

    static void restore(Path checkpoint, Path directory, FileSync sync) {
        if (checkpoint == null || directory == null) {
            throw new IllegalArgumentException("restoreCheckpoint: checkpoint and directory must not be null");
        }
        Path from = checkpoint.toAbsolutePath().normalize();
        Path to = directory.toAbsolutePath().normalize();
        List<Path> files = CheckpointManifest.verify(from);
        Path parent = to.getParent();
        String prefix = "." + to.getFileName() + ".restoring-";
        Path staging = parent.resolve(prefix + ProcessHandle.current().pid() + "-" + System.nanoTime());
        try {
            if (Files.exists(to)) {
                try (Stream<Path> s = Files.list(to)) {
                    if (s.findAny().isPresent()) {
                        throw new IllegalArgumentException("restoreCheckpoint: " + to + " is not empty");
                    }
                }
            }
            Files.createDirectories(parent);
            removeStaleStaging(parent, prefix);
            Files.createDirectories(staging);
            for (Path rel : files) {
                Path dst = staging.resolve(rel.toString());
                Files.createDirectories(dst.getParent());
                Files.copy(from.resolve(rel), dst);
            }
            // Every file, then every directory, deepest first.
            sync.tree(staging);
            Files.move(staging, to, StandardCopyOption.ATOMIC_MOVE);
            sync.directory(parent);
        } catch (IOException e) {
            try {
                FileTrees.delete(staging);
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw new MlkvException(StatusCode.IO_ERROR, "restore " + from + " into " + to, e.getClass().getSimpleName(),
                    e.getMessage(), e);
        }
    }

    /** Removes staging directories that restores into the same directory left behind when killed. */
    private static void removeStaleStaging(Path parent, String prefix) throws IOException {
        try (Stream<Path> s = Files.list(parent)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith(prefix)).toList()) {
                LOG.info("removing {}, left by an interrupted restore", p);
                FileTrees.delete(p);
            }
        }
    }

}
