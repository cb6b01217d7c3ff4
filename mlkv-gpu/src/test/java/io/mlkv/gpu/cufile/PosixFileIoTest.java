package io.mlkv.gpu.cufile;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.mlkv.storage.MlkvException;
import io.mlkv.storage.StatusCode;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The POSIX file path with host memory in place of device memory: runs on every machine. */
class PosixFileIoTest {
    private static final long SEED = Long.getLong("mlkv.seed", System.nanoTime());

    @TempDir
    Path dir;

    private static HostRegion random(int bytes, long seed) {
        ByteBuffer b = ByteBuffer.allocateDirect(bytes);
        SplittableRandom r = new SplittableRandom(seed);
        while (b.remaining() >= 8) {
            b.putLong(r.nextLong());
        }
        while (b.hasRemaining()) {
            b.put((byte) r.nextInt());
        }
        return new HostRegion(b);
    }

    private static ByteBuffer bytesOf(HostRegion r) {
        ByteBuffer b = ByteBuffer.allocateDirect((int) r.bytes());
        r.copyOut(0, b, (int) r.bytes());
        return b.clear();
    }

    @Test
    void regionsRoundTripThroughFilesWhateverTheirLength() {
        try (PosixFileIo io = new PosixFileIo(3, 64 << 10, 3)) {
            for (int bytes : new int[] {0, 1, 4095, 64 << 10, (64 << 10) * 7 + 13, 5 << 20}) {
                HostRegion src = random(bytes, SEED + bytes);
                Path f = dir.resolve("r" + bytes);
                io.write(src, f);
                assertEquals(bytes, f.toFile().length());
                HostRegion back = new HostRegion(ByteBuffer.allocateDirect(bytes));
                io.read(f, back);
                assertEquals(bytesOf(src), bytesOf(back), "seed " + SEED + ", " + bytes + " bytes");
            }
        }
    }

    @Test
    void aTruncatedFileIsRefusedAndTheTargetIsLeftAlone() throws Exception {
        try (PosixFileIo io = new PosixFileIo()) {
            HostRegion src = random(1 << 20, SEED);
            Path f = dir.resolve("t");
            io.write(src, f);
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
                ch.truncate((1 << 20) - 100);
            }
            HostRegion target = random(1 << 20, SEED + 1);
            ByteBuffer before = bytesOf(target);
            MlkvException e = assertThrows(MlkvException.class, () -> io.read(f, target));
            assertEquals(StatusCode.CORRUPTION, e.status());
            assertTrue(e.getMessage().contains("1048476 bytes, expected 1048576"), e.getMessage());
            assertEquals(before, bytesOf(target));
        }
    }

    @Test
    void anUnwritablePlaceIsAnIoErrorNamingTheFile() throws Exception {
        Path blocker = dir.resolve("file-not-dir");
        Files.writeString(blocker, "x");
        Path f = blocker.resolve("child");
        try (PosixFileIo io = new PosixFileIo()) {
            MlkvException e = assertThrows(MlkvException.class, () -> io.write(random(10, SEED), f));
            assertEquals(StatusCode.IO_ERROR, e.status());
            assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        }
    }

    @Test
    void withoutCuFileTheAutomaticPathIsPosixAndSaysWhy() {
        // On machines with libcufile.so.0 and a working driver this picks cuFile; then there is nothing to check here.
        try (FileIo io = FileIo.open(FileIo.Mode.AUTO)) {
            if (io.cufileUnavailable() == null) {
                return;
            }
            assertTrue(io.cufileUnavailable().contains("cuFile") || io.cufileUnavailable().contains("libcufile"),
                    io.cufileUnavailable());
            HostRegion src = random(100_000, SEED);
            Path f = dir.resolve("auto");
            io.write(src, f);
            assertEquals("posix", io.lastPath());
            HostRegion back = new HostRegion(ByteBuffer.allocateDirect(100_000));
            io.read(f, back);
            assertEquals(bytesOf(src), bytesOf(back));
        }
        MlkvException e = assertThrows(MlkvException.class, () -> FileIo.open(FileIo.Mode.CUFILE).close());
        assertEquals(StatusCode.DEVICE_ERROR, e.status());
    }
}
