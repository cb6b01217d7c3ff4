package io.mlkv.server;

/** How writes reach the blob backend. */
public enum WriteMode {
    /**
     * A Write is acknowledged after the blob is uploaded and the block is in the local cache. A
     * crash loses no acknowledged block; each Write waits for one upload.
     */
    THROUGH,
    /**
     * A Write is acknowledged once the block is in the local cache; uploads run in the background
     * (when their queue is full, the writer uploads itself). A crash of the server loses the blob
     * copies of queued blocks (at most the queue length); the local copies survive per the local
     * store's durability. Closing the server waits for the queue to drain.
     */
    BEHIND
}
