package io.mlkv.core;

/** How the store keeps {@link MlkvStore#size()}: on every write, or when asked. */
public enum SizeCounting {
    /**
     * Every write settles whether each of its keys is new, so {@code size()} is exact and costs
     * nothing to read. A put of a key DRAM does not hold asks RocksDB whether it exists: with most
     * of the table below DRAM, that lookup costs about as much as the write itself.
     */
    ON_WRITE,
    /**
     * Host-array puts and deletes do not ask RocksDB whether their keys exist. {@code size()} is
     * still exact: it writes back what the tiers above hold dirty and counts RocksDB's keys, in
     * time proportional to the table (the count is kept until the next write). {@code stats()}
     * reports size -1. Device-pointer writes still count their keys as they go. Pick it for
     * write-heavy tables much larger than DRAM that rarely ask for their size.
     */
    ON_DEMAND
}
