package io.mlkv.core.tiers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;

/** Operations against close: who waits for whom, and what fails after. */
class LifecycleTest {
    private final Lifecycle life = new Lifecycle();

    @Test
    void aCloseWaitsForTheOperationInFlight() throws Exception {
        life.enter();
        CompletableFuture<Void> close = CompletableFuture.runAsync(() -> {
            life.beginClose();
            life.markClosed();
            life.endClose();
        });
        assertThrows(TimeoutException.class, () -> close.get(200, TimeUnit.MILLISECONDS), "close ran past an operation");
        life.exit();
        close.get(10, TimeUnit.SECONDS);
        assertTrue(life.isClosed());
        IllegalStateException e = assertThrows(IllegalStateException.class, life::enter);
        assertEquals("store is closed", e.getMessage());
    }

    /**
     * A thread working for an operation in flight on another (a part of its batch) enters while a
     * close waits, runs nested operations, and the close still waits for both to end.
     */
    @Test
    void aPartOfAnOperationInFlightEntersDuringACloseAndTheCloseWaitsForIt() throws Exception {
        life.enter();
        CompletableFuture<Void> close = CompletableFuture.runAsync(() -> {
            life.beginClose();
            life.markClosed();
            life.endClose();
        });
        assertThrows(TimeoutException.class, () -> close.get(100, TimeUnit.MILLISECONDS), "close ran past an operation");
        CompletableFuture<Void> entered = new CompletableFuture<>();
        CompletableFuture<Void> release = new CompletableFuture<>();
        CompletableFuture<Void> part = CompletableFuture.runAsync(() -> {
            life.enterFor();
            try {
                life.enter();  // nested: the part's own operations do not wait for the close either
                life.exit();
                entered.complete(null);
                release.join();
            } finally {
                life.exit();
            }
        });
        entered.get(10, TimeUnit.SECONDS);
        life.exit();  // the caller's operation ends while its part still runs
        assertThrows(TimeoutException.class, () -> close.get(200, TimeUnit.MILLISECONDS), "close ran past the part");
        release.complete(null);
        part.get(10, TimeUnit.SECONDS);
        close.get(10, TimeUnit.SECONDS);
        assertTrue(life.isClosed());
    }

    @Test
    void anOperationStartedDuringACloseWaitsAndThenFailsIfItClosed() throws Exception {
        life.beginClose();
        CompletableFuture<Void> op = CompletableFuture.runAsync(() -> {
            life.enter();
            life.exit();
        });
        assertThrows(TimeoutException.class, () -> op.get(200, TimeUnit.MILLISECONDS), "an operation ran during close");
        life.markClosed();
        life.endClose();
        ExecutionException e = assertThrows(ExecutionException.class, () -> op.get(10, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof IllegalStateException, e.toString());
    }

    /** A close whose flush failed leaves the store open: the waiting operation then runs. */
    @Test
    void anOperationWaitingForACloseThatDidNotCloseRuns() throws Exception {
        life.beginClose();
        CompletableFuture<Void> op = CompletableFuture.runAsync(() -> {
            life.enter();
            life.exit();
        });
        Thread.sleep(100);
        assertFalse(op.isDone());
        life.endClose();
        op.get(10, TimeUnit.SECONDS);
        assertFalse(life.isClosed());
    }

    @Test
    void theClosingThreadAndANestedOperationEnterWithoutWaiting() throws Exception {
        life.enter();
        CompletableFuture<Void> close = CompletableFuture.runAsync(() -> {
            life.beginClose();
            life.enter(); // the close's own flush runs operations
            life.exit();
            life.markClosed();
            life.endClose();
        });
        Thread.sleep(100);
        life.enter(); // nested, while the close waits for the outer operation: must not wait for it
        life.exit();
        assertFalse(close.isDone());
        life.exit();
        close.get(10, TimeUnit.SECONDS);
        assertTrue(life.isClosed());
    }
}
