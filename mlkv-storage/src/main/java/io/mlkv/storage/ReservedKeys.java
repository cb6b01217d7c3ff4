package io.mlkv.storage;

/**
 * The two key values no store, tier or table accepts, named once for Java and, through
 * {@code #define}s that a test compares with these, for the CUDA kernels.
 *
 * <p>They mark slot states, not entries: {@link #EMPTY} is what an unused slot holds, in the GPU
 * table and in the DRAM tier (whose memory GPU kernels read in place, so both agree on it), and
 * {@link #LOCKED} is what a GPU table slot holds while a kernel writes it. Every operation refuses
 * them with or without a GPU, so data moves between GPU and CPU-only deployments unchanged.
 */
public final class ReservedKeys {
    /** An unused slot ({@code Long.MIN_VALUE}); CUDA: {@code EMPTY_KEY}. */
    public static final long EMPTY = Long.MIN_VALUE;
    /** A GPU table slot being written ({@code Long.MIN_VALUE + 1}); CUDA: {@code LOCKED_KEY}. */
    public static final long LOCKED = Long.MIN_VALUE + 1;

    private ReservedKeys() {
    }

    /** Whether {@code key} is one of the two. */
    public static boolean isReserved(long key) {
        return key == EMPTY || key == LOCKED;
    }

    /**
     * Refuses a batch holding a reserved key.
     *
     * @param op what the batch is for, named in the message
     * @throws IllegalArgumentException naming the key and what it marks
     */
    public static void check(String op, long[] keys) {
        for (long k : keys) {
            if (isReserved(k)) {
                throw refused(op, k);
            }
        }
    }

    /** The exception {@link #check} throws for {@code key}. */
    public static IllegalArgumentException refused(String op, long key) {
        return new IllegalArgumentException(op + ": key " + key + why(key));
    }

    /** The exception for {@code key} at position {@code index} of a batch. */
    public static IllegalArgumentException refused(String op, long key, long index) {
        return new IllegalArgumentException(op + ": key " + key + " at index " + index + why(key));
    }

    private static String why(long key) {
        return " is reserved (" + (key == EMPTY ? "Long.MIN_VALUE marks unused slots"
                : "Long.MIN_VALUE + 1 marks GPU table slots being written") + "); map it to another key";
    }
}
