package io.mlkv.gpu.cufile;

import java.nio.ByteBuffer;

/**
 * A contiguous range of memory that files are written from and read into: device memory
 * ({@link DeviceRegion}) or host memory ({@link HostRegion}, which lets the POSIX path run and be
 * tested without a GPU). Implementations copy between the region and host bounce buffers.
 */
public interface Region {
    /** Length in bytes. */
    long bytes();

    /** Copies {@code len} bytes at {@code offset} of the region to {@code dst[0, len)}. */
    void copyOut(long offset, ByteBuffer dst, int len);

    /** Copies {@code src[0, len)} to {@code offset} of the region. */
    void copyIn(ByteBuffer src, long offset, int len);

    /** A host buffer for staging, as fast to copy to and from as this region allows (pinned for device memory). */
    Bounce bounce(int bytes);

    /** A staging buffer and its owner. */
    interface Bounce extends AutoCloseable {
        ByteBuffer buffer();

        @Override
        void close();
    }
}
