package io.mlkv.gpu.cufile;

import static jcuda.driver.JCudaDriver.cuCtxGetCurrent;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;

import io.mlkv.gpu.cuda.Cuda;
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
import jcuda.driver.CUcontext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One open file for positional reads and writes of small pieces (rows of a value log), between
 * the file and device or host memory. Device memory moves through cuFile (GPUDirect Storage)
 * where cuFile is present and accepts the file, registered once at open; otherwise, and for host
 * memory, through a {@link FileChannel} and bounce buffers. Which path device memory takes is
 * decided at open ({@link #path()}) and logged. The file is created empty (truncated) at open and
 * is not forced to the device: it is scratch space, not a durable record. Thread-safe; reads and
 * writes of disjoint ranges may run at once.
 */
public final class BlockFile implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BlockFile.class);
    /** Below this many rows a gather read runs on the calling thread. */
    private static final int PARALLEL_ROWS = 64;
    private static final int THREADS = 4;

    private final Path file;
    private final FileChannel channel;
    private final CuFileIo cufile;
    private final int fd;
    private final long handle;
    private final String cufileUnavailable;
    private final ExecutorService workers;
    private final AtomicBoolean closed = new AtomicBoolean();

    private BlockFile(Path file, FileChannel channel, CuFileIo cufile, int fd, long handle, String unavailable) {
        this.file = file;
        this.channel = channel;
        this.cufile = cufile;
        this.fd = fd;
        this.handle = handle;
        this.cufileUnavailable = unavailable;
        this.workers = Executors.newFixedThreadPool(THREADS, r -> {
            Thread t = new Thread(r, "mlkv-block-file");
            t.setDaemon(true);
            return t;
        });
    }

    /**
     * Creates (or truncates) {@code file} and opens it. With {@link FileIo.Mode#AUTO} device memory
     * uses cuFile if it opens and registers the file, POSIX otherwise; {@link FileIo.Mode#CUFILE}
     * fails instead of falling back; {@link FileIo.Mode#POSIX} never tries cuFile.
     *
     * @throws MlkvException {@code IO_ERROR} if the file cannot be created, {@code DEVICE_ERROR}
     *                       in {@code CUFILE} mode when cuFile is missing or refuses the file
     */
    public static BlockFile create(Path file, FileIo.Mode mode) {
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "create " + file, e.getClass().getSimpleName(), e.getMessage(), e);
        }
        if (mode == FileIo.Mode.POSIX) {
            LOG.info("{}: POSIX path (chosen)", file);
            return new BlockFile(file, ch, null, -1, 0, "POSIX chosen");
        }
        String why;
        CuFileIo c = null;
        try {
            c = CuFileIo.open();
            int fd = CuFileNative.openFile(file.toAbsolutePath().toString(), true, false);
            if (fd < 0) {
                throw new MlkvException(StatusCode.IO_ERROR, "open " + file, CuFileStatus.ioError(fd), "cannot open", null);
            }
            long[] h = new long[1];
            long st = CuFileNative.handleRegister(fd, h);
            if (st == 0) {
                LOG.info("{}: cuFile (GPUDirect Storage) for device memory", file);
                return new BlockFile(file, ch, c, fd, h[0], null);
            }
            CuFileNative.closeFile(fd, false);
            why = "cuFileHandleRegister: " + CuFileStatus.packed(st);
        } catch (MlkvException e) {
            why = e.getMessage();
        }
        if (c != null) {
            c.close();
        }
        if (mode == FileIo.Mode.CUFILE) {
            closeQuietly(ch);
            throw new MlkvException(StatusCode.DEVICE_ERROR, "open " + file + " for cuFile", why);
        }
        LOG.info("{}: POSIX path (cuFile not used: {})", file, why);
        return new BlockFile(file, ch, null, -1, 0, why);
    }

    /** {@code cufile} or {@code posix}: the path device memory takes. */
    public String path() {
        return cufile != null ? "cufile" : "posix";
    }

    /** Null when device memory moves through cuFile, otherwise why not. */
    public String cufileUnavailable() {
        return cufileUnavailable;
    }

    /** Writes {@code len} bytes at {@code srcOffset} of {@code src} to the file at {@code fileOffset}. */
    public void write(long fileOffset, Region src, long srcOffset, long len) {
        checkOpen();
        if (len == 0) {
            return;
        }
        if (cufile != null && src instanceof DeviceRegion d) {
            long addr = CuFileNative.address(d.base());
            for (long done = 0; done < len; ) {
                long n = CuFileNative.write(handle, addr, len - done, fileOffset + done, srcOffset + done);
                if (n <= 0) {
                    throw ioFailure("cuFileWrite", len - done, fileOffset + done, n);
                }
                done += n;
            }
            return;
        }
        if (src instanceof HostRegion h) {
            pwriteFully(h.view(srcOffset, Math.toIntExact(len)), fileOffset);
            return;
        }
        int chunk = (int) Math.min(len, 8 << 20);
        try (Region.Bounce b = src.bounce(chunk)) {
            for (long done = 0; done < len; done += chunk) {
                int n = (int) Math.min(chunk, len - done);
                src.copyOut(srcOffset + done, b.buffer(), n);
                pwriteFully(b.buffer().duplicate().position(0).limit(n), fileOffset + done);
            }
        }
    }

    private void pwriteFully(ByteBuffer view, long pos) {
        long start = pos;
        try {
            while (view.hasRemaining()) {
                pos += channel.write(view, pos);
            }
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "pwrite " + file + " (" + view.remaining() + " bytes left of a write at "
                    + start + ")", e.getClass().getSimpleName(), e.getMessage(), e);
        }
    }

    /**
     * Reads {@code count} pieces of {@code rowBytes} bytes, piece {@code i} from
     * {@code fileOffsets[i]}, into {@code target} at {@code i * rowBytes}. Runs of pieces that lie
     * back to back in the file are read with one call.
     */
    public void readRows(long[] fileOffsets, int count, int rowBytes, Region target) {
        checkOpen();
        if (count == 0) {
            return;
        }
        if (cufile != null && target instanceof DeviceRegion d) {
            long addr = CuFileNative.address(d.base());
            inParallel(count, (from, to) -> {
                for (int i = from; i < to; ) {
                    int run = runLength(fileOffsets, i, to, rowBytes);
                    long len = (long) run * rowBytes;
                    for (long done = 0; done < len; ) {
                        long n = CuFileNative.read(handle, addr, len - done, fileOffsets[i] + done,
                                (long) i * rowBytes + done);
                        if (n <= 0) {
                            throw ioFailure("cuFileRead", len - done, fileOffsets[i] + done, n);
                        }
                        done += n;
                    }
                    i += run;
                }
            }, true);
            return;
        }
        long total = (long) count * rowBytes;
        if (total > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("readRows: " + total + " bytes in one call, at most " + Integer.MAX_VALUE);
        }
        if (target instanceof HostRegion h) {
            inParallel(count, (from, to) -> {
                for (int i = from; i < to; ) {
                    int run = runLength(fileOffsets, i, to, rowBytes);
                    preadFully(h.view((long) i * rowBytes, run * rowBytes), fileOffsets[i]);
                    i += run;
                }
            }, false);
            return;
        }
        try (Region.Bounce b = target.bounce((int) total)) {
            ByteBuffer buf = b.buffer();
            inParallel(count, (from, to) -> {
                for (int i = from; i < to; ) {
                    int run = runLength(fileOffsets, i, to, rowBytes);
                    preadFully(buf.duplicate().limit((i + run) * rowBytes).position(i * rowBytes), fileOffsets[i]);
                    i += run;
                }
            }, false);
            target.copyIn(buf, 0, (int) total);
        }
    }

    /** Reads {@code dst.remaining()} bytes at {@code fileOffset} into host memory. */
    public void read(long fileOffset, ByteBuffer dst) {
        checkOpen();
        preadFully(dst, fileOffset);
    }

    private static int runLength(long[] offsets, int from, int to, int rowBytes) {
        int run = 1;
        while (from + run < to && offsets[from + run] == offsets[from + run - 1] + rowBytes) {
            run++;
        }
        return run;
    }

    private void preadFully(ByteBuffer view, long pos) {
        try {
            while (view.hasRemaining()) {
                int n = channel.read(view, pos);
                if (n < 0) {
                    throw new MlkvException(StatusCode.CORRUPTION, "pread " + file, "end of file at " + pos
                            + " (the file is shorter than what was written to it)");
                }
                pos += n;
            }
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "pread " + file + " at " + pos, e.getClass().getSimpleName(),
                    e.getMessage(), e);
        }
    }

    private interface RangeTask {
        void run(int from, int to);
    }

    /** Runs {@code task} over {@code [0, count)} cut into {@value #THREADS} ranges (one range if small). */
    private void inParallel(int count, RangeTask task, boolean cudaContext) {
        if (count < PARALLEL_ROWS) {
            task.run(0, count);
            return;
        }
        CUcontext ctx = null;
        if (cudaContext) {
            ctx = new CUcontext();
            Cuda.check(cuCtxGetCurrent(ctx), "cuCtxGetCurrent");
        }
        CUcontext current = ctx;
        int per = (count + THREADS - 1) / THREADS;
        List<Future<?>> parts = new ArrayList<>();
        for (int from = per; from < count; from += per) {
            int f = from;
            int t = Math.min(count, from + per);
            parts.add(workers.submit(() -> {
                if (current != null) {
                    Cuda.check(cuCtxSetCurrent(current), "cuCtxSetCurrent (block file worker)");
                }
                task.run(f, t);
                return null;
            }));
        }
        RuntimeException failure = null;
        try {
            task.run(0, Math.min(count, per));
        } catch (RuntimeException e) {
            failure = e;
        }
        for (Future<?> p : parts) {
            try {
                p.get();
            } catch (ExecutionException e) {
                RuntimeException cause = e.getCause() instanceof RuntimeException r ? r
                        : new MlkvException(StatusCode.IO_ERROR, "read " + file, e.getCause().toString());
                if (failure == null) {
                    failure = cause;
                } else {
                    failure.addSuppressed(cause);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                failure = new MlkvException(StatusCode.IO_ERROR, "read " + file, "interrupted");
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private MlkvException ioFailure(String call, long len, long at, long result) {
        return new MlkvException(StatusCode.IO_ERROR, call + " " + file + " (" + len + " bytes at " + at + ")",
                result == 0 ? "0 bytes moved" : CuFileStatus.ioError(result), "cuFile I/O failed", null);
    }

    private void checkOpen() {
        if (closed.get()) {
            throw new IllegalStateException("BlockFile " + file + " is closed");
        }
    }

    private static void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // Nothing was written through it.
        }
    }

    /** Deregisters the cuFile handle, closes the file and the cuFile driver. Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        workers.shutdownNow();
        MlkvException failure = null;
        if (cufile != null) {
            CuFileNative.handleDeregister(handle);
            int rc = CuFileNative.closeFile(fd, false);
            if (rc != 0) {
                failure = new MlkvException(StatusCode.IO_ERROR, "close " + file, CuFileStatus.ioError(rc), "cannot close", null);
            }
            try {
                cufile.close();
            } catch (MlkvException e) {
                failure = addTo(failure, e);
            }
        }
        try {
            channel.close();
        } catch (IOException e) {
            failure = addTo(failure, new MlkvException(StatusCode.IO_ERROR, "close " + file, e.toString()));
        }
        if (failure != null) {
            throw failure;
        }
    }

    private static MlkvException addTo(MlkvException first, MlkvException next) {
        if (first == null) {
            return next;
        }
        first.addSuppressed(next);
        return first;
    }
}
