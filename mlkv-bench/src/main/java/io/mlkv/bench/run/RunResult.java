package io.mlkv.bench.run;

import io.mlkv.core.StoreStats;
import java.util.List;

/**
 * What a workload run measured.
 *
 * @param workload          the workload's name
 * @param threads           client threads
 * @param dim               floats per vector
 * @param batchSize         keys per operation
 * @param loadSeconds       time to load the records (flush included)
 * @param runSeconds        time of the timed phase
 * @param operations        operations completed in the timed phase
 * @param keys              keys those operations touched
 * @param perOperation      latency and counts per operation type
 * @param timeline          one point per second of the timed phase
 * @param verifiedKeys      keys read back and compared with what was written (--verify), or -1
 *                          without --verify
 * @param integrityFailures of those, keys read back with a value other than the one written
 * @param stats             the store's per-tier counters at the end
 */
public record RunResult(String workload, int threads, int dim, int batchSize, double loadSeconds, double runSeconds,
        long operations, long keys, List<OperationStats> perOperation, List<TimelinePoint> timeline,
        long verifiedKeys, long integrityFailures, StoreStats stats) {

    /** Operations per second of the timed phase. */
    public double operationsPerSecond() {
        return operations / runSeconds;
    }

    /** Keys per second of the timed phase (operations x their batch sizes). */
    public double keysPerSecond() {
        return keys / runSeconds;
    }

    /**
     * Latency of one operation type, microseconds per operation (one batch).
     *
     * @param count operations
     * @param keys  keys they touched
     */
    public record OperationStats(String operation, long count, long keys, double meanMicros, long p50Micros,
            long p95Micros, long p99Micros, long p999Micros, long maxMicros) {
    }

    /**
     * One second of the timed phase.
     *
     * @param second       seconds since the timed phase started
     * @param opsPerSecond operations completed in that second
     * @param keysPerSecond keys completed in that second
     * @param dramHitRate  share of lookups that second served by DRAM, NaN if none
     */
    public record TimelinePoint(double second, double opsPerSecond, double keysPerSecond, double dramHitRate) {
    }
}
