package io.mlkv.gpu.cufile;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The JNI entry points of {@code src-native/cufile/mlkv_cufile.c} and the loading of its library
 * from the jar. Return conventions are documented in that file; {@link CuFileStatus} decodes them.
 */
final class CuFileNative {
    private static final String RESOURCE = "/io/mlkv/gpu/cufile/linux-x86_64/libmlkv_cufile.so";
    private static String loadFailure;
    private static boolean loaded;

    private CuFileNative() {
    }

    /**
     * Loads the JNI library once.
     *
     * @return null when loaded, otherwise why not
     */
    static synchronized String loadJni() {
        if (loaded || loadFailure != null) {
            return loadFailure;
        }
        String os = System.getProperty("os.name") + "-" + System.getProperty("os.arch");
        if (!os.equals("Linux-amd64")) {
            return loadFailure = "the cuFile binding is built for Linux amd64 only, this is " + os;
        }
        try (InputStream in = CuFileNative.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                return loadFailure = "the cuFile binding was not built into this jar (no gcc when it was built)";
            }
            Path tmp = Files.createTempFile("libmlkv_cufile", ".so");
            tmp.toFile().deleteOnExit();
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            System.load(tmp.toString());
            loaded = true;
            return null;
        } catch (IOException | UnsatisfiedLinkError e) {
            return loadFailure = "cannot load the cuFile binding: " + e;
        }
    }

    static native String load(String library);

    static native long driverOpen();

    static native long driverClose();

    static native long handleRegister(int fd, long[] handleOut);

    static native void handleDeregister(long handle);

    static native long bufRegister(long devPtr, long bytes);

    static native long bufDeregister(long devPtr);

    static native long read(long handle, long devPtr, long bytes, long fileOffset, long devOffset);

    static native long write(long handle, long devPtr, long bytes, long fileOffset, long devOffset);

    static native int openFile(String path, boolean write, boolean direct);

    static native int closeFile(int fd, boolean sync);

    static native String strerror(int errno);

    /** A direct buffer over native memory at {@code address} (capacity clamped to 2^31 - 1). */
    static native java.nio.ByteBuffer wrap(long address, long capacity);

    /** The device address a JCuda pointer stands for (its native pointer plus byte offset). */
    static native long address(Object jcudaPointer);
}
