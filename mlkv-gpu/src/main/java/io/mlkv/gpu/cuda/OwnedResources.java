package io.mlkv.gpu.cuda;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.agrona.CloseHelper;

/**
 * The native resources one object allocated, in the order it allocated them, closed in reverse
 * with every close run even if one fails (the first failure thrown, later ones suppressed).
 * Closing twice closes nothing the second time. Not thread-safe: its owner's lock guards it.
 */
public final class OwnedResources implements AutoCloseable {
    private final List<AutoCloseable> resources = new ArrayList<>();

    /** Records {@code resource} as owned and returns it. */
    public <T extends AutoCloseable> T add(T resource) {
        resources.add(resource);
        return resource;
    }

    @Override
    public void close() {
        List<AutoCloseable> reversed = new ArrayList<>(resources);
        Collections.reverse(reversed);
        resources.clear();
        CloseHelper.closeAll(reversed);
    }
}
