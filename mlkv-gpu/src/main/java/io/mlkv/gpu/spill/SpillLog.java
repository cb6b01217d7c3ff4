package io.mlkv.gpu.spill;

import io.mlkv.gpu.cufile.BlockFile;
import io.mlkv.gpu.cufile.FileIo;
import io.mlkv.gpu.cufile.Region;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.agrona.collections.Long2LongHashMap;

/**
 * A value log on SSD for rows that leave the HBM tier: a ring of fixed-size slots in one
 * {@link BlockFile}, written from device memory (cuFile where it works) and read back straight
 * into device memory, with a host index from key to slot. It holds clean copies only: whoever
 * owns it must {@link #invalidate} a key before any write of that key is acknowledged, so an
 * entry found here is the key's newest value. When the ring wraps, the oldest rows are
 * overwritten and their keys dropped from the index.
 *
 * <p>Threads: {@link #append} and {@link #invalidate} are called by one writer at a time (the
 * store's mutation lock); {@link #lookup} and {@link #read} may run at any time. A reader whose
 * slot is overwritten while it reads is told so ({@code valid[i] == false}): the writer raises
 * {@link #floor} before it overwrites, and readers check it after their read.
 */
public final class SpillLog implements AutoCloseable {
    private final BlockFile file;
    private final int rowBytes;
    private final long slots;
    /** Key written at each slot, so the index entry of an overwritten slot can be dropped. */
    private final long[] slotKeys;
    /** Key to absolute position (slot = position mod slots). Guarded by {@link #indexLock}. */
    private final Long2LongHashMap index = new Long2LongHashMap(-1);
    private final ReentrantReadWriteLock indexLock = new ReentrantReadWriteLock();
    /** Next absolute position to write; only the writer touches it. */
    private long head;
    /** Positions below this are overwritten or about to be; readers must discard them. */
    private volatile long floor;

    private final LongAdder appended = new LongAdder();
    private final LongAdder overwritten = new LongAdder();
    private final LongAdder hits = new LongAdder();
    private final LongAdder misses = new LongAdder();
    private final LongAdder lostToOverwrite = new LongAdder();
    private final LongAdder rowsRead = new LongAdder();
    private final LongAdder readNanos = new LongAdder();

    private SpillLog(BlockFile file, int dim, long slots) {
        this.file = file;
        this.rowBytes = dim * 4;
        this.slots = slots;
        this.slotKeys = new long[(int) slots];
    }

    /**
     * Creates an empty log of {@code slots} rows of {@code dim} floats in {@code path} (created
     * or truncated). {@code mode} picks the file path as for {@link BlockFile#create}.
     */
    public static SpillLog create(Path path, int dim, long slots, FileIo.Mode mode) {
        if (dim < 1) {
            throw new IllegalArgumentException("spill log dim must be at least 1, was " + dim);
        }
        if (slots < 1 || slots > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("spill log slots must be 1 to " + (Integer.MAX_VALUE - 8) + ", was " + slots);
        }
        return new SpillLog(BlockFile.create(path, mode), dim, slots);
    }

    /** {@code cufile} or {@code posix}: how rows move between device memory and the file. */
    public String path() {
        return file.path();
    }

    /** Null when device memory moves through cuFile, otherwise why not. */
    public String cufileUnavailable() {
        return file.cufileUnavailable();
    }

    public long slots() {
        return slots;
    }

    /**
     * Appends rows {@code [0, count)} of {@code rows} (back to back, {@code dim} floats each) and
     * indexes those with {@code keep[i]} under {@code keys[i]}; the others only take their slot.
     * If {@code count} exceeds the ring, only the last {@link #slots()} rows are written. A key
     * appended again points at its newest row. One writer at a time. If the write fails, the
     * exception propagates and nothing of this call is indexed; entries whose rows it may have
     * overwritten are dropped, the others stay readable.
     */
    public void append(long[] keys, boolean[] keep, int count, Region rows) {
        int skip = (int) Math.max(0, count - slots);
        int n = count - skip;
        if (n == 0) {
            return;
        }
        long start = head;
        long newFloor = start + n - slots;
        if (newFloor > floor) {
            indexLock.writeLock().lock();
            try {
                for (long p = Math.max(floor, start - slots); p < newFloor; p++) {
                    long key = slotKeys[(int) (p % slots)];
                    if (index.get(key) == p) {
                        index.remove(key);
                        overwritten.increment();
                    }
                }
                floor = newFloor;
            } finally {
                indexLock.writeLock().unlock();
            }
        }
        int first = (int) (start % slots);
        int firstRun = (int) Math.min(n, slots - first);
        file.write((long) first * rowBytes, rows, (long) skip * rowBytes, (long) firstRun * rowBytes);
        if (firstRun < n) {
            file.write(0, rows, (long) (skip + firstRun) * rowBytes, (long) (n - firstRun) * rowBytes);
        }
        indexLock.writeLock().lock();
        try {
            for (int i = 0; i < n; i++) {
                long pos = start + i;
                int slot = (int) (pos % slots);
                if (keep[skip + i]) {
                    long key = keys[skip + i];
                    slotKeys[slot] = key;
                    index.put(key, pos);
                } else {
                    // A position the index never points at: the cleanup above finds nothing to drop.
                    slotKeys[slot] = Long.MIN_VALUE;
                }
            }
        } finally {
            indexLock.writeLock().unlock();
        }
        head = start + n;
        appended.add(n);
    }

