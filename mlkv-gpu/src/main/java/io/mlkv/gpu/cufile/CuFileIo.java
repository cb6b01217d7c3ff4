package io.mlkv.gpu.cufile;

import static jcuda.driver.JCudaDriver.cuCtxGetCurrent;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import jcuda.driver.CUcontext;

/**
 * GPUDirect Storage: {@code cuFileWrite}/{@code cuFileRead} between device memory and files,
 * through {@code libcufile.so.0} loaded at run time. {@link #open()} fails, with the reason, where
 * the library or the driver is missing; {@link #write}/{@link #read} throw {@code DEVICE_ERROR}
 * naming {@code cuFileHandleRegister} and its code when cuFile refuses a file (for example a file
 * system it cannot handle); {@link FileIo} then takes the POSIX path instead. Files are opened with O_DIRECT where the file
 * system allows it. The CUDA context of the memory must be current on the calling thread.
 */
public final class CuFileIo implements DeviceFileIo {
    /** The library loaded with dlopen. */
    public static final String LIBRARY = "libcufile.so.0";
    private static final long CHUNK = 32L << 20;
    private static final int THREADS = 4;
    private final ExecutorService workers = Executors.newFixedThreadPool(THREADS, r -> {
        Thread t = new Thread(r, "mlkv-cufile");
        t.setDaemon(true);
        return t;
    });
    private final AtomicBoolean closed = new AtomicBoolean();

    private CuFileIo() {
    }

    /**
     * Loads the binding and the library and opens the cuFile driver.
     *
     * @throws MlkvException {@code DEVICE_ERROR} saying what is missing or which call failed with which code
     */
    public static CuFileIo open() {
        String why = CuFileNative.loadJni();
        if (why != null) {
            throw new MlkvException(StatusCode.DEVICE_ERROR, "load the cuFile binding", why);
        }
        String loadError = CuFileNative.load(LIBRARY);
        if (loadError != null) {
            throw new MlkvException(StatusCode.DEVICE_ERROR, "load " + LIBRARY, loadError);
        }
        long st = CuFileNative.driverOpen();
        if (st != 0) {
            throw new MlkvException(StatusCode.DEVICE_ERROR, "cuFileDriverOpen", CuFileStatus.packed(st),
                    "cuFile driver did not open", null);
        }
        return new CuFileIo();
    }

    @Override
    public String lastPath() {
        return "cufile";
    }

    @Override
    public void write(Region source, Path file) {
        refused(tryTransfer(source, file, true), file);
    }

    @Override
    public void read(Path file, Region target) {
        refused(tryTransfer(target, file, false), file);
    }

    private static void refused(String code, Path file) {
        if (code != null) {
            throw new MlkvException(StatusCode.DEVICE_ERROR, "cuFileHandleRegister " + file, code,
                    "cuFile refused the file", null);
        }
    }

    /**
     * Moves the data, or returns why cuFile refused the file (its handle registration failed)
     * before anything was moved; other failures throw.
     */
    String tryTransfer(Region region, Path file, boolean write) {
        if (!(region instanceof DeviceRegion device)) {
            throw new IllegalArgumentException("cuFile moves device memory only; use PosixFileIo for host memory");
        }
        if (closed.get()) {
            throw new IllegalStateException("CuFileIo is closed");
        }
        String path = file.toAbsolutePath().toString();
        if (!write) {
            long size = file.toFile().length();
            if (size != region.bytes()) {
                throw new MlkvException(StatusCode.CORRUPTION, "read " + file, "file is " + size + " bytes, expected "
                        + region.bytes() + " (truncated or not this data)");
            }
        }
        int fd = CuFileNative.openFile(path, write, true);
        if (fd == -22) { // EINVAL: the file system does not take O_DIRECT (tmpfs); cuFile's compat mode still works
            fd = CuFileNative.openFile(path, write, false);
        }
        if (fd < 0) {
            throw new MlkvException(StatusCode.IO_ERROR, "open " + file, CuFileStatus.ioError(fd), "cannot open", null);
        }
        boolean ok = false;
        try {
            long[] handle = new long[1];
            long st = CuFileNative.handleRegister(fd, handle);
            if (st != 0) {
                return CuFileStatus.packed(st);
            }
            try {
                transferChunks(handle[0], CuFileNative.address(device.base()), region.bytes(), file, write);
            } finally {
                CuFileNative.handleDeregister(handle[0]);
            }
            ok = true;
            return null;
        } finally {
            int rc = CuFileNative.closeFile(fd, write && ok);
            if (rc != 0 && ok) {
                throw new MlkvException(StatusCode.IO_ERROR, (write ? "fsync/close " : "close ") + file,
                        CuFileStatus.ioError(rc), "cannot close", null);
            }
        }
    }

    /**
     * Moves the region in {@value #CHUNK}-byte chunks, {@value #THREADS} at a time: each worker
     * takes the next chunk and loops until it has moved all of it (cuFile may move fewer bytes
     * than asked). Workers run with the caller's CUDA context current.
     */
    private void transferChunks(long handle, long address, long bytes, Path file, boolean write) {
        String op = write ? "cuFileWrite" : "cuFileRead";
        CUcontext ctx = new CUcontext();
        Cuda.check(cuCtxGetCurrent(ctx), "cuCtxGetCurrent");
        long chunks = (bytes + CHUNK - 1) / CHUNK;
        AtomicLong next = new AtomicLong();
        List<Future<?>> running = new ArrayList<>();
        for (int t = 0; t < Math.min(THREADS, chunks); t++) {
            running.add(workers.submit(() -> {
                Cuda.check(cuCtxSetCurrent(ctx), "cuCtxSetCurrent (cuFile worker)");
                for (long c; (c = next.getAndIncrement()) < chunks; ) {
                    long start = c * CHUNK;
                    long end = Math.min(bytes, start + CHUNK);
                    for (long off = start; off < end; ) {
                        long len = end - off;
                        long n = write ? CuFileNative.write(handle, address, len, off, off)
                                : CuFileNative.read(handle, address, len, off, off);
                        if (n <= 0) {
                            throw new MlkvException(StatusCode.IO_ERROR, op + " " + file + " (" + len + " bytes at " + off + ")",
                                    n == 0 ? "0 bytes moved" : CuFileStatus.ioError(n), "cuFile I/O failed", null);
                        }
                        off += n;
                    }
                }
                return null;
            }));
        }
        RuntimeException failure = null;
        for (Future<?> f : running) {
            try {
                f.get();
            } catch (ExecutionException e) {
                RuntimeException cause = e.getCause() instanceof RuntimeException r ? r
                        : new MlkvException(StatusCode.IO_ERROR, op + " " + file, e.getCause().toString());
                if (failure == null) {
                    failure = cause;
                } else {
                    failure.addSuppressed(cause);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                failure = new MlkvException(StatusCode.IO_ERROR, op + " " + file, "interrupted");
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Closes the cuFile driver. Idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            workers.shutdownNow();
            long st = CuFileNative.driverClose();
            if (st != 0) {
                throw new MlkvException(StatusCode.DEVICE_ERROR, "cuFileDriverClose", CuFileStatus.packed(st),
                        "cuFile driver did not close", null);
            }
        }
    }
}
