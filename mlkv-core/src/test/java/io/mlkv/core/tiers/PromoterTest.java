package io.mlkv.core.tiers;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import org.junit.jupiter.api.Test;

class PromoterTest {
    /**
     * With the mutation lock held elsewhere, promotions go to the background thread: the first
     * runs there (waiting for the lock), 16 wait in its queue, the rest are dropped and counted;
     * once the lock is free the kept ones run, and a free lock runs a promotion at once.
     */
    @Test
    void promotionsBeyondTheQueueAreDroppedAndCountedTheOthersRunOnceTheLockIsFree() throws Exception {
        ReentrantLock mutation = new ReentrantLock();
        Lifecycle life = new Lifecycle();
        AtomicInteger ran = new AtomicInteger();
        try (Promoter promoter = new Promoter(mutation, life)) {
            CountDownLatch held = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            Thread holder = new Thread(() -> {
                mutation.lock();
                try {
                    held.countDown();
                    release.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } finally {
                    mutation.unlock();
                }
            });
            holder.start();
            held.await(30, TimeUnit.SECONDS);
            life.enter();
            try {
                for (int i = 0; i < 20; i++) {
                    promoter.promote(ran::incrementAndGet);
                }
            } finally {
                life.exit();
            }
            assertEquals(3, promoter.dropped(), "1 running, 16 queued, 3 dropped");
            release.countDown();
            holder.join(30_000);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (ran.get() < 17 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals(17, ran.get(), "every kept promotion ran once the lock was free");
            life.enter();
            try {
                promoter.promote(ran::incrementAndGet);
            } finally {
                life.exit();
            }
            assertEquals(18, ran.get(), "a free lock runs the promotion at once, on the caller");
            assertEquals(3, promoter.dropped(), "no drop since");
        }
    }
}
