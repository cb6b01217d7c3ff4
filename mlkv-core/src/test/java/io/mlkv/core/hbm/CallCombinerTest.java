package io.mlkv.core.hbm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CallCombinerTest {
    /** A call that asks for its input doubled, and records which thread and group ran it. */
    static final class Doubling extends CallCombiner.Call {
        final long input;
        final int thread;
        final int sequence;
        long result = -1;
        int group = -1;

        Doubling(long size, long input, int thread, int sequence) {
            super(size);
            this.input = input;
            this.thread = thread;
            this.sequence = sequence;
        }
    }

    @Test
    void aCallerAloneRunsItsCallAsAGroupOfOneOnItsOwnThread() {
        List<Thread> ranOn = new ArrayList<>();
        CallCombiner<Doubling> combiner = new CallCombiner<>(100, 0, 0, calls -> {
            ranOn.add(Thread.currentThread());
            assertEquals(1, calls.size());
            calls.get(0).result = calls.get(0).input * 2;
        });
        for (int i = 0; i < 5; i++) {
            Doubling c = new Doubling(10, i, 0, i);
            combiner.run(c);
            assertEquals(2L * i, c.result);
        }
        assertEquals(Collections.nCopies(5, Thread.currentThread()), ranOn);
        assertEquals(5, combiner.counts()[0]);
        assertEquals(0, combiner.counts()[1], "no call ran combined");
    }

    @Test
    void callsQueuedWhileAGroupRunsFormTheNextGroupUpToTheKeyBudget() throws Exception {
        int others = 6;
        CountDownLatch firstGroupRunning = new CountDownLatch(1);
        List<List<Long>> groups = Collections.synchronizedList(new ArrayList<>());
        CallCombiner<Doubling>[] holder = new CallCombiner[1];
        holder[0] = new CallCombiner<>(40, 0, 0, calls -> {
            List<Long> inputs = new ArrayList<>();
            for (Doubling c : calls) {
                inputs.add(c.input);
                c.result = c.input * 2;
            }
            groups.add(inputs);
            if (groups.size() == 1) {
                firstGroupRunning.countDown();
                awaitQueued(holder[0], others);
            }
        });
        CallCombiner<Doubling> combiner = holder[0];
        ExecutorService pool = Executors.newFixedThreadPool(others + 1);
        try {
            Future<Long> first = pool.submit(() -> {
                Doubling c = new Doubling(10, 100, 0, 0);
                combiner.run(c);
                return c.result;
            });
            assertTrue(firstGroupRunning.await(30, TimeUnit.SECONDS));
            List<Future<Long>> rest = new ArrayList<>();
            for (int t = 1; t <= others; t++) {
                long input = t;
                rest.add(pool.submit(() -> {
                    Doubling c = new Doubling(10, input, (int) input, 0);
                    combiner.run(c);
                    return c.result;
                }));
            }
            assertEquals(200L, first.get(30, TimeUnit.SECONDS));
            for (int t = 1; t <= others; t++) {
                assertEquals(2L * t, rest.get(t - 1).get(30, TimeUnit.SECONDS), "call " + t);
            }
        } finally {
            pool.shutdownNow();
        }
        // Six calls of 10 keys queued behind the first group; a budget of 40 takes four, then two.
        assertEquals(3, groups.size(), "groups " + groups);
        assertEquals(List.of(100L), groups.get(0));
        assertEquals(4, groups.get(1).size(), "groups " + groups);
        assertEquals(2, groups.get(2).size(), "groups " + groups);
        List<Long> served = new ArrayList<>(groups.get(1));
        served.addAll(groups.get(2));
        Collections.sort(served);
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), served);
        assertEquals(6, combiner.counts()[1]);
    }

    @Test
    void aFailedGroupFailsEachOfItsCallsAndLaterCallsStillRun() throws Exception {
        int others = 3;
        CountDownLatch firstGroupRunning = new CountDownLatch(1);
        RuntimeException boom = new IllegalStateException("device lost");
        AtomicInteger groupsRun = new AtomicInteger();
        CallCombiner<Doubling>[] holder = new CallCombiner[1];
        holder[0] = new CallCombiner<>(1000, 0, 0, calls -> {
            int g = groupsRun.incrementAndGet();
            if (g == 1) {
                firstGroupRunning.countDown();
                awaitQueued(holder[0], others);
                throw boom;
            }
            for (Doubling c : calls) {
                c.result = c.input * 2;
            }
        });
        CallCombiner<Doubling> combiner = holder[0];
        ExecutorService pool = Executors.newFixedThreadPool(others + 1);
        try {
            Future<Throwable> leader = pool.submit(() -> {
                try {
                    combiner.run(new Doubling(1, 1, 0, 0));
                    return null;
                } catch (RuntimeException e) {
                    return e;
                }
            });
            assertTrue(firstGroupRunning.await(30, TimeUnit.SECONDS));
            // The first group fails alone (its leader's call); the three queued meanwhile run as the next group.
            List<Future<Long>> rest = new ArrayList<>();
            for (int t = 1; t <= others; t++) {
                long input = 10 + t;
                rest.add(pool.submit(() -> {
                    Doubling c = new Doubling(1, input, 0, 0);
                    combiner.run(c);
                    return c.result;
                }));
            }
            assertSame(boom, leader.get(30, TimeUnit.SECONDS), "the leader's own call gets the failure as thrown");
            for (int t = 1; t <= others; t++) {
                assertEquals(2L * (10 + t), rest.get(t - 1).get(30, TimeUnit.SECONDS));
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void callsOfAGroupLedByAnotherThreadGetTheGroupsFailureAsCause() throws Exception {
        int others = 3;
        CountDownLatch firstGroupRunning = new CountDownLatch(1);
        AtomicInteger groupsRun = new AtomicInteger();
        CallCombiner<Doubling>[] holder = new CallCombiner[1];
        holder[0] = new CallCombiner<>(1000, 0, 0, calls -> {
            if (groupsRun.incrementAndGet() == 1) {
                firstGroupRunning.countDown();
                awaitQueued(holder[0], others);
                return;
            }
            throw new IllegalStateException("group of " + calls.size() + " failed");
        });
        CallCombiner<Doubling> combiner = holder[0];
        ExecutorService pool = Executors.newFixedThreadPool(others + 1);
        try {
            Future<?> first = pool.submit(() -> combiner.run(new Doubling(1, 0, 0, 0)));
            assertTrue(firstGroupRunning.await(30, TimeUnit.SECONDS));
            List<Future<RuntimeException>> rest = new ArrayList<>();
            for (int t = 1; t <= others; t++) {
                rest.add(pool.submit(() -> assertThrows(RuntimeException.class, () -> combiner.run(new Doubling(1, 0, 0, 0)))));
            }
            first.get(30, TimeUnit.SECONDS);
            int asCause = 0;
            for (Future<RuntimeException> f : rest) {
                RuntimeException e = f.get(30, TimeUnit.SECONDS);
                Throwable failure = e instanceof CallCombiner.GroupFailed ? e.getCause() : e;
                assertEquals("group of 3 failed", failure.getMessage());
                asCause += e instanceof CallCombiner.GroupFailed ? 1 : 0;
            }
            assertEquals(others - 1, asCause, "all but the group's leader get it as the cause of GroupFailed");
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aLeaderReturnsOnlyAfterTheOtherCallersOfItsGroupTookTheirResults() throws Exception {
        int others = 3;
        CountDownLatch firstGroupRunning = new CountDownLatch(1);
        Thread[] secondLeader = new Thread[1];
        List<Integer> leftWhenLeaderReturned = Collections.synchronizedList(new ArrayList<>());
        CallCombiner<Doubling>[] holder = new CallCombiner[1];
        holder[0] = new CallCombiner<>(1000, TimeUnit.SECONDS.toNanos(60), 0, calls -> {
            if (calls.get(0).input == 0) {
                firstGroupRunning.countDown();
                awaitQueued(holder[0], others);
                return;
            }
            secondLeader[0] = Thread.currentThread();
            for (Doubling c : calls) {
                c.result = c.input * 2;
            }
        });
        CallCombiner<Doubling> combiner = holder[0];
        ExecutorService pool = Executors.newFixedThreadPool(others + 1);
        try {
            Future<?> first = pool.submit(() -> combiner.run(new Doubling(1, 0, 0, 0)));
            assertTrue(firstGroupRunning.await(30, TimeUnit.SECONDS));
            List<Future<Long>> rest = new ArrayList<>();
            for (int t = 1; t <= others; t++) {
                long input = t;
                rest.add(pool.submit(() -> {
                    Doubling c = new Doubling(1, input, (int) input, 0);
                    combiner.run(c);
                    if (Thread.currentThread() == secondLeader[0]) {
                        leftWhenLeaderReturned.add(c.departed.get());
                    }
                    return c.result;
                }));
            }
            first.get(30, TimeUnit.SECONDS);
            for (int t = 1; t <= others; t++) {
                assertEquals(2L * t, rest.get(t - 1).get(30, TimeUnit.SECONDS));
            }
        } finally {
            pool.shutdownNow();
        }
        // The three calls queued behind the first group ran as one; its leader's call returned
        // only once the two others had taken their results (none of them still to leave).
        assertEquals(List.of(0), leftWhenLeaderReturned);
    }

    @Test
    void anInterruptedWaiterStillGetsItsResultAndKeepsItsInterrupt() throws Exception {
        CountDownLatch groupRunning = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        CallCombiner<Doubling>[] holder = new CallCombiner[1];
        holder[0] = new CallCombiner<>(1000, 0, 0, calls -> {
            if (calls.get(0).input == 0) {
                groupRunning.countDown();
                try {
                    assertTrue(release.await(30, TimeUnit.SECONDS));
                } catch (InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            }
            for (Doubling c : calls) {
                c.result = c.input * 2;
            }
        });
        CallCombiner<Doubling> combiner = holder[0];
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<?> first = pool.submit(() -> combiner.run(new Doubling(1, 0, 0, 0)));
            assertTrue(groupRunning.await(30, TimeUnit.SECONDS));
            Thread[] waiter = new Thread[1];
            Future<boolean[]> second = pool.submit(() -> {
                waiter[0] = Thread.currentThread();
                Doubling c = new Doubling(1, 21, 1, 0);
                combiner.run(c);
                return new boolean[] {c.result == 42, Thread.currentThread().isInterrupted()};
            });
            awaitQueued(combiner, 1);
            waiter[0].interrupt();
            release.countDown();
            first.get(30, TimeUnit.SECONDS);
            boolean[] outcome = second.get(30, TimeUnit.SECONDS);
            assertTrue(outcome[0], "the interrupted caller's call ran");
            assertTrue(outcome[1], "its interrupt is kept");
        } finally {
            pool.shutdownNow();
        }
    }

    /** With and without leaders waiting for the callers of recent groups. */
    @ParameterizedTest(name = "gather {0} us")
    @ValueSource(longs = {0, 200})
    void underManyCallersEveryCallRunsOnceInItsCallersOrderWithinTheBudget(long gatherMicros) throws Exception {
        long seed = System.nanoTime();
        int threads = 8;
        int callsEach = 2_000;
        long budget = 64;
        List<Doubling> ran = Collections.synchronizedList(new ArrayList<>());
        int[] lastSequence = new int[threads];
        java.util.Arrays.fill(lastSequence, -1);
        AtomicInteger groupNumber = new AtomicInteger();
        List<String> violations = Collections.synchronizedList(new ArrayList<>());
        CallCombiner<Doubling> combiner = new CallCombiner<>(budget, TimeUnit.MICROSECONDS.toNanos(200),
                TimeUnit.MICROSECONDS.toNanos(gatherMicros), calls -> {
            int g = groupNumber.incrementAndGet();
            long keys = 0;
            for (Doubling c : calls) {
                keys += c.size;
                if (c.sequence != lastSequence[c.thread] + 1) {
                    violations.add("thread " + c.thread + " call " + c.sequence + " after " + lastSequence[c.thread]);
                }
                lastSequence[c.thread] = c.sequence;
                c.result = c.input * 2;
                c.group = g;
                ran.add(c);
            }
            if (calls.size() > 1 && keys > budget) {
                violations.add("group " + g + " of " + keys + " keys");
            }
        });
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> tasks = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                tasks.add(pool.submit(() -> {
                    SplittableRandom r = new SplittableRandom(seed + thread);
                    for (int i = 0; i < callsEach; i++) {
                        long input = r.nextLong(1_000_000);
                        Doubling c = new Doubling(1 + r.nextInt(40), input, thread, i);
                        combiner.run(c);
                        if (c.result != input * 2) {
                            throw new AssertionError("thread " + thread + " call " + i + " got " + c.result + ", seed " + seed);
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : tasks) {
                f.get(120, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(List.of(), violations, "seed " + seed);
        assertEquals(threads * callsEach, ran.size(), "every call ran exactly once, seed " + seed);
        assertEquals(groupNumber.get(), combiner.counts()[0]);
    }

    @Test
    void callersThatComeBackAFewMicrosecondsApartAreGatheredIntoOneGroup() throws Exception {
        int callers = 4;
        int rounds = 20;
        List<Integer> sizes = Collections.synchronizedList(new ArrayList<>());
        // A generous wait (bounded by twice a group's 5 ms), so that a loaded machine's late
        // wake-ups do not split a group.
        CallCombiner<Doubling> combiner = new CallCombiner<>(1000, 0, TimeUnit.MILLISECONDS.toNanos(50), calls -> {
            sizes.add(calls.size());
            for (Doubling c : calls) {
                c.result = c.input * 2;
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(5));
        });
        ExecutorService pool = Executors.newFixedThreadPool(callers);
        java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(callers);
        try {
            List<Future<?>> running = new ArrayList<>();
            for (int t = 0; t < callers; t++) {
                int thread = t;
                running.add(pool.submit(() -> {
                    start.await(30, TimeUnit.SECONDS);
                    for (int r = 0; r < rounds; r++) {
                        Doubling c = new Doubling(1, r, thread, r);
                        combiner.run(c);
                        assertEquals(2L * r, c.result);
                        // Each caller comes back at its own delay: without the leader's wait, each
                        // would find no group running and run alone.
                        LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(100L * thread));
                    }
                    return null;
                }));
            }
            for (Future<?> f : running) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(callers * rounds, sizes.stream().mapToInt(Integer::intValue).sum());
        assertTrue(sizes.size() <= rounds + 10, "groups " + sizes.size() + " for " + rounds + " rounds: " + sizes);
        assertTrue(combiner.counts()[2] > 0, "leaders waited: " + java.util.Arrays.toString(combiner.counts()));
    }

    @Test
    void aCallerThatStoppedCallingIsWaitedForOnceNotByEveryLaterGroup() throws Exception {
        CallCombiner<Doubling> combiner = new CallCombiner<>(1000, 0, TimeUnit.MILLISECONDS.toNanos(5), calls -> {
            for (Doubling c : calls) {
                c.result = c.input * 2;
                if (c.input < 0) {
                    // The other caller's group runs long, so that it still counts as one that
                    // calls again when this thread comes next.
                    LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(50));
                }
            }
        });
        combiner.run(new Doubling(1, 1, 0, 0));
        Thread other = new Thread(() -> combiner.run(new Doubling(1, -1, 1, 0)));
        other.start();
        other.join(30_000);
        for (int i = 0; i < 10; i++) {
            Doubling c = new Doubling(1, i, 0, i + 1);
            combiner.run(c);
            assertEquals(2L * i, c.result);
        }
        long[] counts = combiner.counts();
        assertEquals(12, counts[0], "groups: " + java.util.Arrays.toString(counts));
        assertEquals(1, counts[2], "one leader waited: " + java.util.Arrays.toString(counts));
        assertEquals(1, counts[3], "and its wait ran out: " + java.util.Arrays.toString(counts));
    }

    /** Spins until {@code combiner} has at least {@code calls} calls queued (at most 30 s). */
    private static void awaitQueued(CallCombiner<?> combiner, int calls) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (combiner.queuedCalls() < calls && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
    }
}
