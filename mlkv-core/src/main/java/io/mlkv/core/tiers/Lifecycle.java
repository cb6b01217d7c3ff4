package io.mlkv.core.tiers;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * Open or closed, and who may run: every operation runs between {@link #enter()} and
 * {@link #exit()} (a shared hold), the store's {@code close()} holds it exclusively, so close never
 * frees memory an operation still uses, and operations after it fail with "store is closed".
 */
public final class Lifecycle {
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final AtomicBoolean closed = new AtomicBoolean();

    /** Starts an operation; throws if the store is closed. Pair with {@link #exit()}. */
    public void enter() {
        lock.readLock().lock();
        if (closed.get()) {
            lock.readLock().unlock();
            throw new IllegalStateException("store is closed");
        }
    }

    /** Ends what {@link #enter()} started. */
    public void exit() {
        lock.readLock().unlock();
    }

    /** Throws if the store is closed (for calls that touch no tier). */
    public void checkOpen() {
        if (closed.get()) {
            throw new IllegalStateException("store is closed");
        }
    }

    public boolean isClosed() {
        return closed.get();
    }

    /** Waits for every operation in flight and keeps new ones out; pair with {@link #endClose()}. */
    public void beginClose() {
        lock.writeLock().lock();
    }

    /** Marks the store closed; called between {@link #beginClose()} and {@link #endClose()}. */
    public void markClosed() {
        closed.set(true);
    }

    public void endClose() {
        lock.writeLock().unlock();
    }
}
