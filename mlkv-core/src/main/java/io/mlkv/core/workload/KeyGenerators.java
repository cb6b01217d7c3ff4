package io.mlkv.core.workload;

import java.io.BufferedReader;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The key distributions the benchmark runner and the policy simulator offer, by name:
 * <ul>
 *   <li>{@code uniform}: every key equally likely;</li>
 *   <li>{@code zipfian}: rank-skewed with {@code theta}, key 0 hottest (hot keys are neighbours);</li>
 *   <li>{@code scrambled}: zipfian popularity with the hot keys spread over the key space by a hash;</li>
 *   <li>{@code latest}: zipfian over recency, the most recently inserted key hottest;</li>
 *   <li>{@code hotspot}: a fraction {@code hotOpFraction} of accesses go uniformly to the first
 *       {@code hotSetFraction} of keys, the rest uniformly to the others;</li>
 *   <li>a recorded trace: see {@link #fromFile}.</li>
 * </ul>
 */
public final class KeyGenerators {
    /** Names accepted by {@link #create}. */
    public static final List<String> NAMES = List.of("uniform", "zipfian", "scrambled", "latest", "hotspot");

    private KeyGenerators() {
    }

    /** Settings shared by the named distributions. */
    public record Spec(String name, long keyCount, double theta, double hotSetFraction,
            double hotOpFraction, long seed) {
        public Spec {
            if (name == null || !NAMES.contains(name.toLowerCase(Locale.ROOT))) {
                throw new IllegalArgumentException("unknown key distribution '" + name + "'; one of " + NAMES);
            }
            if (keyCount < 1) {
                throw new IllegalArgumentException("key count must be at least 1, was " + keyCount);
            }
            if (!(hotSetFraction > 0 && hotSetFraction < 1) || !(hotOpFraction >= 0 && hotOpFraction <= 1)) {
                throw new IllegalArgumentException("hotspot fractions must be in (0, 1), were " + hotSetFraction
                        + " and " + hotOpFraction);
            }
        }
    }

    /** Creates a generator; each call returns an independent one. */
    public static KeyGenerator create(Spec spec) {
        long n = spec.keyCount();
        switch (spec.name().toLowerCase(Locale.ROOT)) {
            case "uniform": {
                SplittableRandom r = new SplittableRandom(spec.seed());
                return () -> r.nextLong(n);
            }
            case "zipfian":
                return new ZipfianGenerator(n, spec.theta(), spec.seed());
            case "scrambled": {
                ZipfianGenerator z = new ZipfianGenerator(n, spec.theta(), spec.seed());
                return () -> Math.floorMod(mix(z.next() + 0x9E3779B97F4A7C15L), n);
            }
            case "latest":
                return new LatestGenerator(n, spec.theta(), spec.seed());
            case "hotspot": {
                SplittableRandom r = new SplittableRandom(spec.seed());
                long hot = Math.max(1, (long) (n * spec.hotSetFraction()));
                double hotOps = spec.hotOpFraction();
                return () -> r.nextDouble() < hotOps || hot == n ? r.nextLong(hot) : hot + r.nextLong(n - hot);
            }
            default:
                throw new IllegalArgumentException("unknown key distribution '" + spec.name() + "'; one of " + NAMES);
        }
    }

    /**
     * Replays a recorded trace in a loop. A file ending in {@code .bin} holds little-endian
     * 64-bit keys back to back; any other file holds one decimal key per line ({@code #} starts a
     * comment line).
     */
    public static KeyGenerator fromFile(Path file) {
        long[] keys = readTrace(file);
        if (keys.length == 0) {
            throw new IllegalArgumentException("trace " + file + " holds no keys");
        }
        return cycling(keys);
    }

    /** Returns {@code keys} in order, from the start again after the last. */
    public static KeyGenerator cycling(long[] keys) {
        if (keys.length == 0) {
            throw new IllegalArgumentException("no keys to cycle through");
        }
        int[] pos = new int[1];
        return () -> {
            long k = keys[pos[0]];
            pos[0] = pos[0] + 1 == keys.length ? 0 : pos[0] + 1;
            return k;
        };
    }

    /** Reads every key of a trace file; see {@link #fromFile}. */
    public static long[] readTrace(Path file) {
        try {
            if (file.getFileName().toString().endsWith(".bin")) {
                long bytes = Files.size(file);
                if (bytes % 8 != 0) {
                    throw new IllegalArgumentException("binary trace " + file + " is " + bytes
                            + " bytes, not a whole number of 8-byte keys");
                }
                long[] keys = new long[Math.toIntExact(bytes / 8)];
                try (InputStream in = new DataInputStream(Files.newInputStream(file))) {
                    byte[] buf = new byte[8 << 10];
                    int k = 0;
                    int n;
                    ByteBuffer bb = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
                    while ((n = in.readNBytes(buf, 0, buf.length)) > 0) {
                        bb.clear().limit(n);
                        while (bb.remaining() >= 8) {
                            keys[k++] = bb.getLong();
                        }
                    }
                }
                return keys;
            }
            long[] keys = new long[1024];
            int k = 0;
            int lineNo = 0;
            try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
                String line;
                while ((line = r.readLine()) != null) {
                    lineNo++;
                    line = line.trim();
                    if (line.isEmpty() || line.startsWith("#")) {
                        continue;
                    }
                    if (k == keys.length) {
                        keys = Arrays.copyOf(keys, k * 2);
                    }
                    try {
                        keys[k++] = Long.parseLong(line);
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("trace " + file + " line " + lineNo
                                + ": '" + line + "' is not a 64-bit decimal key");
                    }
                }
            }
            return Arrays.copyOf(keys, k);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read trace " + file, e);
        }
    }

    static long mix(long x) {
        x = (x ^ (x >>> 33)) * 0xff51afd7ed558ccdL;
        x = (x ^ (x >>> 33)) * 0xc4ceb9fe1a85ec53L;
        return x ^ (x >>> 33);
    }

    /** Zipfian over recency: key {@code count - 1 - rank}, growing with inserts. */
    private static final class LatestGenerator implements KeyGenerator {
        private final double theta;
        private final SplittableRandom seeds;
        private long count;
        private ZipfianGenerator ranks;

        LatestGenerator(long n, double theta, long seed) {
            this.theta = theta;
            this.seeds = new SplittableRandom(seed);
            this.count = n;
            this.ranks = new ZipfianGenerator(n, theta, seeds.nextLong());
        }

        @Override
        public long next() {
            long rank = ranks.next();
            return count - 1 - Math.min(rank, count - 1);
        }

        @Override
        public void grow(long added) {
            count += added;
            // Rebuilding costs O(n); only when the key count has grown by a tenth.
            if (count > ranks.n() * 11 / 10) {
                ranks = new ZipfianGenerator(count, theta, seeds.nextLong());
            }
        }
    }
}
