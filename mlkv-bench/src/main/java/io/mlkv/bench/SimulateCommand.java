package io.mlkv.bench;

import io.mlkv.bench.run.Workload;
import io.mlkv.core.sim.PolicySimulator;
import io.mlkv.core.workload.KeyGenerator;
import io.mlkv.core.workload.KeyGenerators;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Replays a key trace against policies and tier sizes and prints where accesses were served. */
@Command(name = "simulate", mixinStandardHelpOptions = true,
        description = "Replays a synthetic or recorded key trace against each policy with the given cache "
                + "tier sizes (top tier first) and prints the share of accesses each tier served.")
final class SimulateCommand implements Callable<Integer> {

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

    @Option(names = "--accesses", defaultValue = "5000000", description = "Accesses to replay (default ${DEFAULT-VALUE}).")
    long accesses;

    @Option(names = "--batch", defaultValue = "1024", description = "Keys per batch (default ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--tiers", split = ",", defaultValue = "10000,100000",
            description = "Entries per cache tier, top first, e.g. HBM,DRAM (default ${DEFAULT-VALUE}).")
    List<Long> tiers;

    @Option(names = "--policies", split = ",", defaultValue = "lru,lfu,tinylfu",
            description = "Policies to compare (default ${DEFAULT-VALUE}).")
    List<String> policies;

    @Option(names = "--admissions", split = ",", defaultValue = "ALWAYS",
            description = "HBM admission of the top tier to compare: ALWAYS, SECOND_MISS (default ${DEFAULT-VALUE}).")
    List<io.mlkv.core.HbmAdmission> admissions;

    @Option(names = "--seed", defaultValue = "1", description = "Seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() {
        if (workload != null) {
            Workload w;
            try {
                w = Workload.load(workload);
            } catch (IllegalArgumentException e) {
                System.err.println(e.getMessage());
                return 2;
            }
            distribution = w.distribution();
            theta = w.theta();
            keys = Math.round(w.recordCount() * w.keySpaceFactor());
            hotSet = w.hotSetFraction();
            hotOps = w.hotOpFraction();
            batch = w.batchSize();
        }
        long[] sizes = tiers.stream().mapToLong(Long::longValue).toArray();
        String source = trace != null ? "trace " + trace
                : distribution + (distribution.contains("zipf") || distribution.equals("latest") || distribution.equals("scrambled")
                        ? " theta=" + theta : "") + " over " + String.format("%,d", keys) + " keys";
        System.out.printf("Replaying %,d accesses (%s) in batches of %d; cache tiers %s entries%n%n", accesses,
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
                KeyGenerator gen = trace != null ? KeyGenerators.fromFile(trace)
                        : KeyGenerators.create(new KeyGenerators.Spec(distribution, keys, theta, hotSet, hotOps, seed));
                PolicySimulator.Result r = PolicySimulator.run(policy, sizes, gen, accesses, batch,
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
}
