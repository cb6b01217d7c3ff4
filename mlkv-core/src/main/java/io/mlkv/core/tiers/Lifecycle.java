package io.mlkv.core.tiers;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.LockSupport;

/**
 * Open or closed, and who may run: every operation runs between {@link #enter()} and
 * {@link #exit()}, the store's {@code close()} runs between {@link #beginClose()} and
 * {@link #endClose()}, which waits for every operation in flight and holds new ones back, so close
 * never frees memory an operation still uses, and operations after it fail with "store is closed".
 *
 * <p>An operation's entry and exit touch only a per-thread slot of a striped counter (each slot on
 * its own cache line; a thread always counts in the same slot, so while an operation runs its slot
 * stays at one or more, whatever other threads do), not a lock word every caller writes: single-key
 * calls from many threads would otherwise queue on that one cache line. Entry publishes the count
 * before it reads whether a close runs; a close publishes itself before it reads the counts (both
 * volatile, so one of the two sees the other). The thread running the close may enter (its flush
 * runs operations), and so may a thread already inside an operation.
 */
public final class Lifecycle {
    private static final int SLOTS = 64;
    /** Longs between two slots: a cache line and a spare, so neighbours never share a line. */
    private static final int STRIDE = 16;
    /** Operations in flight, counted in per-thread slots {@code i * STRIDE}. */
    private final AtomicLongArray inFlight = new AtomicLongArray(SLOTS * STRIDE);
    /** Guards the hand-over between closers and the entries that wait for them. */
    private final Object gate = new Object();
    /** The thread between beginClose and endClose, or null. */
    private volatile Thread closer;
    private volatile boolean closed;
    /**
     * This thread's nesting of operations (an operation may run others: findOrInsert inserts) and
     * its slot of {@link #inFlight}.
     */
    private final ThreadLocal<int[]> holds = ThreadLocal.withInitial(
            () -> new int[] {0, (int) (mix(Thread.currentThread().getId()) & (SLOTS - 1)) * STRIDE});

    /** Starts an operation; throws if the store is closed. Pair with {@link #exit()}. Reentrant. */
    public void enter() {
        int[] depth = holds.get();
        if (depth[0]++ > 0) {
            return; // inside an operation already: a close waits for the outermost one
        }
        int slot = depth[1];
        while (true) {
            inFlight.incrementAndGet(slot);
            Thread c = closer;
            if (c == null || c == Thread.currentThread()) {
                if (closed) {
                    inFlight.decrementAndGet(slot);
                    depth[0] = 0;
                    throw new IllegalStateException("store is closed");
                }
                return;
            }
            inFlight.decrementAndGet(slot);
            awaitNoCloser();
        }
    }

    /**
     * Starts work that this thread does for an operation in flight on another thread (a part of its
     * batch): it never waits for a close, which waits for that operation anyway, and operations it
     * runs inside count as nested. The caller must hold its own operation open until this work has
     * ended. Pair with {@link #exit()}.
     */
    public void enterFor() {
        int[] depth = holds.get();
        if (depth[0]++ == 0) {
            inFlight.incrementAndGet(depth[1]);
        }
    }

    /** Ends what {@link #enter()} or {@link #enterFor()} started. */
    public void exit() {
        int[] depth = holds.get();
        if (--depth[0] == 0) {
            inFlight.decrementAndGet(depth[1]);
        }
    }

    /** Throws if the store is closed (for calls that touch no tier). */
    public void checkOpen() {
        if (closed) {
            throw new IllegalStateException("store is closed");
        }
    }

    public boolean isClosed() {
        return closed;
    }

    /**
     * Waits for every operation in flight and keeps new ones out (they wait); pair with
     * {@link #endClose()}. Must not be called from inside an operation. Closers take turns.
     */
    public void beginClose() {
        synchronized (gate) {
            awaitNoCloserLocked();
            closer = Thread.currentThread();
        }
        long waitNanos = 1_000;
        while (anyInFlight()) {
            LockSupport.parkNanos(waitNanos);
            waitNanos = Math.min(waitNanos * 2, TimeUnit.MILLISECONDS.toNanos(1));
        }
    }

    /** Marks the store closed; called between {@link #beginClose()} and {@link #endClose()}. */
    public void markClosed() {
        closed = true;
    }

    /** Lets waiting operations and closers go on (they fail if {@link #markClosed()} was called). */
    public void endClose() {
        synchronized (gate) {
            closer = null;
            gate.notifyAll();
        }
    }

    private boolean anyInFlight() {
        for (int i = 0; i < SLOTS * STRIDE; i += STRIDE) {
            if (inFlight.get(i) != 0) {
                return true;
            }
        }
        return false;
    }

    private static long mix(long x) {
        x *= 0x9E3779B97F4A7C15L;
        return x ^ (x >>> 32);
    }

    private void awaitNoCloser() {
        synchronized (gate) {
            awaitNoCloserLocked();
        }
    }

    /** Waits, uninterruptibly as a lock would, until no close runs; the interrupt status is kept. */
    private void awaitNoCloserLocked() {
        boolean interrupted = false;
        while (closer != null) {
            try {
                gate.wait();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
