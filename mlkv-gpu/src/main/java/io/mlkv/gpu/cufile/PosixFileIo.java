package io.mlkv.gpu.cufile;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Our own file path: the region is cut into chunks that travel through a ring of bounce buffers;
 * the calling thread copies between region and buffers while a small pool of I/O threads runs
 * positional reads and writes ({@code pread}/{@code pwrite} under {@link FileChannel}), so copies
 * and disk I/O overlap. Works for device and host regions. Thread-safe; calls may run at once.
 */
public final class PosixFileIo implements DeviceFileIo {
    private final int chunkBytes;
    private final int buffers;
    private final ExecutorService io;
    private final AtomicBoolean closed = new AtomicBoolean();

    /**
     * @param ioThreads  threads issuing reads and writes
     * @param chunkBytes bytes per I/O call and per bounce buffer
     * @param buffers    bounce buffers in the ring (at least 2, so copy and I/O overlap)
     */
    public PosixFileIo(int ioThreads, int chunkBytes, int buffers) {
        if (ioThreads < 1 || chunkBytes < 4096 || buffers < 2) {
            throw new IllegalArgumentException("PosixFileIo needs ioThreads >= 1, chunkBytes >= 4096 and buffers >= 2; got "
                    + ioThreads + ", " + chunkBytes + ", " + buffers);
        }
        this.chunkBytes = chunkBytes;
        this.buffers = buffers;
        this.io = Executors.newFixedThreadPool(ioThreads, r -> {
            Thread t = new Thread(r, "mlkv-file-io");
            t.setDaemon(true);
            return t;
        });
    }

    /** Four I/O threads, 16 MiB chunks, a ring of 6 buffers. */
    public PosixFileIo() {
        this(4, 16 << 20, 6);
    }

    @Override
    public String lastPath() {
        return "posix";
    }

    @Override
    public void write(Region source, Path file) {
        long total = source.bytes();
        List<Region.Bounce> ring = new ArrayList<>();
        List<Future<?>> pending = new ArrayList<>();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            for (int i = 0; i < buffers; i++) {
                ring.add(source.bounce((int) Math.min(chunkBytes, Math.max(1, total))));
                pending.add(null);
            }
            long offset = 0;
            for (int c = 0; offset < total; c++, offset += chunkBytes) {
                int slot = c % buffers;
                await(pending.get(slot), file);
                int len = (int) Math.min(chunkBytes, total - offset);
                ByteBuffer buf = ring.get(slot).buffer();
                source.copyOut(offset, buf, len);
                long at = offset;
                pending.set(slot, io.submit(() -> {
                    ByteBuffer view = buf.duplicate().position(0).limit(len);
                    long pos = at;
                    while (view.hasRemaining()) {
                        pos += ch.write(view, pos);
                    }
                    return null;
                }));
            }
            for (Future<?> f : pending) {
                await(f, file);
            }
            ch.force(true);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "write " + file, e.getClass().getSimpleName(), e.getMessage(), e);
        } finally {
            drain(pending);
            ring.forEach(Region.Bounce::close);
        }
    }

    @Override
    public void read(Path file, Region target) {
        long total = target.bytes();
        List<Region.Bounce> ring = new ArrayList<>();
        List<Future<?>> pending = new ArrayList<>();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size != total) {
                throw new MlkvException(StatusCode.CORRUPTION, "read " + file, "file is " + size
                        + " bytes, expected " + total + " (truncated or not this data)");
            }
            int chunks = (int) ((total + chunkBytes - 1) / chunkBytes);
            for (int i = 0; i < buffers; i++) {
                ring.add(target.bounce((int) Math.min(chunkBytes, Math.max(1, total))));
                pending.add(null);
            }
            for (int c = 0; c < Math.min(buffers, chunks); c++) {
                pending.set(c, submitRead(ch, ring.get(c).buffer(), c, total));
            }
            for (int c = 0; c < chunks; c++) {
                int slot = c % buffers;
                await(pending.get(slot), file);
                long offset = (long) c * chunkBytes;
                target.copyIn(ring.get(slot).buffer(), offset, (int) Math.min(chunkBytes, total - offset));
                int next = c + buffers;
                pending.set(slot, next < chunks ? submitRead(ch, ring.get(slot).buffer(), next, total) : null);
            }
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "read " + file, e.getClass().getSimpleName(), e.getMessage(), e);
        } finally {
            drain(pending);
            ring.forEach(Region.Bounce::close);
        }
    }

    private Future<?> submitRead(FileChannel ch, ByteBuffer buf, int chunk, long total) {
        long offset = (long) chunk * chunkBytes;
        int len = (int) Math.min(chunkBytes, total - offset);
        return io.submit(() -> {
            ByteBuffer view = buf.duplicate().position(0).limit(len);
            long pos = offset;
            while (view.hasRemaining()) {
                int n = ch.read(view, pos);
                if (n < 0) {
                    throw new IOException("unexpected end of file at " + pos);
                }
                pos += n;
            }
            return null;
        });
    }

    private static void await(Future<?> f, Path file) throws IOException {
        if (f == null) {
            return;
        }
        try {
            f.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new MlkvException(StatusCode.IO_ERROR, "I/O on " + file, e.getCause().toString());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MlkvException(StatusCode.IO_ERROR, "I/O on " + file, "interrupted");
        }
    }

    /** Waits for every I/O still using a bounce buffer, so none is freed under a running read or write. */
    private static void drain(List<Future<?>> pending) {
        for (Future<?> f : pending) {
            if (f != null) {
                try {
                    f.get();
                } catch (ExecutionException ignored) {
                    // Already reported by the call that failed first.
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            io.shutdownNow();
        }
    }
}
