package io.mlkv.gpu.shard;

import io.mlkv.gpu.table.RequiresGpu;
import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorTierContract;
import java.nio.file.Path;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.extension.ExtendWith;

/** The tier contract against three shards on device 0 (far below capacity, so nothing is evicted). */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class ShardedGpuTableContractTest extends VectorTierContract {
    @Override
    protected VectorTier open(Path dir, int dim) {
        return ShardedGpuTable.builder(dim).devices(0, 0, 0).capacityPerShard(1 << 16).stagingKeys(1 << 12)
                .maxBatch(1 << 12).build();
    }
}
