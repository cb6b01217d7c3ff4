package io.mlkv.bench.run;

/** What one operation of a workload does; every operation works on a batch of keys. */
public enum Operation {
    /** {@code multiGet} of existing keys. */
    READ("readproportion"),
    /** {@code multiPut} over existing keys. */
    UPDATE("updateproportion"),
    /** {@code multiPut} of keys never used before. */
    INSERT("insertproportion"),
    /** {@code multiGet}, then {@code multiPut} of the same keys. */
    READ_MODIFY_WRITE("readmodifywriteproportion"),
    /** Ordered range scan: not offered by MLKV. */
    SCAN("scanproportion"),
    /** {@code findOrInsert}: reads, creating absent keys with an initial vector. */
    FIND_OR_INSERT("findorinsertproportion"),
    /** {@code accumulate} of small deltas. */
    ACCUMULATE("accumulateproportion"),
    /** {@code multiDelete}. */
    DELETE("deleteproportion"),
    /** One training step: {@code multiGet} of a batch, then {@code accumulate} of gradients into it. */
    TRAIN_STEP("trainstepproportion");

    private final String property;

    Operation(String property) {
        this.property = property;
    }

    /** The workload property giving this operation's share of the mix. */
    public String property() {
        return property;
    }

    /** Whether the operation changes values in a way that deterministic verification cannot follow. */
    boolean perturbsValues() {
        return this == ACCUMULATE || this == TRAIN_STEP;
    }
}
