package io.mlkv.storage.dram;

import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Asks Linux to back large off-heap blocks with transparent huge pages ({@code madvise(...,
 * MADV_HUGEPAGE)}, through JNA). The DRAM tier reads a random bucket per key: with 4 KiB pages
 * nearly every lookup of a table larger than the TLB's reach also walks the page table, and 2 MiB
 * pages remove most of those walks (JMH {@code TierBenchmark.multiGet}, table in DRAM: +22 % on
 * this project's 2-core development machine, docs/BENCHMARKS.md). Distributions ship THP in
 * {@code madvise} mode by default, where nothing is huge unless asked for; in {@code always} mode
 * the advice changes nothing and in {@code never} mode the kernel ignores it.
 *
 * <p>Advice only: where it cannot be given (not Linux, JNA unavailable, the call refused) the block
 * keeps base pages, the reason is logged once at INFO, and nothing else changes. The system property
 * {@code mlkv.hugePages=false} turns it off.
 */
final class HugePages {
    private static final Logger LOG = LoggerFactory.getLogger(HugePages.class);
    /** The huge page size of x86-64 and arm64 Linux with 4 KiB base pages. */
    static final long SIZE = 2L << 20;
    private static final int MADV_HUGEPAGE = 14;
    private static final LibC LIBC = load();
    private static volatile boolean refusalLogged;

    /** The one C library call used. */
    interface LibC extends Library {
        int madvise(Pointer address, long length, int advice);
    }

    private HugePages() {
    }

    /** Whether {@link #advise} will ask the kernel at all (Linux, JNA loaded, not turned off). */
    static boolean available() {
        return LIBC != null;
    }

    /**
     * Advises huge pages for {@code [address, address + bytes)}, which starts on a huge-page
     * boundary; returns whether the kernel took the advice. Blocks smaller than a huge page are
     * left alone.
     */
    static boolean advise(long address, long bytes) {
        if (LIBC == null || bytes < SIZE) {
            return false;
        }
        int rc = LIBC.madvise(new Pointer(address), bytes, MADV_HUGEPAGE);
        if (rc != 0) {
            if (!refusalLogged) {
                refusalLogged = true;
                LOG.info("madvise(MADV_HUGEPAGE) of {} bytes returned {} (errno {}); the DRAM tier keeps base pages",
                        bytes, rc, Native.getLastError());
            }
            return false;
        }
        return true;
    }

    /** The kernel's transparent huge page mode ({@code always}, {@code madvise}, {@code never}), or null if unknown. */
    static String kernelMode() {
        try {
            String s = Files.readString(Path.of("/sys/kernel/mm/transparent_hugepage/enabled"));
            int open = s.indexOf('[');
            int close = s.indexOf(']');
            return open >= 0 && close > open ? s.substring(open + 1, close) : null;
        } catch (java.io.IOException | SecurityException e) {
            return null;
        }
    }

    private static LibC load() {
        if (!"false".equals(System.getProperty("mlkv.hugePages"))
                && System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).startsWith("linux")) {
            try {
                return Native.load("c", LibC.class);
            } catch (LinkageError | RuntimeException e) {
                LOG.info("no huge pages for the DRAM tier: the C library could not be loaded through JNA ({})", e.toString());
            }
        }
        return null;
    }
}
