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
 *   <li>{@code fulldiskevict DIR BALLAST}: see {@link #fullDiskEvicting}; the same.</li>
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
        if (!flushOnceSpaceIsBack(store)) {
            return;
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

    /**
     * A small DRAM whose evictions are written in the background when the disk fills: the call
     * after the failed background write fails with the cause; reads meanwhile return acknowledged
     * values or are refused with the cause (never a wrong value; the failed call's keys may hold its
     * rows or the ones before); once the ballast is removed a flush writes everything, reads return
     * every acknowledged value, and a reopened store has them.
     */
    private static void fullDiskEvicting(Path dir, Path ballast) throws Exception {
        int dim = 64;
        int n = 20_000;
        int batch = 1000;
        long[] keys = new long[n];
        float[] acked = new float[n * dim];
        for (int i = 0; i < n; i++) {
            keys[i] = i;
            Arrays.fill(acked, i * dim, (i + 1) * dim, i);
        }
        MlkvStore store = MlkvStore.builder().dim(dim).directory(dir).dramCapacityBytes(64 * DramTier.bucketBytes(dim))
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build();
        for (int from = 0; from < n; from += batch) {
            store.multiPut(Arrays.copyOfRange(keys, from, from + batch), Arrays.copyOfRange(acked, from * dim, (from + batch) * dim));
        }
        store.flush();
        fillDisk(ballast);
        int failedFrom = -1;
        float[] failedRows = null;
        for (int round = 1; round <= 3 && failedFrom < 0; round++) {
            for (int from = 0; from < n; from += batch) {
                float[] rows = Arrays.copyOfRange(acked, from * dim, (from + batch) * dim);
                for (int j = 0; j < rows.length; j++) {
                    rows[j] += 0.5f;
                }
                try {
                    store.multiPut(Arrays.copyOfRange(keys, from, from + batch), rows);
                    System.arraycopy(rows, 0, acked, from * dim, rows.length);
                } catch (io.mlkv.storage.MlkvException e) {
                    System.out.println("WRITE_FAILED " + e.status() + " | " + e.getMessage());
                    failedFrom = from;
                    failedRows = rows;
                    break;
                }
            }
        }
        if (failedFrom < 0) {
            System.out.println("WRITES_NEVER_FAILED");
            return;
        }
        // While the disk is full, a read that needs RocksDB may be refused with the cause (the tier
        // reopens after a failed write, which needs space); it must never return a wrong value.
        try {
            System.out.println(matches(store, keys, acked, failedFrom, failedRows, batch, dim) ? "READS_OK" : "READS_WRONG");
        } catch (io.mlkv.storage.MlkvException e) {
            System.out.println("READS_REFUSED " + e.status());
        }
        java.nio.file.Files.delete(ballast);
        if (!flushOnceSpaceIsBack(store)) {
            return;
        }
        System.out.println(matches(store, keys, acked, failedFrom, failedRows, batch, dim) ? "READS_AFTER_OK" : "READS_AFTER_WRONG");
        // What the failed call wrote in place before it failed is now settled: take it as read.
        float[] out = new float[n * dim];
        store.multiGet(keys, out, new boolean[n]);
        store.close();
        try (MlkvStore again = MlkvStore.builder().dim(dim).directory(dir).dramCapacityBytes(1 << 20)
                .blockCacheBytes(1 << 20).gpu(GpuMode.OFF).build()) {
            float[] reopened = new float[n * dim];
            int found = again.multiGet(keys, reopened, new boolean[n]);
            boolean same = found == n && Arrays.equals(out, reopened)
                    && matches(again, keys, acked, failedFrom, failedRows, batch, dim);
            System.out.println(same ? "REOPEN_OK" : "REOPEN_WRONG " + found);
        }
        System.out.flush();
    }

    /** Whether every key reads its acknowledged row, or for the failed call's keys, that call's row. */
    private static boolean matches(MlkvStore store, long[] keys, float[] acked, int failedFrom, float[] failedRows,
            int batch, int dim) {
        int n = keys.length;
        float[] out = new float[n * dim];
        if (store.multiGet(keys, out, new boolean[n]) != n) {
            return false;
        }
        for (int i = 0; i < n; i++) {
            float[] got = Arrays.copyOfRange(out, i * dim, (i + 1) * dim);
            boolean ok = Arrays.equals(got, Arrays.copyOfRange(acked, i * dim, (i + 1) * dim));
            if (!ok && i >= failedFrom && i < failedFrom + batch) {
                int r = i - failedFrom;
                ok = Arrays.equals(got, Arrays.copyOfRange(failedRows, r * dim, (r + 1) * dim));
            }
            if (!ok) {
                System.out.println("key " + i + " reads " + got[0] + ", acknowledged " + acked[i * dim]);
                return false;
            }
        }
        return true;
    }

    /**
     * Flushes, retrying for up to ten seconds while RocksDB recovers from the full disk; prints
     * FLUSH_OK or FLUSH_STILL_FAILING and says which.
     */
    private static boolean flushOnceSpaceIsBack(MlkvStore store) throws InterruptedException {
        for (int attempt = 1; ; attempt++) {
            try {
                store.flush();
                System.out.println("FLUSH_OK after " + attempt + " attempts");
                return true;
            } catch (io.mlkv.storage.MlkvException e) {
                if (attempt == 50) {
                    System.out.println("FLUSH_STILL_FAILING " + e.getMessage());
                    return false;
                }
                Thread.sleep(200);
            }
        }
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
        if (args[0].equals("fulldiskevict")) {
            fullDiskEvicting(dir, Path.of(args[2]));
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
