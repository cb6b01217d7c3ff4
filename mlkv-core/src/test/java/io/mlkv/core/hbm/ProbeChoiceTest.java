package io.mlkv.core.hbm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Unchecked DRAM probes while none is overtaken; after one is, a fixed number of checked ones. */
class ProbeChoiceTest {
    @Test
    void probesRunUncheckedUntilOneIsOvertakenThenCheckedForAWhile() {
        ProbeChoice choice = new ProbeChoice();
        for (int i = 0; i < 100; i++) {
            assertTrue(choice.mayRunUnchecked(), "probe " + i + " with nothing overtaken");
        }
        choice.overtaken();
        for (int i = 0; i < ProbeChoice.CHECKED_AFTER_OVERTAKEN; i++) {
            assertFalse(choice.mayRunUnchecked(), "checked probe " + i + " after an overtaken one");
        }
        assertTrue(choice.mayRunUnchecked(), "unchecked again once the checked ones ran");
        choice.overtaken();
        choice.mayRunUnchecked();
        choice.overtaken(); // overtaken again: the count starts over, it does not add up
        int checked = 0;
        while (!choice.mayRunUnchecked()) {
            checked++;
        }
        assertEquals(ProbeChoice.CHECKED_AFTER_OVERTAKEN, checked);
    }

    /** Callers at once take exactly the checked probes owed, no more, no fewer. */
    @Test
    void concurrentCallersShareTheCheckedProbesOwed() throws Exception {
        ProbeChoice choice = new ProbeChoice();
        choice.overtaken();
        AtomicInteger checked = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<?>> calls = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                calls.add(pool.submit(() -> {
                    for (int i = 0; i < 1000; i++) {
                        if (!choice.mayRunUnchecked()) {
                            checked.incrementAndGet();
                        }
                    }
                }));
            }
            for (Future<?> f : calls) {
                f.get(30, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(ProbeChoice.CHECKED_AFTER_OVERTAKEN, checked.get());
    }
}
