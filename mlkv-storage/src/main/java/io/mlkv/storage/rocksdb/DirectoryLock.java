package io.mlkv.storage.rocksdb;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Holds a store directory for one store at a time, whatever path names it.
 *
 * <p>Two layers, because neither alone is enough:
 * <ul>
 *   <li><b>In this JVM</b> a registry keyed by the directory's file key (device and inode), so
 *       {@code dir/.}, {@code a/../a}, a symlink and a bind mount all find the same entry. It is
 *       checked before any file is opened: POSIX record locks belong to the process, and closing
 *       any descriptor of the locked file (a second store probing it, or RocksDB closing its own
 *       {@code LOCK} after a second open) would silently drop the first store's lock.</li>
 *   <li><b>Across processes</b> an OS file lock on {@value #FILE_NAME}, held for the store's life
 *       through one channel, whose content names the holder (pid, host, time, path) for the
 *       {@code LOCKED} message another process prints.</li>
 * </ul>
 * The file is never deleted: removing a lock file while another process waits on it lets two
 * holders exist at once.
 */
public final class DirectoryLock implements AutoCloseable {
    /** The lock file in the store directory. */
    public static final String FILE_NAME = "MLKV-LOCK";

    private static final Map<Object, String> HELD_IN_THIS_JVM = new ConcurrentHashMap<>();

    private final Object identity;
    private final FileChannel channel;
    private final FileLock lock;
    private final AtomicBoolean closed = new AtomicBoolean();

    private DirectoryLock(Object identity, FileChannel channel, FileLock lock) {
        this.identity = identity;
        this.channel = channel;
        this.lock = lock;
    }

    /**
     * Locks {@code dir}, which must exist.
     *
     * @param purpose what the holder is doing, for the message a refused opener sees
     * @throws MlkvException {@code LOCKED} naming the holder if the directory is held, in this or
     *                       another process; {@code IO_ERROR} if the lock file cannot be used
     */
    public static DirectoryLock acquire(Path dir, String purpose) {
        String op = purpose + " " + dir;
        Object identity;
        Path real;
        try {
            real = dir.toRealPath();
            Object key = Files.readAttributes(real, java.nio.file.attribute.BasicFileAttributes.class).fileKey();
            identity = key != null ? key : real.toString();
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, op, e.getClass().getSimpleName(), e.getMessage(), e);
        }
        String holder = describe(real, purpose);
        String previous = HELD_IN_THIS_JVM.putIfAbsent(identity, holder);
        if (previous != null) {
            throw locked(op, "the directory is already open in this process (held for " + previous + ")");
        }
        FileChannel channel = null;
        try {
            Path file = real.resolve(FILE_NAME);
            if (Files.isSymbolicLink(file)) {
                throw new MlkvException(StatusCode.IO_ERROR, op, file + " is a symbolic link; remove it");
            }
            channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ,
                    StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS);
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null;
            }
            if (lock == null) {
                String other = readHolder(channel);
                throw locked(op, "the directory is already open in another process"
                        + (other.isEmpty() ? "" : " (held for " + other + ")"));
            }
            channel.truncate(0);
            channel.write(ByteBuffer.wrap((holder + "\n").getBytes(StandardCharsets.UTF_8)), 0);
            return new DirectoryLock(identity, channel, lock);
        } catch (IOException | RuntimeException e) {
            HELD_IN_THIS_JVM.remove(identity, holder);
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            if (e instanceof RuntimeException r) {
                throw r;
            }
            throw new MlkvException(StatusCode.IO_ERROR, op, e.getClass().getSimpleName(), e.getMessage(), e);
        }
    }

    private static MlkvException locked(String op, String why) {
        return new MlkvException(StatusCode.LOCKED, op, why
                + "; close that store first or choose another directory");
    }

    private static String describe(Path real, String purpose) {
        String host = System.getenv().getOrDefault("HOSTNAME", "");
        if (host.isEmpty()) {
            try {
                host = Files.readString(Path.of("/proc/sys/kernel/hostname")).trim();
            } catch (IOException | RuntimeException e) {
                host = "an unknown host";
            }
        }
        return purpose + " by pid " + ProcessHandle.current().pid() + " on " + host + " since " + Instant.now()
                + " at " + real;
    }

    private static String readHolder(FileChannel channel) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(1024);
        channel.read(buf, 0);
        return new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8).trim();
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            lock.release();
            channel.close();
        } catch (IOException e) {
            throw new MlkvException(StatusCode.IO_ERROR, "release " + FILE_NAME, e.getClass().getSimpleName(),
                    e.getMessage(), e);
        } finally {
            HELD_IN_THIS_JVM.remove(identity);
        }
    }
}
