package io.mlkv.client;

import java.nio.charset.StandardCharsets;
import java.util.List;
import net.openhft.hashing.LongHashFunction;

/**
 * Chooses which server owns a partition, by rendezvous (highest random weight) hashing: every
 * server gets a score {@code XXH3-64(server + '\n' + partitionKey)}, the highest wins. All clients
 * with the same server list agree, and adding or removing one server moves only the partitions
 * it gains or held. Immutable and thread-safe.
 */
public final class ServerRing {
    private static final LongHashFunction XXH3 = LongHashFunction.xx3(0L);
    private final List<String> servers;

    /** @param servers {@code host:port} entries, at least one, no duplicates */
    public ServerRing(List<String> servers) {
        if (servers.isEmpty()) {
            throw new IllegalArgumentException("the server list is empty");
        }
        if (servers.stream().distinct().count() != servers.size()) {
            throw new IllegalArgumentException("the server list has duplicates: " + servers);
        }
        this.servers = List.copyOf(servers);
    }

    /** Index into the server list of the partition's owner. */
    public int ownerIndex(String partitionKey) {
        int best = 0;
        long bestScore = Long.MIN_VALUE;
        for (int i = 0; i < servers.size(); i++) {
            long score = XXH3.hashBytes((servers.get(i) + '\n' + partitionKey).getBytes(StandardCharsets.UTF_8));
            // Unsigned comparison; ties (vanishingly rare) go to the earlier entry.
            if (i == 0 || Long.compareUnsigned(score, bestScore) > 0) {
                best = i;
                bestScore = score;
            }
        }
        return best;
    }

    /** The partition's owner, as given in the list. */
    public String owner(String partitionKey) {
        return servers.get(ownerIndex(partitionKey));
    }

    public List<String> servers() {
        return servers;
    }
}
