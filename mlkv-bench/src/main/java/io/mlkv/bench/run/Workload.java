package io.mlkv.bench.run;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;

/**
 * A workload: how many records are loaded, how many operations run, how large each operation's
 * batch is, which operations in which shares, and how keys are chosen. Read from a properties
 * file, either one shipped in the jar (by name, see {@link #BUILT_IN}) or a path.
 *
 * <p>Properties: {@code recordcount}, {@code operationcount}, {@code batchsize}, one
 * {@code <op>proportion} per {@link Operation}, {@code requestdistribution} (uniform, zipfian,
 * scrambled, latest, hotspot), {@code zipfianconstant} (theta, default 0.99),
 * {@code hotspotdatafraction}, {@code hotspotopnfraction}, and {@code keyspacefactor} (reads
 * draw from {@code recordcount x keyspacefactor} keys, default 1).
 */
public record Workload(String name, long recordCount, long operationCount, int batchSize,
        Map<Operation, Double> mix, String distribution, double theta, double hotSetFraction,
        double hotOpFraction, double keySpaceFactor) {

    /** Workloads shipped in the jar. */
    public static final List<String> BUILT_IN = List.of("workloada", "workloadb", "workloadc", "workloadd",
            "workloade", "workloadf", "embedding-train", "embedding-lookup");

    public Workload {
        if (recordCount < 1 || operationCount < 0 || batchSize < 1) {
            throw new IllegalArgumentException("workload " + name + ": recordcount must be >= 1, operationcount >= 0 and "
                    + "batchsize >= 1; were " + recordCount + ", " + operationCount + ", " + batchSize);
        }
        double total = 0;
        for (Map.Entry<Operation, Double> e : mix.entrySet()) {
            if (e.getValue() < 0) {
                throw new IllegalArgumentException("workload " + name + ": " + e.getKey().property() + " is negative");
            }
            total += e.getValue();
        }
        if (total <= 0) {
            throw new IllegalArgumentException("workload " + name + ": no operation has a positive proportion");
        }
        if (mix.getOrDefault(Operation.SCAN, 0.0) > 0) {
            throw new IllegalArgumentException("workload " + name + " asks for range scans (scanproportion), which "
                    + "MLKV does not offer: it is a hashed key->vector store with no key order. Use another workload.");
        }
        // The key distribution is checked here, not when the run's first key is drawn after the load.
        new io.mlkv.core.workload.KeyGenerators.Spec(distribution, 1, theta, hotSetFraction, hotOpFraction, 0);
        if (!(theta > 0 && theta < 1)) {
            throw new IllegalArgumentException("workload " + name + ": zipfianconstant (--theta) must be in (0, 1), was " + theta);
        }
        if (keySpaceFactor < 1) {
            throw new IllegalArgumentException("workload " + name + ": keyspacefactor must be >= 1, was " + keySpaceFactor);
        }
        mix = Collections.unmodifiableMap(new EnumMap<>(mix));
    }

    /** Loads a built-in workload by name, or a properties file by path. */
    public static Workload load(String nameOrPath) {
        Properties p = new Properties();
        String resource = "/io/mlkv/bench/workloads/" + nameOrPath + ".properties";
        try (InputStream in = Workload.class.getResourceAsStream(resource)) {
            if (in != null) {
                p.load(in);
            } else {
                Path file = Path.of(nameOrPath);
                if (!Files.isRegularFile(file)) {
                    throw new IllegalArgumentException("no workload '" + nameOrPath + "': not one of " + BUILT_IN
                            + " and not a readable properties file");
                }
                try (InputStream f = Files.newInputStream(file)) {
                    p.load(f);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading workload " + nameOrPath, e);
        }
        return fromProperties(nameOrPath, p);
    }

    static Workload fromProperties(String name, Properties p) {
        EnumMap<Operation, Double> mix = new EnumMap<>(Operation.class);
        for (Operation op : Operation.values()) {
            double share = number(p, op.property(), 0);
            if (share != 0) {
                mix.put(op, share);
            }
        }
        return new Workload(name, (long) number(p, "recordcount", 100_000), (long) number(p, "operationcount", 100_000),
                (int) number(p, "batchsize", 1), mix, p.getProperty("requestdistribution", "zipfian").trim().toLowerCase(Locale.ROOT),
                number(p, "zipfianconstant", 0.99), number(p, "hotspotdatafraction", 0.2),
                number(p, "hotspotopnfraction", 0.8), number(p, "keyspacefactor", 1.0));
    }

    private static double number(Properties p, String key, double fallback) {
        String v = p.getProperty(key);
        if (v == null) {
            return fallback;
        }
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("workload property " + key + "=" + v + " is not a number");
        }
    }

    /** A copy with the given settings replaced where not null. */
    public Workload with(Long records, Long operations, Integer batch, String dist, Double zipfTheta) {
        return new Workload(name, records != null ? records : recordCount, operations != null ? operations : operationCount,
                batch != null ? batch : batchSize, mix, dist != null ? dist.toLowerCase(Locale.ROOT) : distribution,
                zipfTheta != null ? zipfTheta : theta, hotSetFraction, hotOpFraction, keySpaceFactor);
    }

    /** Whether any operation in the mix changes values beyond what verification can predict. */
    public boolean perturbsValues() {
        for (Operation op : mix.keySet()) {
            if (op.perturbsValues()) {
                return true;
            }
        }
        return false;
    }
}
