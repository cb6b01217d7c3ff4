package io.mlkv.storage.dram;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.lang.reflect.Field;
import java.util.concurrent.atomic.AtomicBoolean;
import sun.misc.Unsafe;

/**
 * One block of native memory, owned by this object and freed by {@link #close()}. It starts on a
 * page boundary and owns every page it spans ({@link #pageBytes()}), so it can be pinned for a
 * GPU without touching memory of others.
 *
 * <p>Allocated with {@code sun.misc.Unsafe} (module {@code jdk.unsupported}, open without flags)
 * rather than direct buffers, because direct buffers count against {@code -XX:MaxDirectMemorySize},
 * which defaults to the heap size: an 8 GB DRAM tier must not need an 8 GB heap. JDK 24 and later
 * print a one-time warning for these calls unless the JVM runs with
 * {@code --sun-misc-unsafe-memory-access=allow}. Blocks of 2 MiB or more start on a 2 MiB boundary
 * and are advised to use transparent huge pages ({@link HugePages}).
 */
final class OffHeapMemory implements AutoCloseable {
    static final Unsafe UNSAFE = loadUnsafe();
    static final long FLOAT_ARRAY_BASE = UNSAFE.arrayBaseOffset(float[].class);

    /** Page size assumed for alignment (x86-64 and arm64 Linux base pages). */
    static final long PAGE = 4096;
    private final long raw;
    private final long address;
    private final long bytes;
    private final boolean hugePages;
    private final AtomicBoolean closed = new AtomicBoolean();

    /**
     * @param zeroed fill with zeros; leave off for blocks whose bytes are only read after being
     *               written, so the operating system commits their pages lazily
     */
    OffHeapMemory(long bytes, String purpose, boolean zeroed) {
        if (bytes <= 0) {
            throw new IllegalArgumentException(purpose + ": size must be positive, was " + bytes);
        }
        // A block of a huge page or more starts on a huge-page boundary, so that all of it can be
        // backed by huge pages (advised before its first touch: pages come huge from the start).
        long align = bytes >= HugePages.SIZE ? HugePages.SIZE : PAGE;
        try {
            this.raw = UNSAFE.allocateMemory(roundToPage(bytes) + align);
        } catch (OutOfMemoryError e) {
            throw new MlkvException(StatusCode.OUT_OF_MEMORY, "allocate " + purpose, null,
                    "could not allocate " + bytes + " bytes of native memory; lower the tier's capacity",
                    e);
        }
        this.address = (raw + align - 1) & -align;
        this.hugePages = align == HugePages.SIZE && HugePages.advise(address, roundToPage(bytes) & -HugePages.SIZE);
        if (zeroed) {
            UNSAFE.setMemory(address, bytes, (byte) 0);
        }
        this.bytes = bytes;
    }

    static long roundToPage(long x) {
        return (x + PAGE - 1) & -PAGE;
    }

    /** The bytes of the whole pages the block spans, from {@link #address()}. */
    long pageBytes() {
        return roundToPage(bytes);
    }

    long address() {
        return address;
    }

    /** Whether the kernel took the advice to back this block with huge pages (see {@link HugePages}). */
    boolean hugePages() {
        return hugePages;
    }

    long bytes() {
        return bytes;
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            UNSAFE.freeMemory(raw);
        }
    }

    private static Unsafe loadUnsafe() {
        try {
            Field f = Unsafe.class.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            return (Unsafe) f.get(null);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
}
