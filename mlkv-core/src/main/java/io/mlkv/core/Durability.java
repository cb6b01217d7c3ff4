package io.mlkv.core;

/** When an acknowledged write becomes safe from a crash of the process. */
public enum Durability {
    /**
     * Writes land in the DRAM tier and reach RocksDB when evicted, on {@code flush()} and on
     * {@code close()}. Everything acknowledged before the last successful {@code flush()} or
     * {@code close()} survives the process being killed; later writes may be lost.
     */
    WRITE_BACK,
    /**
     * Every batch is written to RocksDB's write-ahead log before the call returns, so every
     * acknowledged batch survives the process being killed. Slower writes, same reads.
     */
    WRITE_THROUGH
}
