package io.mlkv.bench.jmh;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import net.openhft.chronicle.map.ChronicleMap;

/**
 * Chronicle Map, the off-heap map Java users pick for large tables, as such a user would hold a
 * vector table in it: {@code ChronicleMap<Long, byte[]>} of little-endian floats (it has no
 * float-array value type), read with {@code getUsing} into a per-thread buffer, written with a
 * put per key. Thread-safe. On Java 17 and later it needs the JVM options its documentation lists,
 * which {@link TierBenchmark}'s fork passes (with its usage statistics turned off).
 */
final class ChronicleBaseline implements HeapBaselines.Measured {
    private final int dim;
    private final ChronicleMap<Long, byte[]> map;
    private final ThreadLocal<byte[]> buffers;

    ChronicleBaseline(int dim, long entries) {
        this.dim = dim;
        this.map = ChronicleMap.of(Long.class, byte[].class).averageValueSize(dim * 4).entries(entries).create();
        this.buffers = ThreadLocal.withInitial(() -> new byte[dim * 4]);
    }

    @Override
    public int dim() {
        return dim;
    }

    @Override
    public int multiGet(long[] keys, float[] out, boolean[] found) {
        byte[] using = buffers.get();
        int hits = 0;
        for (int i = 0; i < keys.length; i++) {
            byte[] v = map.getUsing(keys[i], using);
            found[i] = v != null;
            if (v != null) {
                floats(v).get(out, i * dim, dim);
                hits++;
            }
        }
        return hits;
    }

    @Override
    public void multiPut(long[] keys, float[] values) {
        for (int i = 0; i < keys.length; i++) {
            byte[] v = new byte[dim * 4];
            floats(v).put(values, i * dim, dim);
            map.put(keys[i], v);
        }
    }

    private static java.nio.FloatBuffer floats(byte[] v) {
        return ByteBuffer.wrap(v).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    }

    @Override
    public long size() {
        return map.longSize();
    }

    @Override
    public void close() {
        map.close();
    }
}
