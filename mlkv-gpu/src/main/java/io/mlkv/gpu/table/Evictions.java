package io.mlkv.gpu.table;

import jcuda.driver.CUdeviceptr;

/**
 * Where an upsert writes the entries it evicts (device memory, room for the batch); null
 * {@code keys}: dropped and counted. {@code scores} and {@code dirty} (one byte each, the
 * entry's dirty mark) may be null.
 */
public record Evictions(CUdeviceptr keys, CUdeviceptr values, CUdeviceptr scores, CUdeviceptr dirty) {
    /** Evicted entries are dropped (and counted in {@link GpuHashTable#evictions()}). */
    public static final Evictions DROPPED = new Evictions(null, null, null, null);

    /** Keys, rows and dirty marks of the evicted entries. */
    public static Evictions withMarks(CUdeviceptr keys, CUdeviceptr values, CUdeviceptr dirty) {
        return new Evictions(keys, values, null, dirty);
    }
}
