package io.mlkv.bench;

import picocli.CommandLine.Mixin;
import io.mlkv.cli.StoreOptions;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD32;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cufile.DeviceRegion;
import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.gpu.table.GpuHashTable;
import io.mlkv.gpu.table.ScoreMode;
import io.mlkv.gpu.table.TableSnapshot;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import jcuda.Pointer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Device memory to files and back, over cuFile and over our POSIX path: a raw region, and a
 * GPU table's snapshot (the HBM part of a checkpoint) and restore. Compare with the disk's raw
 * sequential bandwidth measured by {@code dd} in the same run ({@code scripts/gpu-io-bench.sh}).
 *
 * <pre>mlkv-bench gpu-io --dir /var/tmp/mlkv-io --gib 4 --table-entries 8388608 --dim 64</pre>
 */
@Command(name = "gpu-io", mixinStandardHelpOptions = true,
        description = "GB/s of device memory to files and back over cuFile and POSIX, raw and as table snapshots.")
public final class GpuIoCommand implements Callable<Integer> {
    @Option(names = "--dir", defaultValue = "/var/tmp/mlkv-gpu-io", description = "Directory for the files (default ${DEFAULT-VALUE}).")
    Path dir;

    @Option(names = "--gib", defaultValue = "4", description = "Raw region size in GiB (default ${DEFAULT-VALUE}).")
    int gib;

    @Option(names = "--table-entries", defaultValue = "8388608", description = "Entries in the snapshot table (default ${DEFAULT-VALUE}).")
    long tableEntries;

    @Mixin
    StoreOptions.Dim dimOption = new StoreOptions.Dim(64);
    private int dim;

    @Option(names = "--drop-caches", defaultValue = "true", negatable = true,
            description = "Drop the page cache before each read (needs root; says so otherwise).")
    boolean dropCaches;

    @Override
    public Integer call() throws IOException {
        dim = dimOption.get();
        Files.createDirectories(dir);
        List<String> rows = new ArrayList<>();
        long bytes = (long) gib << 30;
        try (CudaDevice dev = CudaDevice.open(0)) {
            dev.makeCurrent();
            System.out.printf(Locale.ROOT, "device %s, files in %s%n", dev.name(), dir.toAbsolutePath());
            for (FileIo.Mode mode : new FileIo.Mode[] {FileIo.Mode.POSIX, FileIo.Mode.CUFILE}) {
                FileIo io;
                try {
                    io = FileIo.open(mode);
                } catch (RuntimeException e) {
                    rows.add("| " + mode + " | unavailable: " + e.getMessage() + " | | | |");
                    continue;
                }
                try (io) {
                    try (DeviceMemory mem = new DeviceMemory(bytes, "gpu-io region")) {
                        Cuda.check(cuMemsetD32(mem.pointer(), 0x3f800000, bytes / 4), "cuMemsetD32");
                        DeviceRegion region = new DeviceRegion(mem.pointer(), bytes);
                        Path f = dir.resolve("region-" + mode + ".bin");
                        double w = seconds(() -> io.write(region, f));
                        String wPath = io.lastPath();
                        dropCaches();
                        double r = seconds(() -> io.read(f, region));
                        rows.add(String.format(Locale.ROOT, "| %s | raw region, %d GiB | %.2f | %.2f | %s |", mode, gib,
                                bytes / w / 1e9, bytes / r / 1e9, wPath + "/" + io.lastPath()));
                        Files.deleteIfExists(f);
                    } catch (RuntimeException e) {
                        rows.add("| " + mode + " | raw region failed: " + e.getMessage() + " | | | |");
                    }
                    try {
                        rows.add(table(io, mode));
                    } catch (RuntimeException e) {
                        rows.add("| " + mode + " | table snapshot failed: " + e.getMessage() + " | | | |");
                    }
                }
            }
        }
        System.out.println();
        System.out.println("| path | data | write GB/s | read GB/s | path used (write/read) |");
        System.out.println("|---|---|---|---|---|");
        rows.forEach(System.out::println);
        return 0;
    }

    private String table(FileIo io, FileIo.Mode mode) throws IOException {
        long capacity = Long.highestOneBit(tableEntries * 2 - 1) * 2; // load factor about 0.5
        try (GpuHashTable t = GpuHashTable.create(dim, capacity, ScoreMode.LRU, 1 << 20)) {
            fill(t);
            long n = t.size();
            long bytes = n * (8 + dim * 4L);
            Path d = dir.resolve("table-" + mode);
            double w;
            try {
                w = seconds(() -> TableSnapshot.write(t, d, io));
            } finally {
                t.makeDeviceCurrent();
            }
            String wPath = io.lastPath();
            t.clear();
            dropCaches();
            double r = seconds(() -> TableSnapshot.load(t, d, io));
            if (t.size() != n) {
                throw new IllegalStateException("restored " + t.size() + " of " + n + " entries");
            }
            // The restore's file reads alone, to split its time between disk and table inserts.
            dropCaches();
            double readOnly;
            t.makeDeviceCurrent();
            try (DeviceMemory scratch = new DeviceMemory(n * dim * 4L, "gpu-io scratch")) {
                readOnly = seconds(() -> io.read(d.resolve("values.bin"), new DeviceRegion(scratch.pointer(), n * dim * 4L)));
            }
            System.err.printf(Locale.ROOT, "[gpu-io] %s restore: %.2f s in all, reading values.bin alone %.2f s%n", mode, r,
                    readOnly);
            try (var s = Files.list(d)) {
                for (Path p : s.toList()) {
                    Files.delete(p);
                }
            }
            Files.delete(d);
            return String.format(Locale.ROOT, "| %s | table snapshot: %d entries of dim %d (%.2f GB) | %.2f | %.2f | %s |",
                    mode, n, dim, bytes / 1e9, bytes / w / 1e9, bytes / r / 1e9, wPath + "/" + io.lastPath());
        }
    }

    private void fill(GpuHashTable t) {
        int batch = 1 << 20;
        long[] keys = new long[batch];
        float[] vals = new float[batch * dim];
        for (int i = 0; i < vals.length; i++) {
            vals[i] = i % 1009;
        }
        t.makeDeviceCurrent();
        try (DeviceMemory k = new DeviceMemory(batch * 8L, "fill keys");
             DeviceMemory v = new DeviceMemory((long) batch * dim * 4, "fill values")) {
            Cuda.check(cuMemcpyHtoD(v.pointer(), Pointer.to(vals), (long) batch * dim * 4), "cuMemcpyHtoD values");
            for (long next = 0; next < tableEntries; next += batch) {
                int n = (int) Math.min(batch, tableEntries - next);
                for (int i = 0; i < n; i++) {
                    keys[i] = next + i;
                }
                t.makeDeviceCurrent();
                Cuda.check(cuMemcpyHtoD(k.pointer(), Pointer.to(keys), n * 8L), "cuMemcpyHtoD keys");
                t.insertOrAssign(k.pointer(), v.pointer(), null, n);
            }
        }
    }

    private interface Io {
        void run() throws IOException;
    }

    private static double seconds(Io body) throws IOException {
        long t0 = System.nanoTime();
        body.run();
        return (System.nanoTime() - t0) / 1e9;
    }

    private void dropCaches() {
        if (!dropCaches) {
            return;
        }
        try {
            new ProcessBuilder("sync").inheritIO().start().waitFor();
            Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "3\n");
        } catch (IOException | InterruptedException e) {
            System.err.println("[gpu-io] cannot drop the page cache (" + e.getMessage() + "); reads may come from memory");
            dropCaches = false;
        }
    }
}
