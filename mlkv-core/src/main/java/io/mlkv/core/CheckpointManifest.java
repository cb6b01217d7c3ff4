package io.mlkv.core;

import io.mlkv.storage.FileSync;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.CRC32C;

/**
 * The {@value #FILE_NAME} file that completes a checkpoint: one line per file of the checkpoint
 * with its relative path, size and CRC-32C. It is written last, by atomic rename, so a checkpoint
 * without it was cut off; and a file whose size or checksum differs was damaged later. Either way
 * the checkpoint is refused before anything is copied.
 */
final class CheckpointManifest {
    static final String FILE_NAME = "MLKV-CHECKPOINT";
    private static final String HEADER = "# MLKV checkpoint manifest v1: path size crc32c";

    private CheckpointManifest() {
    }

    /**
     * Lists and checksums every file under {@code dir}, fsyncs them and their directories, then
     * writes the manifest under a temporary name, fsyncs it, renames it into place and fsyncs
     * {@code dir} and its parent: once this returns, the whole checkpoint survives power loss, and
     * a crash before it leaves no manifest, so the checkpoint is refused as cut off.
     */
    static void write(Path dir, FileSync sync) throws IOException {
        List<String> lines = new ArrayList<>();
        lines.add(HEADER);
        for (Path file : files(dir)) {
            lines.add(dir.relativize(file).toString().replace('\\', '/') + " " + Files.size(file) + " "
                    + Long.toHexString(crc(file)));
        }
        Path tmp = dir.resolve(FILE_NAME + ".tmp");
        try (BufferedWriter w = Files.newBufferedWriter(tmp, StandardCharsets.UTF_8)) {
            for (String line : lines) {
                w.write(line);
                w.newLine();
            }
        }
        sync.tree(dir);
        Files.move(tmp, dir.resolve(FILE_NAME), StandardCopyOption.ATOMIC_MOVE);
        sync.directory(dir);
        sync.directory(dir.getParent());
    }

    /**
     * Checks every file the manifest lists.
     *
     * @return the listed files, relative to {@code dir}
     * @throws MlkvException {@code CORRUPTION} naming the first missing, truncated or altered file,
     *                       or the missing manifest
     */
    static List<Path> verify(Path dir) {
        Path manifest = dir.resolve(FILE_NAME);
        String op = "verify checkpoint " + dir;
        if (!Files.isRegularFile(manifest)) {
            throw new MlkvException(StatusCode.CORRUPTION, op, "no " + FILE_NAME
                    + " file: the checkpoint is incomplete (cut off while being written) or not a checkpoint");
        }
        List<Path> listed = new ArrayList<>();
        try {
            List<String> lines = Files.readAllLines(manifest, StandardCharsets.UTF_8);
            if (lines.isEmpty() || !lines.get(0).equals(HEADER)) {
                throw new MlkvException(StatusCode.CORRUPTION, op, FILE_NAME + " has an unknown header");
            }
            for (String line : lines.subList(1, lines.size())) {
                String[] f = line.split(" ");
                if (f.length != 3) {
                    throw new MlkvException(StatusCode.CORRUPTION, op, "malformed manifest line '" + line + "'");
                }
                Path file = dir.resolve(f[0]).normalize();
                if (!file.startsWith(dir)) {
                    throw new MlkvException(StatusCode.CORRUPTION, op, "manifest names a file outside the checkpoint: " + f[0]);
                }
                if (!Files.isRegularFile(file)) {
                    throw new MlkvException(StatusCode.CORRUPTION, op, "file " + f[0] + " is missing");
                }
                long size = Files.size(file);
                if (size != Long.parseLong(f[1])) {
                    throw new MlkvException(StatusCode.CORRUPTION, op, "file " + f[0] + " is " + size
                            + " bytes, the manifest says " + f[1] + " (truncated or altered)");
                }
                if (crc(file) != Long.parseUnsignedLong(f[2], 16)) {
                    throw new MlkvException(StatusCode.CORRUPTION, op, "file " + f[0] + " fails its CRC-32C check");
                }
                listed.add(dir.relativize(file));
            }
        } catch (IOException | NumberFormatException e) {
            throw new MlkvException(StatusCode.CORRUPTION, op, e.getClass().getSimpleName(), e.getMessage(), e);
        }
        return listed;
    }

    private static List<Path> files(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).sorted().toList();
        }
    }

    private static long crc(Path file) throws IOException {
        CRC32C crc = new CRC32C();
        byte[] buf = new byte[1 << 16];
        try (InputStream in = Files.newInputStream(file)) {
            int n;
            while ((n = in.read(buf)) > 0) {
                crc.update(buf, 0, n);
            }
        }
        return crc.getValue();
    }
}
