package io.mlkv.gpu.table;

import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.Kernels;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Runs a GPU test class only where a CUDA device can be used and the kernels were built;
 * elsewhere the class is reported as skipped, with the reason.
 */
public final class RequiresGpu implements ExecutionCondition {
    @Override
    public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
        if (!Kernels.built()) {
            return ConditionEvaluationResult.disabled("GPU test skipped: kernels were not built (no nvcc at build time)");
        }
        String reason = CudaDevice.unavailableReason();
        return reason == null
                ? ConditionEvaluationResult.enabled("CUDA device present")
                : ConditionEvaluationResult.disabled("GPU test skipped: " + reason);
    }
}
