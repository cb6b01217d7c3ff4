package io.mlkv.gpu.table;

import io.mlkv.gpu.cuda.PackedStruct;
import java.util.List;

/** The argument structs of the table kernels in {@code src-native/cuda/mlkv_table.cu}. */
final class TableKernelArgs {
    private static final List<String> MARKS = List.of("marks.slot", "marks.win", "marks.flag", "marks.epoch");

    static final PackedStruct FIND = new PackedStruct("FindArgs", List.of("keys", "digests", "values", "bucket_mask",
            "dim", "in_keys", "n", "out", "found", "out_scores", "scores", "missed_keys", "missed_index",
            "missed_count", "touch", "clock", "out_index"));

    static final PackedStruct CONTAINS = new PackedStruct("ContainsArgs", List.of("keys", "digests", "bucket_mask",
            "in_keys", "n", "found"));

    static final PackedStruct UPSERT = new PackedStruct("UpsertArgs", concat(List.of("keys", "scores", "digests",
            "values"), MARKS, List.of("bucket_locks", "size", "bucket_mask", "dim", "mode", "score_mode", "clock",
            "in_keys", "in_values", "in_scores", "n", "out", "found_out", "evicted_keys", "evicted_values",
            "evicted_scores", "evicted_count", "rejected_count", "dup_seen", "dirty", "mark", "evicted_dirty", "sketch",
            "sketch_mask")));

    static final PackedStruct ASSIGN = new PackedStruct("AssignArgs", concat(List.of("keys", "scores", "digests",
            "values"), MARKS, List.of("bucket_mask", "dim", "score_mode", "clock", "in_keys", "in_values",
            "in_scores", "n", "found_out", "dup_seen", "dirty_set", "missed_keys", "missed_index", "missed_count",
            "index_base")));

    static final PackedStruct DEDUP = new PackedStruct("DedupArgs", List.of("in_keys", "n", "set_keys", "win",
            "set_mask", "slot_of", "flag", "epoch", "repeated", "positions"));

    static final PackedStruct REWRITE = new PackedStruct("RewriteArgs", List.of("keys", "digests", "values",
            "bucket_mask", "dim", "in_keys", "in_values", "n", "slot_of", "win", "repeated", "flag", "epoch"));

    static final PackedStruct GROUPED_INSTALL = new PackedStruct("GroupedInstallArgs", List.of("keys", "scores",
            "digests", "values", "dirty", "size", "buckets", "dim", "score_mode", "clock", "in_keys", "in_values", "order",
            "starts", "total", "mark", "found_out", "evicted_keys", "evicted_values", "evicted_scores", "evicted_dirty",
            "evicted_count"));

    /** Every struct above, for the test that reads the kernel source. */
    static final List<PackedStruct> ALL = List.of(FIND, CONTAINS, UPSERT, ASSIGN, DEDUP, REWRITE, GROUPED_INSTALL);

    private TableKernelArgs() {
    }

    @SafeVarargs
    private static List<String> concat(List<String>... parts) {
        return java.util.Arrays.stream(parts).flatMap(List::stream).toList();
    }
}
