package io.mlkv.core;

import java.util.ArrayList;
import java.util.List;
import org.agrona.CloseHelper;

/**
 * What a store has opened, in order, so that a constructor that fails half-way and
 * {@link MlkvStore#close()} release the same things the same way: in reverse order of opening,
 * every one even if an earlier close fails, later failures attached as suppressed. Not
 * thread-safe: used by the constructor, then by close under the lifecycle write lock.
 */
final class OpenedResources implements AutoCloseable {
    private final List<AutoCloseable> opened = new ArrayList<>();

    /** Registers {@code resource} (null: nothing to register) and returns it. */
    <T extends AutoCloseable> T add(T resource) {
        if (resource != null) {
            opened.add(resource);
        }
        return resource;
    }

    /** Closes everything registered, in reverse, attaching any failure to {@code cause}. */
    void closeAfterFailure(Throwable cause) {
        try {
            close();
        } catch (RuntimeException | Error e) {
            cause.addSuppressed(e);
        }
    }

    /** Closes everything registered, in reverse; throws the first failure with the rest suppressed. */
    @Override
    public void close() {
        List<AutoCloseable> reversed = new ArrayList<>(opened);
        java.util.Collections.reverse(reversed);
        opened.clear();
        CloseHelper.closeAll(reversed);
    }
}
