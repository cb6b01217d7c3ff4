package io.mlkv.gpu.table;

/** How a {@link GpuHashTable} scores entries; a full bucket evicts its lowest score. */
public enum ScoreMode {
    /** Score is the table's call counter at the last insert or update: least recently written goes first. */
    LRU(0),
    /** Score counts inserts, updates and find-or-insert hits: least frequently used goes first. */
    LFU(1),
    /**
     * Score is given by the caller with each insert; a key whose score is below the lowest score of
     * its full bucket is not inserted (counted as rejected).
     */
    CUSTOM(2);

    final int code;

    ScoreMode(int code) {
        this.code = code;
    }
}
