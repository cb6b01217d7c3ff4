package io.mlkv.cli;

import io.mlkv.core.Durability;
import io.mlkv.core.GpuMode;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * The store options that several commands take, declared once as picocli mixins. A command
 * creates each with its own default ({@code @Mixin StoreOptions.Dim dim = new StoreOptions.Dim(64);}),
 * which its help shows, and reads the checked value, so every command names and refuses a bad
 * value the same way.
 */
public final class StoreOptions {
    private StoreOptions() {
    }

    /** {@code --dim}: floats per vector, 1 to 65536. */
    public static final class Dim {
        @Spec(Spec.Target.MIXEE)
        CommandSpec spec;

        @Option(names = "--dim", description = "Floats per vector, 1-65536 (default ${DEFAULT-VALUE}).")
        int dim;

        public Dim(int initial) {
            this.dim = initial;
        }

        public int get() {
            if (dim < 1 || dim > 65536) {
                throw new ParameterException(spec.commandLine(), "--dim must be 1-65536, was " + dim);
            }
            return dim;
        }
    }

    /** {@code --dram-mb}: the DRAM tier's size in MiB. */
    public static final class DramMb {
        @Spec(Spec.Target.MIXEE)
        CommandSpec spec;

        @Option(names = "--dram-mb", description = "DRAM tier in MiB (default ${DEFAULT-VALUE}).")
        long mb;

        public DramMb(long initial) {
            this.mb = initial;
        }

        /** The size in MiB. */
        public long megabytes() {
            if (mb < 1 || mb > (Long.MAX_VALUE >> 20)) {
                throw new ParameterException(spec.commandLine(), "--dram-mb must be positive, was " + mb);
            }
            return mb;
        }

        /** The size in bytes. */
        public long bytes() {
            return megabytes() << 20;
        }
    }

    /** {@code --policy}: the DRAM tier's eviction and admission policy. */
    public static final class Policy {
        @Spec(Spec.Target.MIXEE)
        CommandSpec spec;

        @Option(names = "--policy", description = "DRAM tier policy: lru, lfu or tinylfu (default ${DEFAULT-VALUE}).")
        String name;

        public Policy(String initial) {
            this.name = initial;
        }

        public String get() {
            try {
                return io.mlkv.storage.policy.Policies.checkName(name);
            } catch (IllegalArgumentException e) {
                throw new ParameterException(spec.commandLine(), "--policy: " + e.getMessage());
            }
        }
    }

    /** {@code --durability}: when a write is acknowledged. */
    public static final class DurabilityMode {
        @Option(names = "--durability", description = "WRITE_BACK or WRITE_THROUGH, any case (default ${DEFAULT-VALUE}).")
        Durability durability;

        public DurabilityMode(Durability initial) {
            this.durability = initial;
        }

        public Durability get() {
            return durability;
        }
    }

    /** {@code --gpu}: whether the store takes an HBM tier. */
    public static final class Gpu {
        @Option(names = "--gpu", description = "HBM tier: OFF, AUTO or ON, any case (default ${DEFAULT-VALUE}).")
        GpuMode mode;

        public Gpu(GpuMode initial) {
            this.mode = initial;
        }

        public GpuMode get() {
            return mode;
        }
    }
}
