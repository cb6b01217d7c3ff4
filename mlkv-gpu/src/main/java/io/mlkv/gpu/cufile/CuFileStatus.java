package io.mlkv.gpu.cufile;

/** Names of cuFile's {@code CUfileOpError} codes (cufile.h), for messages. */
final class CuFileStatus {
    private static final String[] NAMES = {
        "CU_FILE_SUCCESS", "CU_FILE_DRIVER_NOT_INITIALIZED", "CU_FILE_DRIVER_INVALID_PROPS",
        "CU_FILE_DRIVER_UNSUPPORTED_LIMIT", "CU_FILE_DRIVER_VERSION_MISMATCH", "CU_FILE_DRIVER_VERSION_READ_ERROR",
        "CU_FILE_DRIVER_CLOSING", "CU_FILE_PLATFORM_NOT_SUPPORTED", "CU_FILE_IO_NOT_SUPPORTED",
        "CU_FILE_DEVICE_NOT_SUPPORTED", "CU_FILE_NVFS_DRIVER_ERROR", "CU_FILE_CUDA_DRIVER_ERROR",
        "CU_FILE_CUDA_POINTER_INVALID", "CU_FILE_CUDA_MEMORY_TYPE_INVALID", "CU_FILE_CUDA_POINTER_RANGE_ERROR",
        "CU_FILE_CUDA_CONTEXT_MISMATCH", "CU_FILE_INVALID_MAPPING_SIZE", "CU_FILE_INVALID_MAPPING_RANGE",
        "CU_FILE_INVALID_FILE_TYPE", "CU_FILE_INVALID_FILE_OPEN_FLAG", "CU_FILE_DIO_NOT_SET", null,
        "CU_FILE_INVALID_VALUE", "CU_FILE_MEMORY_ALREADY_REGISTERED", "CU_FILE_MEMORY_NOT_REGISTERED",
        "CU_FILE_PERMISSION_DENIED", "CU_FILE_DRIVER_ALREADY_OPEN", "CU_FILE_HANDLE_NOT_REGISTERED",
        "CU_FILE_HANDLE_ALREADY_REGISTERED", "CU_FILE_DEVICE_NOT_FOUND", "CU_FILE_INTERNAL_ERROR",
        "CU_FILE_GETNEWFD_FAILED", null, "CU_FILE_NVFS_SETUP_ERROR", "CU_FILE_IO_DISABLED",
        "CU_FILE_BATCH_SUBMIT_FAILED", "CU_FILE_GPU_MEMORY_PINNING_FAILED", "CU_FILE_BATCH_FULL",
        "CU_FILE_ASYNC_NOT_SUPPORTED", "CU_FILE_INTERNAL_BATCH_SETUP_ERROR", "CU_FILE_INTERNAL_BATCH_SUBMIT_ERROR",
        "CU_FILE_INTERNAL_BATCH_GETSTATUS_ERROR", "CU_FILE_INTERNAL_BATCH_CANCEL_ERROR", "CU_FILE_NOMEM_ERROR",
        "CU_FILE_IO_ERROR", "CU_FILE_INTERNAL_BUF_REGISTER_ERROR", "CU_FILE_HASH_OPR_ERROR",
        "CU_FILE_INVALID_CONTEXT_ERROR", "CU_FILE_NVFS_INTERNAL_DRIVER_ERROR", "CU_FILE_BATCH_NOCOMPAT_ERROR",
    };

    private CuFileStatus() {
    }

    /** {@code NAME (code)} of a CUfileOpError, or {@code CUfileOpError code} for one not in the table. */
    static String name(int err) {
        int i = err == 0 ? 0 : err - 5000;
        if (i >= 0 && i < NAMES.length && NAMES[i] != null) {
            return NAMES[i] + " (" + err + ")";
        }
        return "CUfileOpError " + err;
    }

    /** A packed CUfileError_t as text: the cuFile code and, if set, the CUDA driver code. */
    static String packed(long packed) {
        int err = (int) (packed >>> 32);
        int cu = (int) packed;
        return name(err) + (cu == 0 ? "" : ", CUresult " + jcuda.driver.CUresult.stringFor(cu));
    }

    /** A negative result of a read, write or file call as text (a cuFile code or a POSIX errno). */
    static String ioError(long negative) {
        int code = (int) -negative;
        if (code >= 5000) {
            return name(code);
        }
        String posix = CuFileNative.loadJni() == null ? CuFileNative.strerror(code) : "errno";
        return "errno " + code + " (" + posix + ")";
    }
}
