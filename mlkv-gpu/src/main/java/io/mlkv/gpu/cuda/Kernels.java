package io.mlkv.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import jcuda.NativePointerObject;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;

/**
 * The project's CUDA kernels, compiled ahead of time by {@code nvcc} into a fatbin (machine code
 * for sm_80 and sm_90 plus PTX) that the {@code mlkv-gpu} jar carries, loaded with
 * {@code cuModuleLoadData}. Never compiled at run time.
 */
public final class Kernels implements AutoCloseable {
    /** Where the build puts the fatbin on the classpath. */
    public static final String FATBIN = "/io/mlkv/gpu/mlkv_table.fatbin";

    private final CUmodule module = new CUmodule();
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final AtomicBoolean closed = new AtomicBoolean();

    private Kernels(byte[] fatbin) {
        Cuda.check(cuModuleLoadData(module, fatbin), "cuModuleLoadData (" + FATBIN + ", " + fatbin.length + " bytes)");
    }

    /** Whether the jar carries the kernels (false when it was built without nvcc). */
    public static boolean built() {
        return Kernels.class.getResource(FATBIN) != null;
    }

    /** Loads the kernels into the current context. */
    public static Kernels load() {
        try (InputStream in = Kernels.class.getResourceAsStream(FATBIN)) {
            if (in == null) {
                throw new IllegalStateException("the GPU kernels were not built: mlkv-gpu was packaged without "
                        + "CUDA's nvcc on the PATH, so " + FATBIN + " is missing; rebuild with nvcc installed");
            }
            return new Kernels(in.readAllBytes());
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + FATBIN, e);
        }
    }

    private synchronized CUfunction function(String name) {
        return functions.computeIfAbsent(name, n -> {
            CUfunction f = new CUfunction();
            Cuda.check(cuModuleGetFunction(f, module, n), "cuModuleGetFunction (" + n + ")");
            return f;
        });
    }

    /**
     * Launches {@code name} with enough blocks of {@code blockSize} threads to cover
     * {@code threads}. Arguments: {@link CUdeviceptr} (or {@code null} for a null pointer),
     * {@link Long} for 64-bit integers, {@link Integer} for {@code int}.
     */
    public void launch(String name, long threads, int blockSize, CUstream stream, Object... args) {
        if (threads <= 0) {
            return;
        }
        NativePointerObject[] params = new NativePointerObject[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a == null) {
                params[i] = Pointer.to(new long[] {0});
            } else if (a instanceof CUdeviceptr) {
                params[i] = Pointer.to((CUdeviceptr) a);
            } else if (a instanceof Long) {
                params[i] = Pointer.to(new long[] {(Long) a});
            } else if (a instanceof Integer) {
                params[i] = Pointer.to(new int[] {(Integer) a});
            } else {
                throw new IllegalArgumentException(name + ": unsupported kernel argument " + i + ": " + a.getClass());
            }
        }
        launchWith(name, threads, blockSize, stream, Pointer.to(params));
    }

    /**
     * Launches {@code name}, a kernel whose only parameter is a struct of 8-byte fields, one per
     * element of {@code args} in order: {@link CUdeviceptr} (or {@code null}) as its address,
     * {@link Long} as is, {@link Integer} sign-extended (the kernel narrows it). JCuda marshals each
     * kernel argument separately (about half a microsecond apiece), so one packed argument makes
     * the launch of a kernel with two dozen parameters about as cheap as that of one with three.
     * {@code layout} describes the struct; a count of {@code args} that differs is refused.
     */
    public void launchPacked(String name, PackedStruct layout, long threads, int blockSize, CUstream stream,
            Object... args) {
        if (args.length != layout.words()) {
            throw new IllegalArgumentException(name + ": " + layout.cName() + " has " + layout.words()
                    + " fields " + layout.fields() + ", " + args.length + " arguments were given");
        }
        if (threads <= 0) {
            return;
        }
        long[] fields = new long[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a == null) {
                fields[i] = 0;
            } else if (a instanceof CUdeviceptr) {
                fields[i] = address((CUdeviceptr) a);
            } else if (a instanceof Long) {
                fields[i] = (Long) a;
            } else if (a instanceof Integer) {
                fields[i] = (Integer) a;
            } else {
                throw new IllegalArgumentException(name + ": unsupported kernel argument " + i + ": " + a.getClass());
            }
        }
        launchWith(name, threads, blockSize, stream, Pointer.to(new NativePointerObject[] {Pointer.to(fields)}));
    }

    /** Launches enough blocks of {@code blockSize} threads to cover {@code threads} (at least one). */
    private void launchWith(String name, long threads, int blockSize, CUstream stream, Pointer params) {
        long blocks = (threads + blockSize - 1) / blockSize;
        if (blocks > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(name + ": " + threads + " threads need too many blocks");
        }
        Cuda.check(cuLaunchKernel(function(name), (int) blocks, 1, 1, blockSize, 1, 1, 0, stream, params, null),
                "cuLaunchKernel (" + name + ", " + threads + " threads)");
    }

    /** The device address {@code p} stands for: its base plus its byte offset. */
    public static long address(CUdeviceptr p) {
        return new Address(p).value();
    }

    /** Reads what JCuda keeps protected: a device pointer's base address and byte offset. */
    private static final class Address extends CUdeviceptr {
        Address(CUdeviceptr p) {
            super(p);
        }

        long value() {
            return getNativePointer() + getByteOffset();
        }
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            Cuda.check(cuModuleUnload(module), "cuModuleUnload");
        }
    }
}
