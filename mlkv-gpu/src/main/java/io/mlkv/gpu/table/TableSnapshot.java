package io.mlkv.gpu.table;

import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cufile.DeviceFileIo;
import io.mlkv.gpu.cufile.DeviceRegion;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import jcuda.driver.CUdeviceptr;

/**
 * A {@link GpuHashTable}'s entries as files, moved straight between HBM and disk: the table is
 * exported into device buffers, which go to {@code keys.bin} (int64) and {@code values.bin}
 * (dim float32 per key, same order) over a {@link DeviceFileIo} (cuFile or POSIX);
 * {@code table.properties} (written last) gives dim and count. Loading reads the files into
 * device buffers and inserts them spread over buckets ({@link GpuHashTable#insertOrAssignExported});
 * scores are not kept (entries enter with the scores of a few batches). Integrity checks (sizes, checksums) belong to the caller's manifest; a file of the wrong
 * length is refused here too.
 */
public final class TableSnapshot {
    private static final String PROPERTIES = "table.properties";
    private static final long EXPORT_WINDOW = 1L << 20;

    private TableSnapshot() {
    }

    /**
     * Writes every entry of {@code table} into {@code dir} (created). The table must not change
     * meanwhile.
     *
     * @return entries written
     */
    public static long write(GpuHashTable table, Path dir, DeviceFileIo io) throws IOException {
        Files.createDirectories(dir);
        long n = table.size();
        long rowBytes = table.dim() * 4L;
        table.makeDeviceCurrent();
        try (DeviceMemory keys = new DeviceMemory(Math.max(8, n * 8), "table snapshot keys");
             DeviceMemory values = new DeviceMemory(Math.max(4, n * rowBytes), "table snapshot values")) {
            long written = 0;
            for (long off = 0; off < table.capacity() && written < n; off += EXPORT_WINDOW) {
                // An unchanging table has n entries in all, so no window writes past the buffers.
                long count = Math.min(EXPORT_WINDOW, table.capacity() - off);
                written += table.exportBatch(off, count, keys.at(written * 8), values.at(written * rowBytes), null);
            }
            if (written != n) {
                throw new MlkvException(StatusCode.DEVICE_ERROR, "table snapshot export", "exported " + written
                        + " entries of " + n);
            }
            table.makeDeviceCurrent();
            io.write(new DeviceRegion(keys.pointer(), n * 8), dir.resolve("keys.bin"));
            io.write(new DeviceRegion(values.pointer(), n * rowBytes), dir.resolve("values.bin"));
        }
        Files.writeString(dir.resolve(PROPERTIES), "dim=" + table.dim() + "\nentries=" + n + "\n");
        return n;
    }

    /**
     * Inserts the entries of a snapshot in {@code dir} into {@code table}.
     *
     * @return entries loaded
     * @throws MlkvException {@code INCOMPATIBLE_FORMAT} for another dim, {@code CORRUPTION} for a
     *                       file of the wrong length
     */
    public static long load(GpuHashTable table, Path dir, DeviceFileIo io) throws IOException {
        table.makeDeviceCurrent();
        return read(dir, table.dim(), io, table::insertOrAssignExported);
    }

    /** What takes a snapshot's entries once they are in device memory. */
    @FunctionalInterface
    public interface Entries {
        /** {@code n} keys (int64) and their rows, grouped by the bucket they were exported from. */
        void accept(CUdeviceptr keys, CUdeviceptr values, long n);
    }

    /**
     * Reads the entries of a snapshot in {@code dir} into memory of the current device and hands
     * them to {@code into}; the buffers are freed when it returns.
     *
     * @return entries read
     * @throws MlkvException {@code INCOMPATIBLE_FORMAT} if the snapshot's dim is not {@code dim},
     *                       {@code CORRUPTION} for a file of the wrong length
     */
    public static long read(Path dir, int dim, DeviceFileIo io, Entries into) throws IOException {
        Properties props = new Properties();
        try (Reader r = Files.newBufferedReader(dir.resolve(PROPERTIES))) {
            props.load(r);
        }
        int savedDim = Integer.parseInt(props.getProperty("dim", "-1"));
        long n = Long.parseLong(props.getProperty("entries", "-1"));
        if (savedDim != dim || n < 0) {
            throw new MlkvException(StatusCode.INCOMPATIBLE_FORMAT, "load " + dir, "entries of dim " + savedDim
                    + " (count " + n + "), the table has dim " + dim);
        }
        if (n == 0) {
            return 0;
        }
        long rowBytes = dim * 4L;
        try (DeviceMemory keys = new DeviceMemory(n * 8, "table snapshot keys");
             DeviceMemory values = new DeviceMemory(n * rowBytes, "table snapshot values")) {
            io.read(dir.resolve("keys.bin"), new DeviceRegion(keys.pointer(), n * 8));
            io.read(dir.resolve("values.bin"), new DeviceRegion(values.pointer(), n * rowBytes));
            into.accept(keys.pointer(), values.pointer(), n);
        }
        return n;
    }
}
