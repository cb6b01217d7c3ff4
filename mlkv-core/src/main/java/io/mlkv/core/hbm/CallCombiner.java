package io.mlkv.core.hbm;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Flat combining of concurrent calls of one kind: a caller queues its call, and whichever caller
 * finds no call running becomes the leader, takes every queued call (up to a key budget) and runs
 * them as one group ({@link Group#run}), while the others wait for their results. One caller alone
 * runs its own call as a group of one, with no other cost than a queue entry and an uncontended
 * lock; several callers of small batches get one large batch, where the work's fixed costs (kernel
 * launches, round trips to the GPU, lock hand-overs inside) are paid once for all of them.
 *
 * <p>A group fails as a whole: each of its calls throws what the group threw (the leader's own
 * call gets it as thrown; the others get a {@link GroupFailed} whose cause it is), so a group must
 * change nothing unless it succeeds for all of its calls, or say so in its own contract. Calls of
 * one caller run in the caller's order, since a caller waits for each; calls of different callers
 * are concurrent and run in any order.
 *
 * @param <C> the calls
 */
final class CallCombiner<C extends CallCombiner.Call> {
    /** One call: its size in keys, and its outcome, set by the leader. */
    abstract static class Call {
        final Thread caller = Thread.currentThread();
        /** Keys of the call, counted against a group's budget. */
        final long size;
        volatile boolean done;
        Throwable failure;
        /** Counts the group's callers that have seen their results (set by the leader before {@link #done}). */
        AtomicInteger departed;

        Call(long size) {
            this.size = size;
        }
    }

    /** Runs a group of calls at once. */
    interface Group<C> {
        /** Runs {@code calls} (at least one, in queue order) and records each one's result in it. */
        void run(List<C> calls);
    }

    /** What a call that was part of a failed group led by another caller throws; its cause is the group's failure. */
    static final class GroupFailed extends RuntimeException {
        GroupFailed(Throwable cause) {
            super("a combined call failed: " + cause, cause);
        }
    }

    /** The shortest time for which {@link #gather} counts a caller that a group served as one that calls again. */
    private static final long RECENT_NANOS = TimeUnit.MILLISECONDS.toNanos(2);
    /** The shortest wait of {@link #gather}, however short the last group ran. */
    private static final long MIN_GATHER_NANOS = TimeUnit.MICROSECONDS.toNanos(100);

    /** How long a waiting caller parks before it looks again (the leader also wakes it when done). */
    private static final long PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(50);

    private final ConcurrentLinkedQueue<C> queued = new ConcurrentLinkedQueue<>();
    private final ReentrantLock leading = new ReentrantLock();
    private final long maxKeys;
    private final long alignNanos;
    private final long gatherNanos;
    private final Group<C> group;
    /** Callers served by recent groups, with when each was last served. Under {@link #leading}. */
    private final Map<Thread, Long> recent = new HashMap<>();
    /** How long the last group ran. Under {@link #leading}. */
    private long lastGroupNanos;
    private long groups;
    private long combinedCalls;
    private long gatherWaits;
    private long gatherTimeouts;

    /**
     * @param maxKeys     most keys of one group (a call larger than this runs alone)
     * @param alignNanos  how long a leader whose own call ran in a group of several waits, at most,
     *                    for the other callers of the group to wake and take their results before
     *                    it returns (0: it does not wait). Callers that leave a group together
     *                    arrive at their next calls together, where those can be combined too; a
     *                    leader that returned at once would run its next call alone while the
     *                    others wake.
     * @param gatherNanos how long a leader waits, at most, before taking the queue, for a call of
     *                    every caller that recent groups served (0: it takes the queue as it is;
     *                    the wait is also bounded by twice the last group's run time).
     *                    Callers that call in a loop (a training step's read, then its write) come
     *                    back a few microseconds apart; the first to come would otherwise run its
     *                    call alone and the others theirs in a second group. A caller that does not
     *                    come in time is not waited for again until a group serves it.
     * @param group       runs a group
     */
    CallCombiner(long maxKeys, long alignNanos, long gatherNanos, Group<C> group) {
        if (gatherNanos < 0) {
            throw new IllegalArgumentException("gatherNanos must not be negative, was " + gatherNanos);
        }
        if (maxKeys <= 0) {
            throw new IllegalArgumentException("maxKeys must be positive, was " + maxKeys);
        }
        if (alignNanos < 0) {
            throw new IllegalArgumentException("alignNanos must not be negative, was " + alignNanos);
        }
        this.maxKeys = maxKeys;
        this.alignNanos = alignNanos;
        this.gatherNanos = gatherNanos;
        this.group = group;
    }

    /**
     * Queues {@code call} and returns when it has run, as part of a group that this caller or
     * another one led.
     *
     * @throws GroupFailed where another caller led the group and it failed
     */
    void run(C call) {
        if (call.caller != Thread.currentThread()) {
            throw new IllegalStateException("a call runs on the thread that made it");
        }
        queued.add(call);
        boolean led = false;
        // A queued call cannot be withdrawn: an interrupt is kept for the caller, not acted on
        // (a parked thread with its interrupt set would not park again, only spin).
        boolean interrupted = false;
        while (!call.done) {
            interrupted |= Thread.interrupted();
            if (leading.tryLock()) {
                try {
                    if (!call.done) {
                        lead();
                    }
                } finally {
                    leading.unlock();
                }
                C next = queued.peek();
                if (next != null) {
                    LockSupport.unpark(next.caller);  // a queued caller leads the next group
                }
                led = call.done;
            } else {
                LockSupport.parkNanos(this, PARK_NANOS);
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        AtomicInteger departed = call.departed;
        if (!led) {
            departed.incrementAndGet();
        } else if (alignNanos > 0 && departed.get() < 0) {
            awaitFollowers(departed);
        }
        Throwable failure = call.failure;
        if (failure == null) {
            return;
        }
        if (failure instanceof GroupFailed) {
            throw new GroupFailed(failure.getCause());  // thrown on this caller's thread, with its stack
        }
        if (failure instanceof RuntimeException e) {
            throw e;
        }
        throw (Error) failure;
    }

    /** Takes queued calls up to the key budget (at least one) and runs them as one group. Under {@link #leading}. */
    private void lead() {
        if (gatherNanos > 0) {
            gather();
        }
        List<C> calls = new ArrayList<>();
        long keys = 0;
        for (C head = queued.peek(); head != null; head = queued.peek()) {
            if (!calls.isEmpty() && keys + head.size > maxKeys) {
                break;
            }
            queued.poll();
            calls.add(head);
            keys += head.size;
        }
        if (calls.isEmpty()) {
            return;
        }
        groups++;
        combinedCalls += calls.size() > 1 ? calls.size() : 0;
        Throwable failure = null;
        long began = System.nanoTime();
        try {
            group.run(calls);
        } catch (RuntimeException | Error e) {
            failure = e;
        }
        long ended = System.nanoTime();
        lastGroupNanos = ended - began;
        if (gatherNanos > 0) {  // forgotten again by gather(), so the map holds only recent callers
            for (C c : calls) {
                recent.put(c.caller, ended);
            }
        }
        Thread self = Thread.currentThread();
        // Below zero by the number of other callers still to take their results (see awaitFollowers).
        int others = 0;
        for (C c : calls) {
            others += c.caller == self ? 0 : 1;
        }
        AtomicInteger departed = new AtomicInteger(-others);
        for (C c : calls) {
            if (failure != null) {
                c.failure = c.caller == self ? failure : new GroupFailed(failure);
            }
            c.departed = departed;
            c.done = true;
            if (c.caller != self) {
                LockSupport.unpark(c.caller);
            }
        }
    }

    /**
     * Waits until every caller that a group served lately (within four of the last group's run
     * times, at least {@link #RECENT_NANOS}) has a call queued, or the queue holds a full group;
     * at most twice the last group's run time (at least {@link #MIN_GATHER_NANOS}) and at most
     * {@link #gatherNanos}. A caller still in another combiner's group (the write of its last
     * step) comes within about one group's time: callers that split into two halves, one reading
     * while the other writes, join again. Callers that did not come are forgotten, so a caller that
     * calls at its own pace costs at most one wait per call of its own. Under {@link #leading}.
     */
    private void gather() {
        long now = System.nanoTime();
        long window = Math.max(RECENT_NANOS, 4 * lastGroupNanos);
        recent.values().removeIf(servedAt -> now - servedAt > window);
        if (recent.size() < 2) {
            return;
        }
        long deadline = now + Math.min(gatherNanos, Math.max(MIN_GATHER_NANOS, 2 * lastGroupNanos));
        Set<Thread> present = new HashSet<>();
        boolean waited = false;
        while (true) {
            present.clear();
            long keys = 0;
            for (C c : queued) {
                keys += c.size;
                if (recent.containsKey(c.caller)) {
                    present.add(c.caller);
                }
            }
            if (present.size() >= recent.size() || keys >= maxKeys) {
                gatherWaits += waited ? 1 : 0;
                return;
            }
            if (System.nanoTime() - deadline >= 0) {
                break;
            }
            waited = true;
            Thread.onSpinWait();
        }
        gatherWaits++;
        gatherTimeouts++;
        recent.keySet().retainAll(present);
    }

    /** Waits, at most {@link #alignNanos}, until the other callers of the group just led have taken their results. */
    private void awaitFollowers(AtomicInteger departed) {
        long deadline = System.nanoTime() + alignNanos;
        while (departed.get() < 0 && System.nanoTime() - deadline < 0) {
            Thread.onSpinWait();
        }
    }

    /** Calls queued and not yet taken into a group. */
    int queuedCalls() {
        return queued.size();
    }

    /**
     * Groups run so far, calls that ran in a group of more than one, groups whose leader waited for
     * other callers' calls before taking the queue, and those of the waits that ran out. Read under
     * no lock: a hint.
     */
    long[] counts() {
        return new long[] {groups, combinedCalls, gatherWaits, gatherTimeouts};
    }
}
