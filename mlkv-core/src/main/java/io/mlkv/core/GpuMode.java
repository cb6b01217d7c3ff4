package io.mlkv.core;

/** Whether the store puts an HBM tier on a CUDA GPU above DRAM. */
public enum GpuMode {
    /** DRAM and SSD tiers only. */
    OFF,
    /** Use a GPU tier when one can be opened; otherwise run on DRAM and SSD and log why. */
    AUTO,
    /** Require a GPU tier; building the store fails with the reason if it cannot be opened. */
    ON
}
