package io.mlkv.core.workload;

import java.util.SplittableRandom;

/**
 * Ranks {@code 0..n-1} drawn with probability proportional to {@code 1 / (rank + 1)^theta}:
 * rank 0 is the most popular. Uses the closed-form inversion of Gray et al., "Quickly generating
 * billion-record synthetic databases" (SIGMOD 1994), which needs the generalised harmonic number
 * zeta(n, theta), computed once in O(n).
 */
public final class ZipfianGenerator implements KeyGenerator {
    private final SplittableRandom random;
    private final long n;
    private final double theta;
    private final double alpha;
    private final double zetaN;
    private final double eta;
    private final double halfPowTheta;

    /**
     * @param n     number of ranks, at least 1
     * @param theta skew in {@code (0, 1)}; 0.99 is the classic YCSB setting
     */
    public ZipfianGenerator(long n, double theta, long seed) {
        if (n < 1) {
            throw new IllegalArgumentException("zipfian key count must be at least 1, was " + n);
        }
        if (!(theta > 0 && theta < 1)) {
            throw new IllegalArgumentException("zipfian theta must be in (0, 1), was " + theta);
        }
        this.random = new SplittableRandom(seed);
        this.n = n;
        this.theta = theta;
        this.alpha = 1.0 / (1.0 - theta);
        this.zetaN = zeta(n, theta);
        double zeta2 = zeta(Math.min(2, n), theta);
        this.eta = n < 2 ? 0 : (1 - Math.pow(2.0 / n, 1 - theta)) / (1 - zeta2 / zetaN);
        this.halfPowTheta = 1 + Math.pow(0.5, theta);
    }

    private static double zeta(long n, double theta) {
        double sum = 0;
        for (long i = 1; i <= n; i++) {
            sum += 1 / Math.pow(i, theta);
        }
        return sum;
    }

    /** The number of ranks. */
    public long n() {
        return n;
    }

    @Override
    public long next() {
        double u = random.nextDouble();
        double uz = u * zetaN;
        if (uz < 1) {
            return 0;
        }
        if (uz < halfPowTheta) {
            return Math.min(1, n - 1);
        }
        long rank = (long) (n * Math.pow(eta * u - eta + 1, alpha));
        return Math.min(rank, n - 1);
    }
}
