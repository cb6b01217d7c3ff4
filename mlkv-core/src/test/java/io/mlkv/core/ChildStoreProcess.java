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
 *   <li>{@code hold DIR}: opens the store, prints {@code OPEN} and waits to be killed;</li>
 *   <li>{@code fulldisk DIR BALLAST}: see {@link #fullDisk}; DIR must be on a small file system.</li>
 *   <li>{@code restore CHECKPOINT ROOT}: restores the checkpoint into {@code ROOT/t-0},
 *       {@code ROOT/t-1}, ... until killed, printing {@code RESTORING i} before each.</li>
 *   <li>{@code checkpoints DIR CPROOT}: loads 50 batches, then repeatedly writes one more batch
 *       {@code b} and checkpoints to {@code CPROOT/cp-b}, printing {@code CHECKPOINT_START b}
 *       before and {@code CHECKPOINTED b} after.</li>
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

    /**
     * Fills DRAM, takes the disk's free space with a ballast file, and checks that a failing
     * flush reports the cause, loses nothing, and succeeds once the ballast is removed.
     */
    private static void fullDisk(Path dir, Path ballast) throws Exception {
        int dim = 64;
        int n = 20_000;
        long[] keys = new long[n];
        float[] values = new float[n * dim];
        for (int i = 0; i < n; i++) {
            keys[i] = i;
            Arrays.fill(values, i * dim, (i + 1) * dim, i);
        }
        MlkvStore store = MlkvStore.builder().dim(dim).directory(dir).dramCapacityBytes(64 << 20)
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build();
        store.multiPut(keys, values);
        fillDisk(ballast);
        try {
            store.flush();
            System.out.println("FLUSH_SUCCEEDED_UNEXPECTEDLY");
            return;
        } catch (io.mlkv.storage.MlkvException e) {
            System.out.println("FLUSH_FAILED " + e.status() + " " + e.nativeCode() + " | " + e.getMessage());
        }
        float[] out = new float[n * dim];
        int found = store.multiGet(keys, out, new boolean[n]);
        System.out.println(found == n && Arrays.equals(out, values) ? "READS_OK" : "READS_WRONG " + found);
        java.nio.file.Files.delete(ballast);
        for (int attempt = 1; ; attempt++) {
            try {
                store.flush();
                System.out.println("FLUSH_OK after " + attempt + " attempts");
                break;
            } catch (io.mlkv.storage.MlkvException e) {
                if (attempt == 50) {
                    System.out.println("FLUSH_STILL_FAILING " + e.getMessage());
                    return;
                }
                Thread.sleep(200);
            }
        }
        store.close();
        try (MlkvStore again = MlkvStore.builder().dim(dim).directory(dir).dramCapacityBytes(1 << 20)
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build()) {
            Arrays.fill(out, -1);
            found = again.multiGet(keys, out, new boolean[n]);
            System.out.println(found == n && Arrays.equals(out, values) ? "REOPEN_OK" : "REOPEN_WRONG " + found);
        }
        System.out.flush();
    }

    private static void checkpoints(Path dir, Path root) {
        MlkvStore store = open(dir, Durability.WRITE_BACK);
        long[] keys = new long[BATCH];
        float[] values = new float[BATCH * DIM];
        for (int b = 0; b < 100_000; b++) {
            for (int i = 0; i < BATCH; i++) {
                keys[i] = (long) b * BATCH + i;
            }
            Arrays.fill(values, b);
            store.multiPut(keys, values);
            if (b >= 50) {
                System.out.println("CHECKPOINT_START " + b);
                System.out.flush();
                store.checkpoint(root.resolve("cp-" + b));
                System.out.println("CHECKPOINTED " + b);
                System.out.flush();
            }
        }
    }

    /** Writes {@code ballast} until the file system has no space left. */
    private static void fillDisk(Path ballast) throws java.io.IOException {
        byte[] chunk = new byte[64 << 10];
        try (java.io.OutputStream out = java.nio.file.Files.newOutputStream(ballast)) {
            while (true) {
                out.write(chunk);
            }
        } catch (java.io.IOException e) {
            if (!String.valueOf(e.getMessage()).contains("No space")) {
                throw e;
            }
        }
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[1]);
        if (args[0].equals("fulldisk")) {
            fullDisk(dir, Path.of(args[2]));
            return;
        }
        if (args[0].equals("checkpoints")) {
            checkpoints(dir, Path.of(args[2]));
            return;
        }
        if (args[0].equals("restore")) {
            Path root = Path.of(args[2]);
            for (int i = 0; ; i++) {
                System.out.println("RESTORING " + i);
                System.out.flush();
                MlkvStore.restoreCheckpoint(dir, root.resolve("t-" + i));
            }
        }
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
