package io.mlkv.gpu.table;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.PackedStruct;
import io.mlkv.storage.ReservedKeys;
import io.mlkv.storage.dram.DramTier;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The Java side's names for what the CUDA side defines, checked against the kernel source itself
 * (no GPU needed): the reserved keys, the DRAM tier's bucket width, and every packed argument
 * struct's fields, in order, and size.
 */
class KernelSourceContractTest {
    private static String source;

    @BeforeAll
    static void readSource() throws IOException {
        Path file = null;
        for (Path d = Path.of("").toAbsolutePath(); d != null && file == null; d = d.getParent()) {
            Path f = d.resolve("src-native/cuda/mlkv_table.cu");
            if (Files.isRegularFile(f)) {
                file = f;
            }
        }
        // The build always runs inside the source tree; a bundle unpacked elsewhere (scripts/gpu-run.sh) does not.
        org.junit.jupiter.api.Assumptions.assumeTrue(file != null,
                "src-native/cuda/mlkv_table.cu not found above " + Path.of("").toAbsolutePath() + " (run from a bundle)");
        source = Files.readString(file);
    }

    private static String define(String name) {
        Matcher m = Pattern.compile("#define " + name + " (\\S+)").matcher(source);
        assertTrue(m.find(), "no #define " + name);
        return m.group(1);
    }

    private static long hex(String literal) {
        return Long.parseUnsignedLong(literal.replaceFirst("(?i)^0x", "").replaceFirst("(?i)u?ll$", ""), 16);
    }

    @Test
    void reservedKeysAreTheKernelsEmptyAndLockedKeys() {
        assertEquals(ReservedKeys.EMPTY, hex(define("EMPTY_KEY")));
        assertEquals(ReservedKeys.LOCKED, hex(define("LOCKED_KEY")));
    }

    @Test
    void theDramProbeKernelsBucketWidthIsTheDramTiers() {
        assertEquals(DramTier.BUCKET_SLOTS, Integer.parseInt(define("DRAM_SLOTS")));
    }

    @Test
    void theDramWriteStatesAreTheKernelsStates() {
        assertEquals(io.mlkv.gpu.dram.MappedDramTier.WRITE_WANTED, Integer.parseInt(define("DRAM_WRITE_WANTED")));
        assertEquals(io.mlkv.gpu.dram.MappedDramTier.WRITE_DONE, Integer.parseInt(define("DRAM_WRITE_DONE")));
        assertEquals(io.mlkv.gpu.dram.MappedDramTier.WRITE_NOT_HELD, Integer.parseInt(define("DRAM_WRITE_NOT_HELD")));
        // The claimed state lives only on the GPU, between the claim and the release launches.
        assertTrue(Integer.parseInt(define("DRAM_WRITE_CLAIMED")) > io.mlkv.gpu.dram.MappedDramTier.WRITE_NOT_HELD);
    }

    @Test
    void everyPackedStructMatchesItsKernelStructFieldByField() {
        Map<String, List<String>> structs = new HashMap<>();
        Matcher m = Pattern.compile("struct (\\w+) \\{(.*?)\\};", Pattern.DOTALL).matcher(source);
        while (m.find()) {
            List<String> fields = new ArrayList<>();
            for (String decl : m.group(2).replaceAll("//[^\\n]*", "").split(";")) {
                String d = decl.trim();
                if (d.isEmpty()) {
                    continue;
                }
                String[] words = d.split("\\s+");
                String name = words[words.length - 1].replace("*", "");
                String type = words[words.length - 2];
                List<String> nested = structs.get(type);
                if (nested != null) {
                    nested.forEach(f -> fields.add(name + "." + f));
                } else {
                    fields.add(name);
                }
            }
            structs.put(m.group(1), fields);
        }
        for (PackedStruct s : TableKernelArgs.ALL) {
            assertEquals(structs.get(s.cName()), s.fields(), s.cName() + " field by field");
            Matcher size = Pattern.compile("static_assert\\(sizeof\\(" + s.cName() + "\\) == (\\d+) \\* 8").matcher(source);
            assertTrue(size.find(), "no size static_assert for " + s.cName());
            assertEquals(Integer.parseInt(size.group(1)), s.words(), s.cName() + " words");
        }
    }
}
