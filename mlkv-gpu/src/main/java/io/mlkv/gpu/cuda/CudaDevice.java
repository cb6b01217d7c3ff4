package io.mlkv.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuCtxEnablePeerAccess;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceCanAccessPeer;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuMemGetInfo;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicBoolean;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUresult;

/**
 * One CUDA device and its primary context, retained while this object is open. Threads call
 * {@link #makeCurrent()} before driver calls; the context is shared by every user of the device.
 */
public final class CudaDevice implements AutoCloseable {
    private static volatile String probe;

    private final int ordinal;
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final AtomicBoolean closed = new AtomicBoolean();

    private CudaDevice(int ordinal) {
        this.ordinal = ordinal;
        Cuda.check(cuDeviceGet(device, ordinal), "cuDeviceGet (" + ordinal + ")");
        Cuda.check(cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain (device " + ordinal + ")");
        makeCurrent();
    }

    /**
     * Why no CUDA device can be used here, or {@code null} if one can. Loads JCuda's native
     * library and initialises the driver once; never throws.
     */
    public static String unavailableReason() {
        String p = probe;
        if (p == null) {
            p = runProbe();
            probe = p;
        }
        return p.isEmpty() ? null : p;
    }

    private static String runProbe() {
        try {
            int r = cuInit(0);
            if (r != CUresult.CUDA_SUCCESS) {
                return "cuInit failed with " + CUresult.stringFor(r) + " (no usable CUDA driver or device)";
            }
            int[] count = new int[1];
            r = cuDeviceGetCount(count);
            if (r != CUresult.CUDA_SUCCESS) {
                return "cuDeviceGetCount failed with " + CUresult.stringFor(r);
            }
            return count[0] == 0 ? "no CUDA device present" : "";
        } catch (LinkageError | RuntimeException e) {
            String msg = String.valueOf(e.getMessage());
            if (msg.contains("libcuda.so")) {
                return "the CUDA driver (libcuda.so.1) is not installed";
            }
            int eol = msg.indexOf('\n');
            return "JCuda's native library could not be loaded: " + (eol < 0 ? msg : msg.substring(0, eol));
        }
    }

    /** How many CUDA devices this process sees (0 where CUDA cannot be used). */
    public static int count() {
        if (unavailableReason() != null) {
            return 0;
        }
        int[] count = new int[1];
        Cuda.check(cuDeviceGetCount(count), "cuDeviceGetCount");
        return count[0];
    }

    /** Opens device {@code ordinal}; throws with the probe's reason if CUDA is unusable. */
    public static CudaDevice open(int ordinal) {
        String reason = unavailableReason();
        if (reason != null) {
            throw new IllegalStateException("no CUDA device can be used: " + reason);
        }
        return new CudaDevice(ordinal);
    }

    /** The device's ordinal, as {@link #open} took it. */
    public int ordinal() {
        return ordinal;
    }

    /** The device's primary context, shared by every user of the device (peer copies name it). */
    public CUcontext context() {
        return context;
    }

    /**
     * Lets kernels and copies of {@code from}'s context read and write {@code to}'s memory directly
     * (NVLink or PCIe peer-to-peer). Enabling a pair twice is harmless.
     *
     * @throws IllegalStateException naming both ordinals if the two devices cannot reach each other
     */
    public static void enablePeerAccess(CudaDevice from, CudaDevice to) {
        int[] can = new int[1];
        Cuda.check(cuDeviceCanAccessPeer(can, from.device, to.device),
                "cuDeviceCanAccessPeer (device " + from.ordinal + " to " + to.ordinal + ")");
        if (can[0] == 0) {
            throw new IllegalStateException("CUDA device " + from.ordinal + " cannot reach device " + to.ordinal
                    + " (no peer-to-peer path between them): give the table devices that can, or one device");
        }
        from.makeCurrent();
        int r = cuCtxEnablePeerAccess(to.context, 0);
        if (r != CUresult.CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) {
            Cuda.check(r, "cuCtxEnablePeerAccess (device " + from.ordinal + " to " + to.ordinal + ")");
        }
    }

    /**
     * {@link #enablePeerAccess} both ways between every two of {@code devices} (each device once).
     *
     * @throws IllegalStateException naming both ordinals if two of them cannot reach each other
     */
    public static void enablePeerAccessAmong(java.util.Collection<CudaDevice> devices) {
        for (CudaDevice from : devices) {
            for (CudaDevice to : devices) {
                if (from != to) {
                    enablePeerAccess(from, to);
                }
            }
        }
    }

    /** Makes this device's context current on the calling thread. */
    public void makeCurrent() {
        if (closed.get()) {
            throw new IllegalStateException("CUDA device " + ordinal + " is closed");
        }
        Cuda.check(cuCtxSetCurrent(context), "cuCtxSetCurrent (device " + ordinal + ")");
    }

    /** The device's name, e.g. {@code NVIDIA H200}. */
    public String name() {
        byte[] name = new byte[256];
        Cuda.check(cuDeviceGetName(name, name.length, device), "cuDeviceGetName");
        int len = 0;
        while (len < name.length && name[len] != 0) {
            len++;
        }
        return new String(name, 0, len, StandardCharsets.US_ASCII);
    }

    /** {@code {free, total}} device memory in bytes. */
    public long[] memoryInfo() {
        makeCurrent();
        long[] free = new long[1];
        long[] total = new long[1];
        Cuda.check(cuMemGetInfo(free, total), "cuMemGetInfo");
        return new long[] {free[0], total[0]};
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            Cuda.check(cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease (device " + ordinal + ")");
        }
    }
}
