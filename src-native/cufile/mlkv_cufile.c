/*
 * JNI binding of the few cuFile (GPUDirect Storage) calls MLKV uses, for
 * io.mlkv.gpu.cufile.CuFileNative. libcufile.so.0 is loaded with dlopen at run
 * time: the build machines have neither its header nor the library, so the
 * types and entry points below are declared here, matching cufile.h's ABI.
 *
 * Return conventions (decoded by the Java side, which names the codes):
 *  - driver/handle/buffer calls return a packed CUfileError_t:
 *    ((long) err << 32) | (cu_err & 0xffffffff), 0 meaning success;
 *  - read/write return bytes moved, or a negative code: -errno when the call
 *    returned -1 (errno holds a POSIX error, or a CUfileOpError >= 5000), or
 *    the call's own negative CUfileOpError otherwise;
 *  - file calls return the fd / 0, or -errno.
 */
#define _GNU_SOURCE
#include <jni.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct { int err; int cu_err; } mlkv_cufile_error_t;   /* CUfileError_t */
typedef struct {                                               /* CUfileDescr_t */
    int type;                                                  /* CU_FILE_HANDLE_TYPE_OPAQUE_FD = 1 */
    union { int fd; void *handle; } handle;
    const void *fs_ops;
} mlkv_cufile_descr_t;

static mlkv_cufile_error_t (*p_driver_open)(void);
static mlkv_cufile_error_t (*p_driver_close)(void);
static mlkv_cufile_error_t (*p_handle_register)(void **, mlkv_cufile_descr_t *);
static void (*p_handle_deregister)(void *);
static mlkv_cufile_error_t (*p_buf_register)(const void *, size_t, int);
static mlkv_cufile_error_t (*p_buf_deregister)(const void *);
static ssize_t (*p_read)(void *, void *, size_t, off_t, off_t);
static ssize_t (*p_write)(void *, const void *, size_t, off_t, off_t);

static jlong pack(mlkv_cufile_error_t e) {
    return ((jlong) e.err << 32) | (jlong) (uint32_t) e.cu_err;
}

static void *need(void *lib, const char *name, char *msg, size_t len) {
    void *f = dlsym(lib, name);
    if (f == NULL && msg[0] == 0) {
        snprintf(msg, len, "dlsym %s: %s", name, dlerror());
    }
    return f;
}

JNIEXPORT jstring JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_load(JNIEnv *env, jclass cls, jstring library) {
    char msg[512] = {0};
    const char *name = (*env)->GetStringUTFChars(env, library, NULL);
    if (name == NULL) {
        return (*env)->NewStringUTF(env, "out of memory reading the library name");
    }
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(msg, sizeof msg, "dlopen %s: %s", name, dlerror());
        (*env)->ReleaseStringUTFChars(env, library, name);
        return (*env)->NewStringUTF(env, msg);
    }
    (*env)->ReleaseStringUTFChars(env, library, name);
    p_driver_open = need(lib, "cuFileDriverOpen", msg, sizeof msg);
    /* cufile.h renames cuFileDriverClose to cuFileDriverClose_v2; older libraries have only the first. */
    p_driver_close = dlsym(lib, "cuFileDriverClose_v2");
    if (p_driver_close == NULL) {
        p_driver_close = need(lib, "cuFileDriverClose", msg, sizeof msg);
    }
    p_handle_register = need(lib, "cuFileHandleRegister", msg, sizeof msg);
    p_handle_deregister = need(lib, "cuFileHandleDeregister", msg, sizeof msg);
    p_buf_register = need(lib, "cuFileBufRegister", msg, sizeof msg);
    p_buf_deregister = need(lib, "cuFileBufDeregister", msg, sizeof msg);
    p_read = need(lib, "cuFileRead", msg, sizeof msg);
    p_write = need(lib, "cuFileWrite", msg, sizeof msg);
    return msg[0] ? (*env)->NewStringUTF(env, msg) : NULL;
}

JNIEXPORT jlong JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_driverOpen(JNIEnv *env, jclass cls) {
    return pack(p_driver_open());
}

JNIEXPORT jlong JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_driverClose(JNIEnv *env, jclass cls) {
    return pack(p_driver_close());
}

JNIEXPORT jlong JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_handleRegister(JNIEnv *env, jclass cls, jint fd,
        jlongArray handleOut) {
    mlkv_cufile_descr_t d;
    memset(&d, 0, sizeof d);
    d.type = 1;
    d.handle.fd = fd;
    void *h = NULL;
    mlkv_cufile_error_t e = p_handle_register(&h, &d);
    if (e.err == 0) {
        jlong v = (jlong) (intptr_t) h;
        (*env)->SetLongArrayRegion(env, handleOut, 0, 1, &v);
    }
    return pack(e);
}

