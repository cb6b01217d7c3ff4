package io.mlkv.gpu.cufile;

import io.mlkv.storage.MlkvException;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The file path the store uses: cuFile (GPUDirect Storage) for device memory where cuFile is
 * present and takes the file, our POSIX path otherwise, with the same results either way. Which
 * path is in use is logged once, with the reason when it is not cuFile. Thread-safe.
 */
public final class FileIo implements DeviceFileIo {
    private static final Logger LOG = LoggerFactory.getLogger(FileIo.class);

    /** Which paths may be used. */
    public enum Mode {
        /** cuFile where it works, POSIX otherwise. */
        AUTO,
        /** POSIX only. */
        POSIX,
        /** cuFile only: fails where cuFile is missing or refuses a file. */
        CUFILE
    }

    private final CuFileIo cufile;
    private final PosixFileIo posix = new PosixFileIo();
    private final String cufileUnavailable;
    private final AtomicBoolean refusalLogged = new AtomicBoolean();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final Mode mode;
    private volatile String lastPath = "none";

    private FileIo(Mode mode, CuFileIo cufile, String unavailable) {
        this.mode = mode;
        this.cufile = cufile;
        this.cufileUnavailable = unavailable;
    }

    /**
     * @throws MlkvException in {@link Mode#CUFILE} when cuFile cannot be opened, with the reason
     */
    public static FileIo open(Mode mode) {
        if (mode == Mode.POSIX) {
            LOG.info("file path: POSIX (chosen)");
            return new FileIo(mode, null, "POSIX chosen");
        }
        try {
            CuFileIo c = CuFileIo.open();
            LOG.info("file path: cuFile (GPUDirect Storage) for device memory, POSIX for host memory");
            return new FileIo(mode, c, null);
        } catch (MlkvException e) {
            if (mode == Mode.CUFILE) {
                throw e;
            }
            LOG.info("file path: POSIX (cuFile unavailable: {})", e.getMessage());
            return new FileIo(mode, null, e.getMessage());
        }
    }

    /** Null when cuFile is open, otherwise why it is not used. */
    public String cufileUnavailable() {
        return cufileUnavailable;
    }

    @Override
    public String lastPath() {
        return lastPath;
    }

    @Override
    public void write(Region source, Path file) {
        if (!viaCuFile(source, file, true)) {
            posix.write(source, file);
            lastPath = "posix";
        }
    }

    @Override
    public void read(Path file, Region target) {
        if (!viaCuFile(target, file, false)) {
            posix.read(file, target);
            lastPath = "posix";
        }
    }

    private boolean viaCuFile(Region region, Path file, boolean write) {
        if (cufile == null || !(region instanceof DeviceRegion)) {
            return false;
        }
        String refused = cufile.tryTransfer(region, file, write);
        if (refused == null) {
            lastPath = "cufile";
            return true;
        }
        if (mode == Mode.CUFILE) {
            throw new MlkvException(io.mlkv.storage.StatusCode.DEVICE_ERROR, "cuFileHandleRegister " + file, refused,
                    "cuFile refused the file", null);
        }
        if (refusalLogged.compareAndSet(false, true)) {
            LOG.info("file path: POSIX for {} and files like it (cuFileHandleRegister: {})", file, refused);
        }
        return false;
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            try {
                posix.close();
            } finally {
                if (cufile != null) {
                    cufile.close();
                }
            }
        }
    }
}
