package io.mlkv.core;

import io.mlkv.storage.dram.DramTier;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Main class of the child JVMs that {@link CrashRecoveryTest} kills. Modes:
 * <ul>
 *   <li>{@code load DIR WRITE_BACK|WRITE_THROUGH}: writes batches of {@value #BATCH} new keys whose
 *       values are the batch number, printing {@code ACK b} after each batch returns and, in
 *       write-back mode, {@code FLUSHED b} after every fifth batch's {@code flush()} returns;</li>
 *   <li>{@code hold DIR}: opens the store, prints {@code OPEN} and waits to be killed.</li>
 * </ul>
 */
public final class ChildStoreProcess {
    static final int DIM = 16;
    static final int BATCH = 1000;

    private ChildStoreProcess() {
    }

    static MlkvStore open(Path dir, Durability durability) {
        return MlkvStore.builder().dim(DIM).directory(dir)
                .dramCapacityBytes(32 * DramTier.bucketBytes(DIM)).blockCacheBytes(1 << 20)
                .durability(durability).gpu(GpuMode.OFF).build();
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[1]);
        if (args[0].equals("hold")) {
            MlkvStore store = open(dir, Durability.WRITE_BACK);
            store.put(1, new float[DIM]);
            System.out.println("OPEN");
            System.out.flush();
            Thread.sleep(120_000);
            return;
        }
        Durability durability = Durability.valueOf(args[2]);
        MlkvStore store = open(dir, durability);
        long[] keys = new long[BATCH];
        float[] values = new float[BATCH * DIM];
        for (int b = 0; b < 100_000; b++) {
            for (int i = 0; i < BATCH; i++) {
                keys[i] = (long) b * BATCH + i;
            }
            Arrays.fill(values, b);
            store.multiPut(keys, values);
            System.out.println("ACK " + b);
            if (durability == Durability.WRITE_BACK && b % 5 == 4) {
                store.flush();
                System.out.println("FLUSHED " + b);
            }
            System.out.flush();
        }
    }
}
