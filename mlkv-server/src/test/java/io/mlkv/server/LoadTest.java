package io.mlkv.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.client.TokenCacheClient;
import io.mlkv.client.proto.Chunk;
import io.mlkv.client.proto.LookupResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A bounded load test: 16 concurrent clients on loopback for a fixed time, mixing lookups, reads
 * and writes of growing conversations. No call may fail, every Read of a Lookup's location must
 * return the caller's tokens, and every acknowledged write must be found afterwards.
 */
class LoadTest {
    private static final long SEED = Long.getLong("test.seed", System.nanoTime());
    private static final long MILLIS = Long.getLong("load.millis", 6000);

    @TempDir
    Path dir;

    @Test
    void manyClientsForAFixedTimeWithoutErrorsOrLostWrites() throws Exception {
        int clients = 16;
        ConcurrentLinkedQueue<int[]> acknowledged = new ConcurrentLinkedQueue<>();
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        AtomicLong calls = new AtomicLong();
        try (TokenCacheServer server = Fixture.server(dir).threads(4).start()) {
            long end = System.nanoTime() + MILLIS * 1_000_000;
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < clients; t++) {
                long seed = SEED + t;
                Thread th = new Thread(() -> {
                    SplittableRandom rnd = new SplittableRandom(seed);
                    try (TokenCacheClient c = Fixture.client(server, "default")) {
                        int[] system = new SplittableRandom(SEED).ints(4 * 128, 0, 50_000).toArray();
                        int[] conversation = system;
                        while (System.nanoTime() < end) {
                            int[] grown = java.util.Arrays.copyOf(conversation, conversation.length + 64 + rnd.nextInt(256));
                            for (int i = conversation.length; i < grown.length; i++) {
                                grown[i] = rnd.nextInt(128_000);
                            }
                            conversation = grown.length > 40 * 128 ? system : grown;
                            LookupResponse lr = c.lookup("load", conversation);
                            calls.incrementAndGet();
                            List<Chunk> chunks = c.chunksOf(conversation);
                            if (lr.getCachedBlocks() > 0) {
                                int pick = rnd.nextInt(lr.getCachedBlocks());
                                Chunk got = c.readAsync(lr.getLocations(pick)).join().getChunk();
                                if (!got.equals(chunks.get(pick))) {
                                    throw new AssertionError("read returned another block at " + pick);
                                }
                                calls.incrementAndGet();
                            }
                            if (lr.getCachedBlocks() < chunks.size()) {
                                c.writeBatchAsync(chunks.subList(lr.getCachedBlocks(), chunks.size())).join();
                                calls.incrementAndGet();
                            }
                            acknowledged.add(java.util.Arrays.copyOf(conversation, chunks.size() * 128));
                        }
                    } catch (Throwable e) {
                        errors.add(e);
                    }
                });
                threads.add(th);
                th.start();
            }
            for (Thread th : threads) {
                th.join();
            }
            assertTrue(errors.isEmpty(), "seed " + SEED + ": " + errors.size() + " clients failed, first: " + errors.peek());
            assertTrue(calls.get() > clients, "the load ran: " + calls.get() + " calls");
            try (TokenCacheClient check = Fixture.client(server, "default")) {
                for (int[] prompt : acknowledged) {
                    assertEquals(prompt.length / 128, check.lookup("verify", prompt).getCachedBlocks(),
                            "seed " + SEED + ": an acknowledged write is missing");
                }
            }
            System.out.printf("load test: %d clients, %d calls in %d ms, %d prompts verified%n", clients, calls.get(),
                    MILLIS, acknowledged.size());
        }
    }
}