    /** Drops the entries of {@code keys[0, count)}. One writer at a time. */
    public void invalidate(long[] keys, int count) {
        indexLock.writeLock().lock();
        try {
            if (index.isEmpty()) {
                return;
            }
            for (int i = 0; i < count; i++) {
                index.remove(keys[i]);
            }
        } finally {
            indexLock.writeLock().unlock();
        }
    }

    /**
     * Where the log holds rows of some keys: for {@code h < count}, the key at index {@code at[h]}
     * of the caller's key array lies at {@code positions[h]} (pass them to {@link #read}).
     */
    public record Hits(int[] at, long[] positions, int count) {
    }

    /**
     * Looks up the keys {@code keys[which[i]]} for {@code i < count} ({@code keys[i]} when
     * {@code which} is null) and returns those the log holds, in that order.
     */
    public Hits lookup(long[] keys, int[] which, int count) {
        int[] at = new int[count];
        long[] positions = new long[count];
        int found = 0;
        indexLock.readLock().lock();
        try {
            long f = floor;
            for (int i = 0; i < count; i++) {
                int k = which == null ? i : which[i];
                long p = index.get(keys[k]);
                if (p >= f) {
                    at[found] = k;
                    positions[found++] = p;
                }
            }
        } finally {
            indexLock.readLock().unlock();
        }
        hits.add(found);
        misses.add(count - found);
        return new Hits(at, positions, found);
    }

    /**
     * Reads the rows at {@code positions[0, count)} (all from {@link #lookup}) into
     * {@code target}, row {@code i} at byte {@code i * dim * 4}. {@code valid[i]} says whether
     * row {@code i} is what was looked up: false where the ring overwrote it meanwhile (the row
     * in {@code target} is then garbage). Returns how many are valid.
     */
    public int read(long[] positions, int count, Region target, boolean[] valid) {
        long started = System.nanoTime();
        long[] offsets = new long[count];
        for (int i = 0; i < count; i++) {
            offsets[i] = (positions[i] % slots) * rowBytes;
        }
        file.readRows(offsets, count, rowBytes, target);
        // The writer raises the floor before it overwrites; order that read after the file reads.
        VarHandle.fullFence();
        long f = floor;
        int ok = 0;
        for (int i = 0; i < count; i++) {
            valid[i] = positions[i] >= f;
            ok += valid[i] ? 1 : 0;
        }
        lostToOverwrite.add(count - ok);
        rowsRead.add(ok);
        readNanos.add(System.nanoTime() - started);
        return ok;
    }

    /** Keys the index points at now. */
    public long entries() {
        indexLock.readLock().lock();
        try {
            return index.size();
        } finally {
            indexLock.readLock().unlock();
        }
    }

    /** Counters since creation. */
    public Stats stats() {
        return new Stats(appended.sum(), overwritten.sum(), hits.sum(), misses.sum(), lostToOverwrite.sum(),
                rowsRead.sum(), readNanos.sum());
    }

    /**
     * @param appended        rows written to the log
     * @param overwritten     indexed rows dropped because the ring wrapped over them
     * @param hits            keys looked up and found in the index
     * @param misses          keys looked up and not found
     * @param lostToOverwrite rows found but overwritten while being read (counted as misses by callers)
     * @param rowsRead        rows read back and valid
     * @param readNanos       time spent reading rows back
     */
    public record Stats(long appended, long overwritten, long hits, long misses, long lostToOverwrite, long rowsRead,
            long readNanos) {
    }

    /** Closes the file (its contents are scratch and stay behind until the next create). Idempotent. */
    @Override
    public void close() {
        file.close();
    }
}
