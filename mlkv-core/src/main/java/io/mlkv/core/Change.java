package io.mlkv.core;

/**
 * What a batch written through {@link WritePath} does to each key.
 *
 * @param kind        the operation
 * @param rows        values ({@link Kind#PUT}) or deltas ({@link Kind#ACCUMULATE}), {@code dim} per key
 * @param out         for {@link Kind#INSERT_ABSENT}: receives every key's value
 * @param initializer for {@link Kind#INSERT_ABSENT}: the vector of a key that is absent
 * @param absentSince for {@link Kind#INSERT_ABSENT}: the mutation epoch at which the caller found
 *                    every key absent (reading them again is skipped if no write happened since);
 *                    {@link #NO_EPOCH} otherwise
 */
record Change(Kind kind, float[] rows, float[] out, VectorInitializer initializer, long absentSince) {
    /** No epoch: the write reads the current values first. */
    static final long NO_EPOCH = -1;

    enum Kind { PUT, ACCUMULATE, INSERT_ABSENT }

    /** Each key gets its (last) row. */
    static Change put(float[] values) {
        return new Change(Kind.PUT, values, null, null, NO_EPOCH);
    }

    /** Each key gets every one of its deltas added (absent keys start at zero). */
    static Change accumulate(float[] deltas) {
        return new Change(Kind.ACCUMULATE, deltas, null, null, NO_EPOCH);
    }

    /** {@link #put} or {@link #accumulate}, as {@code kind} says. */
    static Change of(Kind kind, float[] rows) {
        return switch (kind) {
            case PUT -> put(rows);
            case ACCUMULATE -> accumulate(rows);
            case INSERT_ABSENT -> throw new IllegalArgumentException("INSERT_ABSENT needs an initializer");
        };
    }

    /** Absent keys are inserted with the initializer's vector; every key's value goes to {@code out}. */
    static Change insertAbsent(float[] out, VectorInitializer initializer, long absentSince) {
        return new Change(Kind.INSERT_ABSENT, null, out, initializer, absentSince);
    }
}
