package io.mlkv.gpu.table;

/**
 * Whether an entry of a {@link GpuHashTable} holds a value newer than the tiers below it (dirty),
 * as a table used as the top tier of a write-back store marks its entries.
 */
public enum EntryState {
    /** The tiers below hold the same value, or the entry may be dropped. */
    CLEAN,
    /** Newer than every tier below: it must be written down before it may be dropped. */
    DIRTY
}
