package io.mlkv.storage.policy;

import java.util.List;
import java.util.Locale;

/** Creates eviction policies by name. */
public final class Policies {
    /** The names {@link #create} accepts. */
    public static final List<String> NAMES = List.of("lru", "lfu", "tinylfu");

    private Policies() {
    }

    /**
     * Creates a policy.
     *
     * @param name     {@code lru}, {@code lfu} or {@code tinylfu} (case-insensitive)
     * @param capacity number of entries the tier using the policy holds
     */
    public static EvictionPolicy create(String name, long capacity) {
        if (name == null) {
            throw new IllegalArgumentException("policy name must not be null; one of " + NAMES);
        }
        switch (name.toLowerCase(Locale.ROOT)) {
            case "lru":
                return new LruPolicy();
            case "lfu":
                return new LfuPolicy();
            case "tinylfu":
                return new TinyLfuPolicy(capacity);
            default:
                throw new IllegalArgumentException("unknown policy '" + name + "'; one of " + NAMES);
        }
    }

    /** Checks a policy name without creating it. */
    public static String checkName(String name) {
        create(name, 16);
        return name.toLowerCase(Locale.ROOT);
    }
}
