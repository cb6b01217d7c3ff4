package io.mlkv.core.tiers;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;

/**
 * Open or closed, and who may run: every operation runs between {@link #enter()} and
 * {@link #exit()}, the store's {@code close()} runs between {@link #beginClose()} and
 * {@link #endClose()}, which waits for every operation in flight and holds new ones back, so close
 * never frees memory an operation still uses, and operations after it fail with "store is closed".
 *
 * <p>An operation's entry and exit touch only a striped counter ({@link LongAdder}: each thread
 * mostly its own cell), not a lock word every caller writes: single-key calls from many threads
 * would otherwise queue on that one cache line. Entry publishes the count before it reads whether a
 * close runs; a close publishes itself before it reads the count (both volatile, so one of the two
 * sees the other). The thread running the close may enter (its flush runs operations), and so may
 * a thread already inside an operation.
 */
public final class Lifecycle {
    private final LongAdder inFlight = new LongAdder();
    /** Guards the hand-over between closers and the entries that wait for them. */
    private final Object gate = new Object();
    /** The thread between beginClose and endClose, or null. */
    private volatile Thread closer;
    private volatile boolean closed;
    /** This thread's nesting of operations (an operation may run others: findOrInsert inserts). */
    private final ThreadLocal<int[]> holds = ThreadLocal.withInitial(() -> new int[1]);

    /** Starts an operation; throws if the store is closed. Pair with {@link #exit()}. Reentrant. */
    public void enter() {
        int[] depth = holds.get();
        if (depth[0]++ > 0) {
            return; // inside an operation already: a close waits for the outermost one
        }
        while (true) {
            inFlight.increment();
            Thread c = closer;
            if (c == null || c == Thread.currentThread()) {
                if (closed) {
                    inFlight.decrement();
                    depth[0] = 0;
                    throw new IllegalStateException("store is closed");
                }
                return;
            }
            inFlight.decrement();
            awaitNoCloser();
        }
    }

    /** Ends what {@link #enter()} started. */
    public void exit() {
        int[] depth = holds.get();
        if (--depth[0] == 0) {
            inFlight.decrement();
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
        while (inFlight.sum() != 0) {
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
