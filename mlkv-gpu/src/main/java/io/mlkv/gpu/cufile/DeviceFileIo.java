package io.mlkv.gpu.cufile;

import java.nio.file.Path;

/**
 * Moves a whole {@link Region} to a file and back. Implementations: {@link CuFileIo} (GPUDirect
 * Storage, device memory only), {@link PosixFileIo} (parallel positional I/O through bounce
 * buffers, any region) and the one {@link FileIo#open} returns, which uses cuFile where it can and
 * falls back to POSIX where it cannot.
 */
public interface DeviceFileIo extends AutoCloseable {
    /**
     * Writes the region to {@code file} (created or replaced) and forces it to the device.
     *
     * @throws io.mlkv.storage.MlkvException {@code IO_ERROR} or {@code DEVICE_ERROR} naming the call and code
     */
    void write(Region source, Path file);

    /**
     * Reads {@code file}, which must be exactly as long as the region, into the region.
     *
     * @throws io.mlkv.storage.MlkvException {@code CORRUPTION} if the file's length differs,
     *                                       {@code IO_ERROR} or {@code DEVICE_ERROR} otherwise
     */
    void read(Path file, Region target);

    /** Which path moved the data of the last call, for logs and benchmarks. */
    String lastPath();

    @Override
    void close();
}
