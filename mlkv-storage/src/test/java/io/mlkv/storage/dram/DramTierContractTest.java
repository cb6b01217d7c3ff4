package io.mlkv.storage.dram;

import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorTierContract;
import java.nio.file.Path;

class DramTierContractTest extends VectorTierContract {
    @Override
    protected VectorTier open(Path dir, int dim) {
        // Eight times the required entries, so no bucket overflows in the contract's tests.
        return new DramTier(dim, 8 * REQUIRED_CAPACITY * DramTier.bucketBytes(dim) / DramTier.BUCKET_SLOTS, "lru");
    }
}
