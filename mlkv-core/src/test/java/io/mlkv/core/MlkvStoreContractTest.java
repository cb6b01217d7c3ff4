package io.mlkv.core;

import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorTierContract;
import io.mlkv.storage.dram.DramTier;
import java.nio.file.Path;
import org.junit.jupiter.api.Nested;

/**
 * The tier contract against the composed store, with a DRAM tier far smaller than the data so
 * most entries live in RocksDB and every test moves data between the tiers.
 */
class MlkvStoreContractTest {

    static VectorTier store(Path dir, int dim, String policy, Durability durability) {
        return MlkvStore.builder()
                .dim(dim)
                .directory(dir.resolve("store"))
                .dramCapacityBytes(8 * DramTier.bucketBytes(dim))
                .blockCacheBytes(4 << 20)
                .policy(policy)
                .durability(durability)
                .gpu(GpuMode.OFF)
                .build();
    }

    @Nested
    class WriteBackLru extends VectorTierContract {
        @Override
        protected VectorTier open(Path dir, int dim) {
            return store(dir, dim, "lru", Durability.WRITE_BACK);
        }
    }

    @Nested
    class WriteBackTinyLfu extends VectorTierContract {
        @Override
        protected VectorTier open(Path dir, int dim) {
            return store(dir, dim, "tinylfu", Durability.WRITE_BACK);
        }
    }

    @Nested
    class WriteThroughLfu extends VectorTierContract {
        @Override
        protected VectorTier open(Path dir, int dim) {
            return store(dir, dim, "lfu", Durability.WRITE_THROUGH);
        }
    }
}
