package io.mlkv.bench;

import io.mlkv.bench.run.ReportWriter;
import io.mlkv.bench.run.RunResult;
import io.mlkv.bench.run.Workload;
import io.mlkv.bench.run.WorkloadRunner;
import io.mlkv.core.Durability;
import io.mlkv.core.GpuMode;
import io.mlkv.core.MlkvStore;
import io.mlkv.core.MlkvStoreBuilder;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import io.mlkv.cli.StoreOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** Runs a YCSB-style workload against an embedded store and reports throughput, latency and tier statistics. */
@Command(name = "run", mixinStandardHelpOptions = true,
        description = {"Loads records into an embedded store, runs a workload's operation mix from several client "
                + "threads, and reports operations/s, keys/s, latency percentiles per operation (HdrHistogram), per-tier "
                + "hit rates and migrations, as a console table plus JSON, CSV and a PNG chart.",
            "Built-in workloads: workloada..workloadf (YCSB's mixes; E needs range scans, which MLKV does not offer), "
                + "embedding-train, embedding-lookup. Any other value is read as a properties file."})
final class RunCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = {"-w", "--workload"}, defaultValue = "embedding-train", description = "Workload name or file (default ${DEFAULT-VALUE}).")
    String workloadName;

    @Option(names = "--records", description = "Records to load (overrides the workload's recordcount).")
    Long records;

    @Option(names = "--operations", description = "Operations to run (overrides operationcount).")
    Long operations;

    @Option(names = "--batch", description = "Keys per operation (overrides batchsize).")
    Integer batch;

    @Option(names = "--distribution", description = "uniform, zipfian, scrambled, latest or hotspot (overrides requestdistribution).")
    String distribution;

    @Option(names = "--theta", description = "Zipfian skew (overrides zipfianconstant).")
    Double theta;

    @Mixin
    StoreOptions.Dim dimOption = new StoreOptions.Dim(64);

    @Option(names = {"-t", "--threads"}, defaultValue = "2", description = "Client threads (default ${DEFAULT-VALUE}).")
    int threads;

    @Mixin
    StoreOptions.DramMb dramOption = new StoreOptions.DramMb(64);

    @Mixin
    StoreOptions.Policy policyOption = new StoreOptions.Policy("tinylfu");

    @Mixin
    StoreOptions.DurabilityMode durabilityOption = new StoreOptions.DurabilityMode(Durability.WRITE_BACK);

    @Mixin
    StoreOptions.Gpu gpuOption = new StoreOptions.Gpu(GpuMode.AUTO);

    @Option(names = "--hbm-entries", defaultValue = "1048576",
            description = "Entries of the HBM tier when a GPU is used (default ${DEFAULT-VALUE}).")
    long hbmEntries;

    @Option(names = "--size-counting", defaultValue = "ON_WRITE",
            description = "How size() stays exact: ON_WRITE (every put asks RocksDB about keys DRAM lacks) or ON_DEMAND "
                    + "(puts skip that; size() counts when called) (default ${DEFAULT-VALUE}).")
    io.mlkv.core.SizeCounting sizeCounting;

    @Option(names = "--hbm-write-back",
            description = "Writes of keys in HBM stay there until evicted or flushed (needs WRITE_BACK durability).")
    boolean hbmWriteBack;

    @Option(names = "--hbm-admission", defaultValue = "ALWAYS",
            description = "Which HBM misses are installed into HBM: ALWAYS, SECOND_MISS or FREQUENCY (default ${DEFAULT-VALUE}).")
    io.mlkv.core.HbmAdmission hbmAdmission;

    @Option(names = "--hbm-spill-rows", defaultValue = "0",
            description = "Rows of the on-SSD spill log for what HBM evicts, 0 for none (default ${DEFAULT-VALUE}); needs --gpu AUTO or ON.")
    long hbmSpillRows;

    @Option(names = "--file-io", defaultValue = "AUTO",
            description = "How HBM checkpoints and the spill log reach files: AUTO (cuFile where it works), POSIX or CUFILE (default ${DEFAULT-VALUE}).")
    io.mlkv.gpu.cufile.FileIo.Mode fileIo;

    @Option(names = "--dir", description = "Store directory; default a temporary one, deleted afterwards.")
    Path dir;

    @Option(names = "--verify", description = "Check every value read against what was written.")
    boolean verify;

    @Option(names = "--device-reads",
            description = "Reads (and training steps) take and return device memory (keys copied to the GPU, values and deltas left there); needs --gpu ON.")
    boolean deviceReads;

    @Option(names = "--out", defaultValue = "mlkv-run", description = "Directory for the JSON, CSV and PNG results (default ${DEFAULT-VALUE}).")
    Path out;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of keys and operation choices (default ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() throws Exception {
        int dim = dimOption.get();
        long dramMb = dramOption.megabytes();
        String policy = policyOption.get();
        Durability durability = durabilityOption.get();
        GpuMode gpu = gpuOption.get();
        // Every option is checked here, before a directory is created or a store opened.
        Workload w = Workload.load(workloadName).with(records, operations, batch, distribution, theta);
        WorkloadRunner.checkOptions(w, threads, verify);
        if (hbmEntries < 1) {
            throw new ParameterException(spec.commandLine(), "--hbm-entries must be positive, was " + hbmEntries);
        }
        if (hbmSpillRows < 0) {
            throw new ParameterException(spec.commandLine(), "--hbm-spill-rows must not be negative, was " + hbmSpillRows);
        }
        if (deviceReads && gpu != GpuMode.ON) {
            throw new ParameterException(spec.commandLine(),
                    "--device-reads needs --gpu ON (reads into device memory need the HBM tier)");
        }
        if (hbmWriteBack && durability != Durability.WRITE_BACK) {
            throw new ParameterException(spec.commandLine(), "--hbm-write-back needs --durability WRITE_BACK "
                    + "(with WRITE_THROUGH every write reaches RocksDB first)");
        }
        if (hbmSpillRows > 0 && gpu == GpuMode.OFF) {
            throw new ParameterException(spec.commandLine(),
                    "--hbm-spill-rows spills what the HBM tier evicts; it needs --gpu AUTO or ON");
        }
        MlkvStoreBuilder settings = MlkvStore.builder().dim(dim).dramCapacityBytes(dramMb << 20)
                .policy(policy).durability(durability).sizeCounting(sizeCounting).gpu(gpu).hbmCapacity(hbmEntries)
                .hbmWriteBack(hbmWriteBack).hbmAdmission(hbmAdmission).hbmSpillRows(hbmSpillRows).fileIo(fileIo);
        boolean temporary = dir == null;
        Path storeDir = temporary ? Files.createTempDirectory("mlkv-run") : dir;
        try (MlkvStore store = settings.directory(storeDir).build()) {
            if (store.spillPath() != null) {
                System.out.println("spill log path: " + store.spillPath());
            }
            WorkloadRunner runner = new WorkloadRunner(store, w, threads, verify, seed).deviceReads(deviceReads);
            System.out.printf("MLKV run: workload %s, %,d records, %,d operations of %,d keys, %d threads, dim %d, "
                    + "DRAM %d MiB (%s), %s, store in %s%n", w.name(), w.recordCount(), w.operationCount(), w.batchSize(),
                    threads, dim, dramMb, policy, durability, storeDir);
            double loadSeconds = runner.load();
            RunResult result = runner.run(loadSeconds);
            ReportWriter.printSummary(result, System.out);
            String prefix = Path.of(w.name()).getFileName().toString().replace(".properties", "");
            for (Path p : ReportWriter.writeFiles(result, out, prefix)) {
                System.out.println("wrote " + p);
            }
            return result.integrityFailures() == 0 ? 0 : 1;
        } finally {
            if (temporary) {
                try {
                    io.mlkv.storage.FileTrees.delete(storeDir);
                } catch (IOException e) {
                    System.err.println("could not delete " + storeDir + ": " + e.getMessage());
                }
            }
        }
    }
}
