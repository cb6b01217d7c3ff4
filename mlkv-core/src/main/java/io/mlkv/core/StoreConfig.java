package io.mlkv.core;

import io.mlkv.gpu.cufile.FileIo;
import java.nio.file.Path;

/**
 * A store's settings, checked and fixed: what {@link MlkvStoreBuilder#build()} hands to the
 * store, which reads it once when it opens. The builder's setters say what each one means.
 */
record StoreConfig(int dim, Path directory, long dramCapacityBytes, long blockCacheBytes, String policy,
        Durability durability, boolean syncWrites, GpuMode gpuMode, long hbmCapacity, int[] hbmDevices, boolean hbmWriteBack,
        HbmAdmission hbmAdmission, long hbmSpillRows, FileIo.Mode fileIoMode, boolean mapDram, int prefetchThreads,
        int batchThreads, SizeCounting sizeCounting) {
}
