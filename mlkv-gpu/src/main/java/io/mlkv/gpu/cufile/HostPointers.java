package io.mlkv.gpu.cufile;

import jcuda.Pointer;

/**
 * JCuda pointers to native host memory that the JVM did not allocate (JCuda accepts host memory
 * only as direct buffers), made by the project's JNI library ({@code src-native/cufile}).
 */
public final class HostPointers {
    private HostPointers() {
    }

    /**
     * A pointer to {@code bytes} of native memory at {@code address}, for calls such as
     * {@code cuMemHostRegister}.
     *
     * @throws IllegalStateException if the JNI library is not available here, saying why
     */
    public static Pointer to(long address, long bytes) {
        String why = CuFileNative.loadJni();
        if (why != null) {
            throw new IllegalStateException("cannot point at native host memory: " + why);
        }
        if (address == 0 || bytes <= 0) {
            throw new IllegalArgumentException("address must not be 0 and bytes must be positive, were " + address + ", " + bytes);
        }
        return Pointer.to(CuFileNative.wrap(address, bytes));
    }
}
