package io.mlkv.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import org.junit.jupiter.api.Test;

class LocationTest {
    @Test
    void roundTripsThroughItsWireForm() {
        Location l = Location.of("tenant-a", 0x8000_0000_0000_0001L);
        ByteString wire = l.encode();
        assertEquals(Location.ENCODED_LENGTH, wire.size());
        assertEquals(l, Location.decode(wire));
        assertEquals(BlockHash.partitionId("tenant-a"), Location.decode(wire).partitionId());
    }

    @Test
    void malformedBytesAreRefusedWithTheReason() {
        IllegalArgumentException shortOne = assertThrows(IllegalArgumentException.class,
                () -> Location.decode(ByteString.copyFrom(new byte[5])));
        assertTrue(shortOne.getMessage().contains("5 bytes"), shortOne.getMessage());
        byte[] otherFormat = Location.of("p", 1).encode().toByteArray();
        otherFormat[0] = 9;
        IllegalArgumentException format = assertThrows(IllegalArgumentException.class,
                () -> Location.decode(ByteString.copyFrom(otherFormat)));
        assertTrue(format.getMessage().contains("format 9"), format.getMessage());
    }
}
