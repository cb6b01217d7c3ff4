package io.mlkv.storage.dram;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Off-heap blocks of the DRAM tier on huge pages, where the kernel offers them. */
class HugePagesTest {
    @Test
    void aLargeBlockStartsOnAHugePageBoundary() {
        try (OffHeapMemory m = new OffHeapMemory(3 * HugePages.SIZE + 100, "test block", false)) {
            assertEquals(0, m.address() % HugePages.SIZE, "address " + Long.toHexString(m.address()));
        }
    }

    @Test
    void aSmallBlockIsLeftOnBasePages() {
        try (OffHeapMemory m = new OffHeapMemory(HugePages.SIZE - 1, "test block", true)) {
            assertEquals(0, m.address() % OffHeapMemory.PAGE);
            assertFalse(m.hugePages(), "a block smaller than a huge page is not advised");
        }
    }

    /** Where the kernel hands out huge pages on request, the block's mapping is eligible for them. */
    @Test
    void theKernelTakesTheAdviceWhereItsModeIsMadvise() throws Exception {
        String mode = HugePages.kernelMode();
        assumeTrue("madvise".equals(mode) && HugePages.available(),
                "transparent huge pages are not in madvise mode here (" + mode + ") or JNA is unavailable");
        try (OffHeapMemory m = new OffHeapMemory(8 * HugePages.SIZE, "test block", true)) {
            assertTrue(m.hugePages(), "madvise(MADV_HUGEPAGE) refused");
            assertTrue(mappingIsHugePageEligible(m.address()),
                    "/proc/self/smaps does not show the block's mapping as THP-eligible");
        }
    }

    /** The {@code THPeligible} line of the smaps entry whose range holds {@code address}. */
    private static boolean mappingIsHugePageEligible(long address) throws Exception {
        boolean inside = false;
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            java.util.regex.Matcher range = MAPPING.matcher(line);
            if (range.lookingAt()) {
                long from = Long.parseUnsignedLong(range.group(1), 16);
                long to = Long.parseUnsignedLong(range.group(2), 16);
                inside = Long.compareUnsigned(address, from) >= 0 && Long.compareUnsigned(address, to) < 0;
            } else if (inside && line.startsWith("THPeligible:")) {
                return line.trim().endsWith("1");
            }
        }
        return false;
    }

    /** The first line of an smaps entry: its address range. */
    private static final java.util.regex.Pattern MAPPING = java.util.regex.Pattern.compile("([0-9a-f]+)-([0-9a-f]+) ");
}
