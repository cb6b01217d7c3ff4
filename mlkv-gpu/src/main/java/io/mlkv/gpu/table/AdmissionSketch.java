package io.mlkv.gpu.table;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.mlkv.gpu.cuda.Cuda;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.cuda.Kernels;
import io.mlkv.storage.policy.FrequencySketch;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;

/**
 * The table's frequency sketch for admission ({@link GpuHashTable#admitByFrequency()}): the GPU
 * twin of {@link FrequencySketch} (same words, layout and hashing; {@code mlkv_sketch_add} and
 * {@code sketch_frequency} in the kernel source). Every lookup records its keys; a screened
 * install compares the newcomer's estimate with its victim's. Every counter is halved after
 * {@link FrequencySketch#sampleSize} recorded keys (counted per key looked up, where the host
 * twin counts keys that raised a counter: the same once counters are below saturation).
 *
 * <p>Lock rule: the table's lock guards every method; the table's device is current; everything
 * is queued on the table's stream.
 */
final class AdmissionSketch implements AutoCloseable {
    private static final int BLOCK = 256;

    private final Kernels kernels;
    private final CUstream stream;
    private final DeviceMemory words;
    private final long wordCount;
    private final long sampleSize;
    private long recorded;

    AdmissionSketch(long capacity, Kernels kernels, CUstream stream) {
        this.kernels = kernels;
        this.stream = stream;
        this.wordCount = FrequencySketch.words(capacity);
        this.sampleSize = FrequencySketch.sampleSize(capacity);
        this.words = new DeviceMemory(wordCount * 8, "admission sketch");
        try {
            Cuda.check(cuMemsetD8Async(words.pointer(), (byte) 0, wordCount * 8, stream), "cuMemsetD8Async (admission sketch)");
        } catch (RuntimeException e) {
            words.close();
            throw e;
        }
    }

    /** Queues the recording of one access to each of {@code n} device keys, and the halving it brings due. */
    void record(CUdeviceptr keys, long n) {
        kernels.launch("mlkv_sketch_add", n, BLOCK, stream, words.pointer(), wordCount - 1, keys, n);
        recorded += n;
        if (recorded >= sampleSize) {
            kernels.launch("mlkv_sketch_halve", Math.min(wordCount, 1L << 20), BLOCK, stream, words.pointer(), wordCount);
            recorded /= 2;
        }
    }

    CUdeviceptr pointer() {
        return words.pointer();
    }

    long mask() {
        return wordCount - 1;
    }

    /** Waits for the stream and copies the sketch's words to the host (tests compare it with its host twin). */
    long[] toHost() {
        Cuda.check(cuStreamSynchronize(stream), "cuStreamSynchronize before admission sketch copy");
        long[] out = new long[(int) wordCount];
        Cuda.check(cuMemcpyDtoH(Pointer.to(out), words.pointer(), wordCount * 8), "cuMemcpyDtoH (admission sketch)");
        return out;
    }

    @Override
    public void close() {
        words.close();
    }
}
