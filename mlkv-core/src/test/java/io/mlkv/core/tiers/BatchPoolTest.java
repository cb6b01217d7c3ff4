package io.mlkv.core.tiers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class BatchPoolTest {
    @Test
    void everyPartRunsOnceAndPartZeroOnTheCaller() {
        try (BatchPool pool = new BatchPool(4)) {
            AtomicIntegerArray runs = new AtomicIntegerArray(6);
            Set<String> threads = ConcurrentHashMap.newKeySet();
            Thread caller = Thread.currentThread();
            boolean[] zeroOnCaller = new boolean[1];
            pool.run(6, p -> {
                runs.incrementAndGet(p);
                threads.add(Thread.currentThread().getName());
                if (p == 0) {
                    zeroOnCaller[0] = Thread.currentThread() == caller;
                }
            });
            for (int p = 0; p < 6; p++) {
                assertEquals(1, runs.get(p), "part " + p);
            }
            assertTrue(zeroOnCaller[0]);
            assertTrue(threads.stream().anyMatch(t -> t.startsWith("mlkv-batch-")), "parts ran on the pool's threads: " + threads);
        }
    }

    @Test
    void aPoolOfOneRunsEverythingOnTheCaller() {
        try (BatchPool pool = new BatchPool(1)) {
            Thread caller = Thread.currentThread();
            pool.run(3, p -> assertSame(caller, Thread.currentThread()));
            assertEquals(1, pool.partsFor(1_000_000, 10));
        }
    }

    @Test
    void partsForKeepsEachPartAtLeastTheMinimum() {
        try (BatchPool pool = new BatchPool(8)) {
            assertEquals(1, pool.partsFor(100, 8192));
            assertEquals(3, pool.partsFor(3 * 8192 + 5, 8192));
            assertEquals(8, pool.partsFor(1 << 20, 8192));
        }
    }

    @Test
    void aFailingPartIsRethrownAfterEveryPartEndedWithTheOthersSuppressed() {
        try (BatchPool pool = new BatchPool(3)) {
            AtomicIntegerArray ended = new AtomicIntegerArray(3);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> pool.run(3, p -> {
                ended.incrementAndGet(p);
                if (p > 0) {
                    throw new IllegalStateException("part " + p);
                }
            }));
            for (int p = 0; p < 3; p++) {
                assertEquals(1, ended.get(p));
            }
            assertEquals(1, e.getSuppressed().length, "the second failure is attached");
        }
    }

    @Test
    void runRangesCoversEveryPositionOnceInConsecutiveRanges() {
        try (BatchPool pool = new BatchPool(3)) {
            for (int n : new int[] {0, 1, 99, 100, 101, 10_007}) {
                AtomicIntegerArray seen = new AtomicIntegerArray(Math.max(1, n));
                int parts = pool.runRanges(n, 100, (from, to) -> {
                    for (int i = from; i < to; i++) {
                        seen.incrementAndGet(i);
                    }
                });
                assertEquals(pool.partsFor(n, 100), parts, "n=" + n);
                for (int i = 0; i < n; i++) {
                    assertEquals(1, seen.get(i), "position " + i + " of " + n);
                }
            }
        }
    }

    /** A part that splits again runs its parts itself: with every worker busy, waiting for them would never end. */
    @Test
    @org.junit.jupiter.api.Timeout(value = 10, threadMode = org.junit.jupiter.api.Timeout.ThreadMode.SEPARATE_THREAD)
    void aPartThatSplitsAgainRunsItsPartsOnItsOwnThread() {
        try (BatchPool pool = new BatchPool(2)) {
            AtomicIntegerArray inner = new AtomicIntegerArray(4);
            pool.run(2, outer -> pool.run(2, p -> inner.incrementAndGet(outer * 2 + p)));
            for (int i = 0; i < 4; i++) {
                assertEquals(1, inner.get(i), "inner part " + i);
            }
        }
    }

    @Test
    @org.junit.jupiter.api.Timeout(value = 30, threadMode = org.junit.jupiter.api.Timeout.ThreadMode.SEPARATE_THREAD)
    void aCallerThatFindsAnotherBatchSplitRunsAllItsPartsItselfAndTheNextSplitsAgain() throws Exception {
        try (BatchPool pool = new BatchPool(2)) {
            java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
            Set<String> firstThreads = ConcurrentHashMap.newKeySet();
            Thread first = new Thread(() -> pool.run(2, p -> {
                firstThreads.add(Thread.currentThread().getName());
                if (p == 1) {
                    started.countDown();
                    try {
                        release.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }), "first-caller");
            first.start();
            started.await();
            // The first caller's part 1 holds the pool's only worker: this batch runs on this thread.
            Set<String> secondThreads = ConcurrentHashMap.newKeySet();
            pool.run(2, p -> secondThreads.add(Thread.currentThread().getName()));
            assertEquals(Set.of(Thread.currentThread().getName()), secondThreads);
            release.countDown();
            first.join();
            assertEquals(2, firstThreads.size(), "the first batch was split: " + firstThreads);
            // The pool is free again: the next batch splits.
            Set<String> thirdThreads = ConcurrentHashMap.newKeySet();
            pool.run(2, p -> thirdThreads.add(Thread.currentThread().getName()));
            assertEquals(2, thirdThreads.size(), "split again: " + thirdThreads);
        }
    }

    @Test
    void aPoolNeedsAThread() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new BatchPool(0));
        assertTrue(e.getMessage().contains("batchThreads"), e.getMessage());
    }
}
