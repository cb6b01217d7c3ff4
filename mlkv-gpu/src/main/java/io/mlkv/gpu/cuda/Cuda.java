package io.mlkv.gpu.cuda;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import jcuda.driver.CUresult;

/** Checks CUDA driver return codes. */
public final class Cuda {
    private Cuda() {
    }

    /**
     * Throws if {@code result} is not {@code CUDA_SUCCESS}.
     *
     * @param call what was called, with its size where useful, e.g. {@code "cuMemAlloc (8589934592 bytes)"}
     */
    public static void check(int result, String call) {
        if (result != CUresult.CUDA_SUCCESS) {
            StatusCode status = result == CUresult.CUDA_ERROR_OUT_OF_MEMORY
                    ? StatusCode.OUT_OF_MEMORY : StatusCode.DEVICE_ERROR;
            throw new MlkvException(status, call, CUresult.stringFor(result), null, null);
        }
    }
}
