package io.mlkv.gpu.table;

import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorTierContract;
import java.nio.file.Path;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.extension.ExtendWith;

/** The tier contract against the GPU table (far below its capacity, so nothing is evicted). */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class GpuHashTableContractTest extends VectorTierContract {
    @Override
    protected VectorTier open(Path dir, int dim) {
        return GpuHashTable.create(dim, 1 << 16, ScoreMode.LRU, 1 << 12);
    }
}
