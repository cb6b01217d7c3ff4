package io.mlkv.storage;

/** Argument checks shared by every batch operation, so all tiers reject bad input the same way. */
public final class BatchChecks {
    private BatchChecks() {
    }

    /** Checks that {@code keys} is present and {@code values} holds exactly one row per key. */
    public static void checkRows(String op, long[] keys, float[] values, int dim) {
        checkKeys(op, keys);
        if (values == null) {
            throw new IllegalArgumentException(op + ": values must not be null");
        }
        if ((long) values.length != (long) keys.length * dim) {
            throw new IllegalArgumentException(op + ": values.length must be keys.length * dim = "
                    + keys.length + " * " + dim + " = " + (long) keys.length * dim + ", was "
                    + values.length);
        }
    }

    /** Checks that {@code out} can hold at least one row per key. */
    public static void checkOutputRows(String op, long[] keys, float[] out, int dim) {
        checkKeys(op, keys);
        if (out == null) {
            throw new IllegalArgumentException(op + ": out must not be null");
        }
        if ((long) out.length < (long) keys.length * dim) {
            throw new IllegalArgumentException(op + ": out.length must be at least keys.length * dim = "
                    + (long) keys.length * dim + ", was " + out.length);
        }
    }

    /** Checks that {@code flags} has one entry per key. */
    public static void checkFlags(String op, String name, long[] keys, boolean[] flags) {
        if (flags == null) {
            throw new IllegalArgumentException(op + ": " + name + " must not be null");
        }
        if (flags.length < keys.length) {
            throw new IllegalArgumentException(op + ": " + name + ".length must be at least keys.length = "
                    + keys.length + ", was " + flags.length);
        }
    }

    public static void checkKeys(String op, long[] keys) {
        if (keys == null) {
            throw new IllegalArgumentException(op + ": keys must not be null");
        }
    }
}
