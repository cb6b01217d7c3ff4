package io.mlkv.bench;

import io.mlkv.bench.run.Workload;
import io.mlkv.core.sim.PolicySimulator;
import io.mlkv.core.workload.KeyGenerator;
import io.mlkv.core.workload.KeyGenerators;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** Replays a key trace against policies and tier sizes and prints where accesses were served. */
@Command(name = "simulate", mixinStandardHelpOptions = true,
        description = "Replays a synthetic or recorded key trace against each policy with the given cache "
                + "tier sizes (top tier first) and prints the share of accesses each tier served. Every tier is "
                + "modelled as the DRAM tier is built (16-slot buckets); the GPU table's 128-slot buckets are not, "
                + "so an HBM tier's figure is an estimate.")
final class SimulateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--distribution", defaultValue = "zipfian",
            description = "uniform, zipfian, scrambled, latest or hotspot (default ${DEFAULT-VALUE}); ignored with --trace.")
    String distribution;

    @Option(names = {"-w", "--workload"},
            description = "Take keys, distribution, theta, hotspot shares and batch size from a workload (as `run` does).")
    String workload;

    @Option(names = "--trace", description = "Recorded trace: one decimal key per line, or little-endian longs in a .bin file.")
    Path trace;

    @Option(names = "--keys", defaultValue = "1000000", description = "Distinct keys (default ${DEFAULT-VALUE}).")
    long keys;

    @Option(names = "--theta", defaultValue = "0.99", description = "Zipfian skew (default ${DEFAULT-VALUE}).")
    double theta;

    @Option(names = "--hot-set", defaultValue = "0.2", description = "Hotspot: share of keys that are hot (default ${DEFAULT-VALUE}).")
    double hotSet;

    @Option(names = "--hot-ops", defaultValue = "0.8", description = "Hotspot: share of accesses to hot keys (default ${DEFAULT-VALUE}).")
    double hotOps;

    @Option(names = "--accesses",
            description = "Accesses to replay (default 5000000 for a distribution; for --trace, the trace's length: replayed once).")
    Long accesses;

    @Option(names = "--batch", defaultValue = "1024", description = "Keys per batch (default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--tiers", split = ",", defaultValue = "10000,100000",
            description = "Entries per cache tier, top first, e.g. HBM,DRAM (default ${DEFAULT-VALUE}).")
    List<Long> tiers;

    @Option(names = "--policies", split = ",", defaultValue = "lru,lfu,tinylfu",
            description = "Policies to compare (default ${DEFAULT-VALUE}).")
    List<String> policies;

    @Option(names = "--admissions", split = ",", defaultValue = "ALWAYS",
            description = "HBM admission of the top tier to compare: ALWAYS, SECOND_MISS (default ${DEFAULT-VALUE}); the store's FREQUENCY is the tinylfu policy here.")
    List<io.mlkv.core.HbmAdmission> admissions;

    @Option(names = "--seed", defaultValue = "1", description = "Seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() {
        if (workload != null) {
            Workload w = Workload.load(workload);
            distribution = w.distribution();
            theta = w.theta();
            keys = Math.round(w.recordCount() * w.keySpaceFactor());
            hotSet = w.hotSetFraction();
            hotOps = w.hotOpFraction();
            batch = w.batchSize();
        }
        checkOptions();
        long[] sizes = tiers.stream().mapToLong(Long::longValue).toArray();
        long[] traceKeys = trace == null ? null : KeyGenerators.readTrace(trace);
        if (traceKeys != null && traceKeys.length == 0) {
            throw new ParameterException(spec.commandLine(), "--trace " + trace + " holds no keys");
        }
        long replay = accesses != null ? accesses : traceKeys != null ? traceKeys.length : 5_000_000L;
        String source;
        if (traceKeys != null) {
            source = String.format("trace %s of %,d keys, %s", trace, traceKeys.length, replay == traceKeys.length ? "once"
                    : String.format("%.2f times", (double) replay / traceKeys.length));
        } else {
            source = distribution + (distribution.contains("zipf") || distribution.equals("latest") || distribution.equals("scrambled")
                    ? " theta=" + theta : "") + " over " + String.format("%,d", keys) + " keys";
        }
        System.out.printf("Replaying %,d accesses (%s) in batches of %d; cache tiers %s entries%n%n", replay,
                source, batch, tiers);
        StringBuilder header = new StringBuilder("| policy | top-tier admission ");
        StringBuilder rule = new StringBuilder("|---|---");
        for (int t = 0; t < sizes.length; t++) {
            header.append("| tier ").append(t + 1).append(" hit % ");
            rule.append("|---");
        }
        System.out.println(header.append("| SSD reads % |"));
        System.out.println(rule.append("|---|"));
        for (String policy : policies) {
            for (io.mlkv.core.HbmAdmission admission : admissions) {
                KeyGenerator gen = traceKeys != null ? KeyGenerators.cycling(traceKeys)
                        : KeyGenerators.create(new KeyGenerators.Spec(distribution, keys, theta, hotSet, hotOps, seed));
                PolicySimulator.Result r = PolicySimulator.run(policy, sizes, gen, replay, batch,
                        admission.newFilter(sizes[0]));
                StringBuilder row = new StringBuilder("| ").append(r.policy()).append(" | ").append(admission).append(' ');
                for (int t = 0; t < sizes.length; t++) {
                    row.append(String.format("| %.2f ", 100 * r.hitRate(t)));
                }
                System.out.println(row.append(String.format("| %.2f |", 100 * r.ssdRate())));
            }
        }
        return 0;
    }

    /** Every option checked before anything is printed or read. */
    private void checkOptions() {
        if (keys < 1) {
            throw new ParameterException(spec.commandLine(), "--keys must be at least 1, was " + keys);
        }
        if (batch < 1) {
            throw new ParameterException(spec.commandLine(), "--batch must be at least 1, was " + batch);
        }
        if (accesses != null && accesses < 1) {
            throw new ParameterException(spec.commandLine(), "--accesses must be at least 1, was " + accesses);
        }
        if (tiers.isEmpty() || tiers.stream().anyMatch(t -> t < 1)) {
            throw new ParameterException(spec.commandLine(), "--tiers must list entries per tier, each at least 1, was " + tiers);
        }
        if (admissions.contains(io.mlkv.core.HbmAdmission.FREQUENCY)) {
            throw new ParameterException(spec.commandLine(),
                    "--admissions FREQUENCY is decided against each victim on the GPU; replay it as --policies tinylfu");
        }
        for (String p : policies) {
            try {
                io.mlkv.storage.policy.Policies.checkName(p);
            } catch (IllegalArgumentException e) {
                throw new ParameterException(spec.commandLine(), "--policies: " + e.getMessage());
            }
        }
        if (trace == null) {
            try {
                KeyGenerators.create(new KeyGenerators.Spec(distribution, keys, theta, hotSet, hotOps, seed));
            } catch (IllegalArgumentException e) {
                throw new ParameterException(spec.commandLine(), e.getMessage() + " (--distribution, --theta, --hot-set, --hot-ops)");
            }
        } else if (!java.nio.file.Files.isReadable(trace)) {
            throw new ParameterException(spec.commandLine(), "--trace " + trace + ": no such readable file");
        }
    }
}
