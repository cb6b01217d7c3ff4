package io.mlkv.gpu.cufile;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.gpu.cuda.CudaDevice;
import io.mlkv.gpu.cuda.DeviceMemory;
import io.mlkv.gpu.table.RequiresGpu;
import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** Device memory to files and back over each path: cuFile where the host allows it, POSIX always. */
@Tag("gpu")
@ExtendWith(RequiresGpu.class)
class DeviceFileIoTest {
    private static final long SEED = Long.getLong("mlkv.seed", System.nanoTime());
    private static final int BYTES = (96 << 20) + 4093;

    @TempDir
    Path dir;

    private static ByteBuffer random(long seed) {
        ByteBuffer b = ByteBuffer.allocateDirect(BYTES);
        SplittableRandom r = new SplittableRandom(seed);
        while (b.remaining() >= 8) {
            b.putLong(r.nextLong());
        }
        while (b.hasRemaining()) {
            b.put((byte) r.nextInt());
        }
        return b.clear();
    }

    private void roundTrip(FileIo io, String expectedPath) {
        try (DeviceMemory a = new DeviceMemory(BYTES, "test source"); DeviceMemory b = new DeviceMemory(BYTES, "test target")) {
            DeviceRegion src = new DeviceRegion(a.pointer(), BYTES);
            DeviceRegion dst = new DeviceRegion(b.pointer(), BYTES);
            ByteBuffer data = random(SEED);
            src.copyIn(data, 0, BYTES);
            Path f = dir.resolve(expectedPath + ".bin");
            io.write(src, f);
            assertEquals(expectedPath, io.lastPath());
            assertEquals(BYTES, f.toFile().length());
            io.read(f, dst);
            assertEquals(expectedPath, io.lastPath());
            ByteBuffer back = ByteBuffer.allocateDirect(BYTES);
            dst.copyOut(0, back, BYTES);
            assertEquals(data.clear(), back.clear(), "seed " + SEED + " over " + expectedPath);
        }
    }

    @Test
    void thePosixPathRoundTripsDeviceMemory() {
        try (CudaDevice dev = CudaDevice.open(0); FileIo io = FileIo.open(FileIo.Mode.POSIX)) {
            dev.makeCurrent();
            roundTrip(io, "posix");
        }
    }

    @Test
    void theAutomaticPathRoundTripsDeviceMemoryAndSaysWhichPathItTook() {
        try (CudaDevice dev = CudaDevice.open(0); FileIo io = FileIo.open(FileIo.Mode.AUTO)) {
            dev.makeCurrent();
            String expected = io.cufileUnavailable() == null ? "cufile" : "posix";
            try {
                roundTrip(io, expected);
            } catch (AssertionError e) {
                // cuFile opened but refused the file system: the fallback must have carried the data.
                assertEquals("cufile", expected, e.getMessage());
                roundTrip(io, "posix");
            }
            System.out.println("DeviceFileIoTest: automatic path " + io.lastPath()
                    + (io.cufileUnavailable() == null ? "" : " (cuFile unavailable: " + io.cufileUnavailable() + ")"));
        }
    }

    @Test
    void theCuFilePathRoundTripsOrNamesTheCallThatFailed() {
        try (CudaDevice dev = CudaDevice.open(0)) {
            dev.makeCurrent();
            FileIo io;
            try {
                io = FileIo.open(FileIo.Mode.CUFILE);
            } catch (MlkvException e) {
                assertEquals(StatusCode.DEVICE_ERROR, e.status());
                System.out.println("DeviceFileIoTest: cuFile unavailable here: " + e.getMessage());
                return;
            }
            try (io) {
                try {
                    roundTrip(io, "cufile");
                    System.out.println("DeviceFileIoTest: cuFile round trip passed");
                } catch (MlkvException e) {
                    assertTrue(e.getMessage().contains("cuFileHandleRegister"), e.getMessage());
                    System.out.println("DeviceFileIoTest: cuFile refused the file: " + e.getMessage());
                }
            }
        }
    }

    @Test
    void aTruncatedFileIsRefusedOnEveryPath() throws Exception {
        try (CudaDevice dev = CudaDevice.open(0); FileIo io = FileIo.open(FileIo.Mode.AUTO);
             DeviceMemory a = new DeviceMemory(1 << 20, "test")) {
            dev.makeCurrent();
            Path f = dir.resolve("short.bin");
            java.nio.file.Files.write(f, new byte[(1 << 20) - 1]);
            MlkvException e = assertThrows(MlkvException.class, () -> io.read(f, new DeviceRegion(a.pointer(), 1 << 20)));
            assertEquals(StatusCode.CORRUPTION, e.status());
        }
    }
}
