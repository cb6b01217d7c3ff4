package io.mlkv.core.hbm;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;

import io.mlkv.gpu.cuda.Cuda;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * What a device lookup left for the tiers below: the missed keys and their batch positions;
 * for those the GPU did not read from DRAM, the DRAM bucket version, read before any row
 * below (for those it did, {@code dramSeqs}: the bucket's sequence count the row was read at);
 * and, where the
 * DRAM tier is mapped, which of them the GPU read from DRAM in place ({@code fromDram}, rows
 * already in the output, and in device staging at the miss's position: see
 * {@link HbmTier#installFromDevice}) and the tier's
 * {@link DramTier#changes()} read just before.
 *
 * <p>The per-miss arrays are built from the staging set's pinned copies when first asked
 * for: a read whose misses the GPU all read from DRAM, promoted straight from staging, never
 * builds them. Where the lookup left the missed keys, positions and sequence counts on the device
 * only ({@link #deviceOnly}: every miss read from DRAM; {@code -Dmlkv.lazyMissCopies=false} turns it off), the
 * first ask copies them to the pinned buffers; they stay valid on the device until the staging
 * set is released (an install that reuses the missed keys' buffer asks for the keys first).
 * Used by the reading thread only. Holds the staging set until {@link DeviceReads#release}.
 */
public final class DeviceMisses {
    private final int count;
    private final int dramHits;
    private final long dramChanges;
    private final Staging staging;
    /** Whether an install that may evict dirty entries overlapped the HBM lookup (write-back only). */
    private final boolean moveOverlappedLookup;
    private long[] keys;
    private int[] index;
    private long[] versions;
    private boolean[] fromDram;
    private long[] dramSeqs;
    /** Whether the missed keys, positions and sequence counts have not been copied to the host yet. */
    private boolean deviceOnly;

    /** With {@code deviceOnly}, the per-miss data is still on the device only (see the class comment). */
    DeviceMisses(int count, int dramHits, long dramChanges, boolean moveOverlappedLookup, Staging staging,
            boolean deviceOnly) {
        if (deviceOnly && dramHits != count) {
            throw new IllegalArgumentException("misses may stay on the device only when the GPU read every one from DRAM");
        }
        this.deviceOnly = deviceOnly;
        this.count = count;
        this.moveOverlappedLookup = moveOverlappedLookup;
        this.dramHits = dramHits;
        this.dramChanges = dramChanges;
        this.staging = staging;
    }

    /**
     * Whether an install that may have evicted dirty entries overlapped the HBM lookup, so that a
     * miss may have been a dirty entry on its way down (see {@link HbmTier#movedSince}).
     */
    public boolean moveOverlappedLookup() {
        return moveOverlappedLookup;
    }

    /** Number of misses. */
    public int count() {
        return count;
    }

    /** Whether there were misses and the GPU read every one of them from DRAM. */
    public boolean allFromDram() {
        return count > 0 && dramHits == count;
    }

    /**
     * Copies the missed keys, positions and DRAM sequence counts to the staging set's pinned
     * buffers if the lookup left them on the device; before anything overwrites those device buffers.
     */
    void toHost() {
        if (!deviceOnly) {
            return;
        }
        Cuda.check(cuMemcpyDtoH(staging.hostMissKeys.pointer(), staging.missedKeys.pointer(), count * 8L),
                "cuMemcpyDtoH (missed keys)");
        Cuda.check(cuMemcpyDtoH(staging.hostIndex.pointer(), staging.missedIndex.pointer(), count * 4L),
                "cuMemcpyDtoH (missed positions)");
        Cuda.check(cuMemcpyDtoH(staging.hostSeqs.pointer(), staging.probeSeqs.pointer(), count * 8L),
                "cuMemcpyDtoH (DRAM probe sequence counts)");
        deviceOnly = false;
    }

    public long[] keys() {
        toHost();
        if (keys == null) {
            keys = new long[count];
            staging.hostMissKeys.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().get(0, keys);
        }
        return keys;
    }

    public int[] index() {
        toHost();
        if (index == null) {
            index = new int[count];
            staging.hostIndex.buffer().order(ByteOrder.nativeOrder()).asIntBuffer().get(0, index);
        }
        return index;
    }

    public long[] versions() {
        if (versions == null) {
            versions = new long[count];
        }
        return versions;
    }

    public boolean[] fromDram() {
        if (fromDram == null) {
            fromDram = new boolean[count];
            if (dramHits == count) {
                Arrays.fill(fromDram, true);
            } else if (dramHits > 0) {
                ByteBuffer h = staging.hostHits.buffer();
                for (int j = 0; j < count; j++) {
                    fromDram[j] = h.get(j) != 0;
                }
            }
        }
        return fromDram;
    }

    /** The sequence counts the rows read from DRAM were read at; null if none was. */
    public long[] dramSeqs() {
        toHost();
        if (dramSeqs == null && dramHits > 0) {
            dramSeqs = new long[count];
            staging.hostSeqs.buffer().order(ByteOrder.nativeOrder()).asLongBuffer().get(0, dramSeqs);
        }
        return dramSeqs;
    }

    public long dramChanges() {
        return dramChanges;
    }

    public int dramHits() {
        return dramHits;
    }

    Staging staging() {
        return staging;
    }
}
