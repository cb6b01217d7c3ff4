package io.mlkv.gpu.cufile;

import java.nio.ByteBuffer;

/** A region of host memory: a direct {@link ByteBuffer}. Not thread-safe for overlapping copies. */
public final class HostRegion implements Region {
    private final ByteBuffer memory;

    /** @param memory a direct buffer; positions 0 to capacity are the region */
    public HostRegion(ByteBuffer memory) {
        if (!memory.isDirect()) {
            throw new IllegalArgumentException("HostRegion needs a direct buffer");
        }
        this.memory = memory.duplicate().clear();
    }

    /** The bytes {@code [offset, offset + len)} of the region as a buffer of their own (shared content). */
    ByteBuffer view(long offset, int len) {
        return memory.duplicate().limit((int) offset + len).position((int) offset);
    }

    @Override
    public long bytes() {
        return memory.capacity();
    }

    @Override
    public void copyOut(long offset, ByteBuffer dst, int len) {
        dst.clear().put(0, memory, (int) offset, len);
    }

    @Override
    public void copyIn(ByteBuffer src, long offset, int len) {
        memory.put((int) offset, src, 0, len);
    }

    @Override
    public Bounce bounce(int bytes) {
        ByteBuffer b = ByteBuffer.allocateDirect(bytes);
        return new Bounce() {
            @Override
            public ByteBuffer buffer() {
                return b;
            }

            @Override
            public void close() {
                // Heap-managed direct buffer: freed by the collector.
            }
        };
    }
}
