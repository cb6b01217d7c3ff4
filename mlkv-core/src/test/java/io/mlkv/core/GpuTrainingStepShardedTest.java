package io.mlkv.core;

/**
 * Every test of {@link GpuTrainingStepTest} over an HBM tier of two shards on the first GPU, each
 * holding half of the entries the single-shard test gives its tier: device calls split by owner
 * on the GPU and put back in batch order, host calls split on the CPU, checkpoints per shard.
 */
class GpuTrainingStepShardedTest extends GpuTrainingStepTest {
    @Override
    int[] hbmDevices() {
        return new int[] {0, 0};
    }
}
