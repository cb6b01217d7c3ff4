package io.mlkv.storage.rocksdb;

import io.mlkv.storage.VectorTier;
import io.mlkv.storage.VectorTierContract;
import java.nio.file.Path;

class RocksDbTierContractTest extends VectorTierContract {
    @Override
    protected VectorTier open(Path dir, int dim) {
        return RocksDbTier.open(dir.resolve("rocks"), dim, 8 << 20, false);
    }
}
