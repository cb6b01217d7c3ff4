package io.mlkv.gpu.cuda;

import java.util.List;

/**
 * The Java description of a kernel's argument struct, as {@link Kernels#launchPacked} packs it:
 * one 8-byte word per field (pointers, 64-bit integers, and 32-bit integers widened), in the
 * struct's order, nested structs flattened as {@code outer.inner}. A test reads the kernel source
 * and checks each description against its struct's fields and its {@code static_assert} on the
 * size, so a field added, removed or moved on one side only fails the build instead of shifting
 * every argument after it.
 *
 * @param cName  the struct's name in the CUDA source
 * @param fields its fields, in order
 */
public record PackedStruct(String cName, List<String> fields) {
    public PackedStruct {
        fields = List.copyOf(fields);
    }

    /** Words (8 bytes each) in the packed struct. */
    public int words() {
        return fields.size();
    }
}