JNIEXPORT void JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_handleDeregister(JNIEnv *env, jclass cls, jlong handle) {
    p_handle_deregister((void *) (intptr_t) handle);
}

JNIEXPORT jlong JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_bufRegister(JNIEnv *env, jclass cls, jlong devPtr,
        jlong bytes) {
    return pack(p_buf_register((const void *) (intptr_t) devPtr, (size_t) bytes, 0));
}

JNIEXPORT jlong JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_bufDeregister(JNIEnv *env, jclass cls, jlong devPtr) {
    return pack(p_buf_deregister((const void *) (intptr_t) devPtr));
}

static jlong io_result(ssize_t r) {
    if (r >= 0) {
        return (jlong) r;
    }
    return r == -1 ? -(jlong) errno : (jlong) r;
}

JNIEXPORT jlong JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_read(JNIEnv *env, jclass cls, jlong handle,
        jlong devPtr, jlong bytes, jlong fileOffset, jlong devOffset) {
    errno = 0;
    return io_result(p_read((void *) (intptr_t) handle, (void *) (intptr_t) devPtr, (size_t) bytes,
            (off_t) fileOffset, (off_t) devOffset));
}

JNIEXPORT jlong JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_write(JNIEnv *env, jclass cls, jlong handle,
        jlong devPtr, jlong bytes, jlong fileOffset, jlong devOffset) {
    errno = 0;
    return io_result(p_write((void *) (intptr_t) handle, (const void *) (intptr_t) devPtr, (size_t) bytes,
            (off_t) fileOffset, (off_t) devOffset));
}

JNIEXPORT jint JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_openFile(JNIEnv *env, jclass cls, jstring path,
        jboolean write, jboolean direct) {
    const char *p = (*env)->GetStringUTFChars(env, path, NULL);
    if (p == NULL) {
        return -ENOMEM;
    }
    int flags = (write ? (O_RDWR | O_CREAT | O_TRUNC) : O_RDONLY) | (direct ? O_DIRECT : 0) | O_CLOEXEC;
    int fd = open(p, flags, 0644);
    int err = errno;
    (*env)->ReleaseStringUTFChars(env, path, p);
    return fd >= 0 ? fd : -err;
}

JNIEXPORT jint JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_closeFile(JNIEnv *env, jclass cls, jint fd, jboolean sync) {
    if (sync && fsync(fd) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return close(fd) == 0 ? 0 : -errno;
}

JNIEXPORT jstring JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_strerror(JNIEnv *env, jclass cls, jint err) {
    char buf[256];
    const char *s = strerror_r(err, buf, sizeof buf);
    return (*env)->NewStringUTF(env, s);
}

/* The address a JCuda Pointer/CUdeviceptr stands for: jcuda.NativePointerObject.nativePointer
 * plus jcuda.Pointer.byteOffset, read the way JCuda's own native code reads them. */
JNIEXPORT jlong JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_address(JNIEnv *env, jclass cls, jobject pointer) {
    jclass npo = (*env)->FindClass(env, "jcuda/NativePointerObject");
    jclass ptr = (*env)->FindClass(env, "jcuda/Pointer");
    if (npo == NULL || ptr == NULL) {
        return 0; /* NoClassDefFoundError is pending */
    }
    jfieldID native = (*env)->GetFieldID(env, npo, "nativePointer", "J");
    jfieldID offset = (*env)->GetFieldID(env, ptr, "byteOffset", "J");
    if (native == NULL || offset == NULL) {
        return 0; /* NoSuchFieldError is pending */
    }
    return (*env)->GetLongField(env, pointer, native) + (*env)->GetLongField(env, pointer, offset);
}

/* A direct ByteBuffer over native memory that the JVM does not own (the DRAM tier's arrays), so
 * that JCuda, which takes host pointers only as direct buffers, can pin and map it. The capacity
 * is clamped to what a ByteBuffer can hold; callers pass the real size to CUDA separately. */
JNIEXPORT jobject JNICALL Java_io_mlkv_gpu_cufile_CuFileNative_wrap(JNIEnv *env, jclass cls, jlong address,
                                                                     jlong capacity) {
    return (*env)->NewDirectByteBuffer(env, (void *)(intptr_t)address, capacity > 0x7fffffffL ? 0x7fffffffL : capacity);
}
