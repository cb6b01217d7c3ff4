package io.mlkv.server;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.mlkv.client.BlockHash;
import io.mlkv.client.Location;
import io.mlkv.client.proto.Chunk;
import io.mlkv.client.proto.HealthRequest;
import io.mlkv.client.proto.HealthResponse;
import io.mlkv.client.proto.LookupRequest;
import io.mlkv.client.proto.LookupResponse;
import io.mlkv.client.proto.PartitionInfo;
import io.mlkv.client.proto.PingRequest;
import io.mlkv.client.proto.PingResponse;
import io.mlkv.client.proto.ReadBatchRequest;
import io.mlkv.client.proto.ReadBatchResponse;
import io.mlkv.client.proto.ReadRequest;
import io.mlkv.client.proto.ReadResponse;
import io.mlkv.client.proto.TokenCacheGrpc;
import io.mlkv.client.proto.WriteBatchRequest;
import io.mlkv.client.proto.WriteBatchResponse;
import io.mlkv.client.proto.UnpinRequest;
import io.mlkv.client.proto.UnpinResponse;
import io.mlkv.client.proto.WriteRequest;
import io.mlkv.client.proto.WriteResponse;
import io.mlkv.server.backend.BackendException;
import io.mlkv.storage.MlkvException;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The gRPC service: checks every request, then calls {@link ChunkCache}. Bad input gets
 * INVALID_ARGUMENT (or NOT_FOUND for an unknown partition, PERMISSION_DENIED for a location of
 * another partition) with a message naming the field; storage failures get UNAVAILABLE; nothing
 * is stored from a request that fails its checks.
 */
final class TokenCacheService extends TokenCacheGrpc.TokenCacheImplBase {
    private static final Logger LOG = LoggerFactory.getLogger(TokenCacheService.class);

    private final ChunkCache cache;
    private final int maxLookupTokens;
    private final int maxBatch;
    private final long startedAt = System.currentTimeMillis();

    TokenCacheService(ChunkCache cache, int maxLookupTokens, int maxBatch) {
        this.cache = cache;
        this.maxLookupTokens = maxLookupTokens;
        this.maxBatch = maxBatch;
    }

    @Override
    public void lookup(LookupRequest req, StreamObserver<LookupResponse> out) {
        answer(out, () -> {
            Partition p = partition(req.getPartitionKey());
            int blockSize = cache.blockSize();
            boolean packed = !req.getPackedTokens().isEmpty();
            if (packed && req.getTokensCount() > 0) {
                throw invalid("give either tokens or packed_tokens, not both");
            }
            boolean byTokens = packed || req.getTokensCount() > 0;
            if (byTokens && req.getBlockHashesCount() > 0) {
                throw invalid("give either tokens or block_hashes, not both");
            }
            if (!byTokens && !req.getSalt().isEmpty()) {
                throw invalid("a salt goes with tokens; block_hashes carry theirs already");
            }
            long[] hashes;
            int[] tokens = null;
            if (byTokens) {
                tokens = lookupTokens(req);
                try {
                    hashes = p.scheme.prompt(tokens, blockSize, req.getSalt());
                } catch (IllegalArgumentException e) {
                    throw invalid(e.getMessage());
                }
            } else {
                if ((long) req.getBlockHashesCount() * blockSize > maxLookupTokens) {
                    throw invalid("too many blocks: " + req.getBlockHashesCount() + " (this server takes at most "
                            + maxLookupTokens / blockSize + " per Lookup)");
                }
                hashes = new long[req.getBlockHashesCount()];
                for (int i = 0; i < hashes.length; i++) {
                    hashes[i] = req.getBlockHashes(i);
                }
            }
            ChunkCache.LookupResult r = cache.lookup(p, hashes, tokens);
            LookupResponse.Builder b = LookupResponse.newBuilder().setCachedBlocks(r.cachedBlocks())
                    .setBloomRejections(r.bloomRejections());
            for (int i = 0; i < r.cachedBlocks(); i++) {
                b.addLocations(new Location(p.id, hashes[i]).encode());
            }
            LOG.debug("lookup {} partition={} blocks={} cached={}", req.getCompletionId(), p.key, hashes.length,
                    r.cachedBlocks());
            return b.build();
        });
    }

    /** The tokens of a Lookup, from {@code tokens} or {@code packed_tokens}, checked against the limit. */
    private int[] lookupTokens(LookupRequest req) {
        ByteString packed = req.getPackedTokens();
        if (packed.size() % 4 != 0) {
            throw invalid("packed_tokens has " + packed.size() + " bytes; 4 per token");
        }
        int count = packed.isEmpty() ? req.getTokensCount() : packed.size() / 4;
        if (count > maxLookupTokens) {
            throw invalid("too many tokens: " + count + " (this server takes at most " + maxLookupTokens + " per Lookup)");
        }
        int[] tokens = new int[count];
        if (packed.isEmpty()) {
            for (int i = 0; i < count; i++) {
                tokens[i] = req.getTokens(i);
            }
        } else {
            packed.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(tokens);
        }
        return tokens;
    }

    @Override
    public void read(ReadRequest req, StreamObserver<ReadResponse> out) {
        answer(out, () -> readOne(req));
    }

    @Override
    public void readBatch(ReadBatchRequest req, StreamObserver<ReadBatchResponse> out) {
        answer(out, () -> {
            checkBatch(req.getReadsCount());
            ReadBatchResponse.Builder b = ReadBatchResponse.newBuilder();
            for (ReadRequest r : req.getReadsList()) {
                b.addResults(readOne(r));
            }
            return b.build();
        });
    }

    private ReadResponse readOne(ReadRequest req) {
        Partition p = partition(req.getPartitionKey());
        Location loc;
        try {
            loc = Location.decode(req.getLocation());
        } catch (IllegalArgumentException e) {
            throw invalid(e.getMessage());
        }
        if (loc.partitionId() != p.id) {
            throw Status.PERMISSION_DENIED.withDescription("the location belongs to another partition than '"
                    + p.key + "'").asRuntimeException();
        }
        if (req.getExpectedTokensCount() != 0 && req.getExpectedTokensCount() != cache.blockSize()) {
            throw invalid("expected_tokens has " + req.getExpectedTokensCount() + " tokens; blocks have "
                    + cache.blockSize());
        }
        ChunkRecord r = cache.read(p, loc.blockHash());
        if (r == null) {
            return ReadResponse.newBuilder().setFound(false).build();
        }
        for (int i = 0; i < req.getExpectedTokensCount(); i++) {
            if (req.getExpectedTokens(i) != r.tokens()[i]) {
                return ReadResponse.newBuilder().setFound(false).build(); // a hash collision: not the caller's block
            }
        }
        return ReadResponse.newBuilder().setFound(true).setChunk(r.toChunk(p.key)).build();
    }

    @Override
    public void write(WriteRequest req, StreamObserver<WriteResponse> out) {
        answer(out, () -> store(validate(req.getChunk())));
    }

    @Override
    public void writeBatch(WriteBatchRequest req, StreamObserver<WriteBatchResponse> out) {
        answer(out, () -> {
            checkBatch(req.getChunksCount());
            // Check all before storing any, so a bad chunk leaves the batch unwritten.
            List<Checked> checked = new ArrayList<>(req.getChunksCount());
            for (int i = 0; i < req.getChunksCount(); i++) {
                try {
                    checked.add(validate(req.getChunks(i)));
                } catch (StatusRuntimeException e) {
                    throw e.getStatus().withDescription("chunk " + i + ": " + e.getStatus().getDescription())
                            .asRuntimeException();
                }
            }
            WriteBatchResponse.Builder b = WriteBatchResponse.newBuilder();
            // One partition per batch is the client's rule, not the protocol's: group by partition.
            java.util.Map<Partition, List<Integer>> byPartition = new java.util.LinkedHashMap<>();
            for (int i = 0; i < checked.size(); i++) {
                byPartition.computeIfAbsent(checked.get(i).partition(), k -> new ArrayList<>()).add(i);
            }
            boolean[] created = new boolean[checked.size()];
            for (java.util.Map.Entry<Partition, List<Integer>> e : byPartition.entrySet()) {
                List<ChunkRecord> records = new ArrayList<>();
                List<BlockLifetimes.Life> lives = new ArrayList<>();
                for (int i : e.getValue()) {
                    records.add(checked.get(i).record());
                    lives.add(checked.get(i).life());
                }
                boolean[] c = cache.writeAll(e.getKey(), records, lives);
                for (int j = 0; j < c.length; j++) {
                    created[e.getValue().get(j)] = c[j];
                }
            }
            for (int i = 0; i < checked.size(); i++) {
                Checked c = checked.get(i);
                b.addResults(WriteResponse.newBuilder().setLocation(new Location(c.partition().id, c.record().hash()).encode())
                        .setCreated(created[i]).build());
            }
            return b.build();
        });
    }

    /** A chunk that passed {@link #validate}: its partition and the record to store. */
    private record Checked(Partition partition, ChunkRecord record, BlockLifetimes.Life life) {
    }

    private WriteResponse store(Checked c) {
        boolean created = cache.write(c.partition(), c.record(), c.life());
        return WriteResponse.newBuilder().setLocation(new Location(c.partition().id, c.record().hash()).encode())
                .setCreated(created).build();
    }

    private Checked validate(Chunk c) {
        Partition p = partition(c.getPartitionKey());
        int blockSize = cache.blockSize();
        if (c.getTokensCount() != blockSize) {
            throw invalid("a chunk holds exactly " + blockSize + " tokens; this one has " + c.getTokensCount());
        }
        ChunkRecord r = ChunkRecord.of(p.id, c);
        long h = p.scheme.block(c.getParentHash(), r.tokens(), 0, blockSize);
        if (h != c.getHash()) {
            throw invalid("hash " + Long.toHexString(c.getHash()) + " does not match the tokens and parent_hash (expected "
                    + Long.toHexString(h) + " under the partition's hash scheme " + p.scheme + "; see docs/TOKEN-CACHE.md)");
        }
        BlockLifetimes.Life life = null;
        if (c.getTtlSeconds() != 0 || c.getPinned()) {
            if (cache.hasBackend()) {
                throw invalid("ttl_seconds and pinned need a server without a blob backend: blob copies carry no lifetime");
            }
            long ttlMillis = (c.getTtlSeconds() & 0xFFFFFFFFL) * 1000;
            life = new BlockLifetimes.Life(ttlMillis == 0 ? 0 : p.lifetimes.now() + ttlMillis, c.getPinned());
        }
        return new Checked(p, r, life);
    }

    @Override
    public void unpin(UnpinRequest req, StreamObserver<UnpinResponse> out) {
        answer(out, () -> {
            Partition p = partition(req.getPartitionKey());
            checkBatch(req.getBlockHashesCount());
            long[] hashes = new long[req.getBlockHashesCount()];
            for (int i = 0; i < hashes.length; i++) {
                hashes[i] = req.getBlockHashes(i);
            }
            return UnpinResponse.newBuilder().setUnpinned(cache.unpin(p, hashes)).build();
        });
    }

    @Override
    public void health(HealthRequest req, StreamObserver<HealthResponse> out) {
        answer(out, () -> {
            HealthResponse.Builder b = HealthResponse.newBuilder().setStatus("SERVING").setBlockSize(cache.blockSize())
                    .setBackend(cache.backendName()).setUptimeMs(System.currentTimeMillis() - startedAt);
            for (Partition p : cache.partitions()) {
                b.addPartitions(PartitionInfo.newBuilder().setPartitionKey(p.key).setBlocks(p.blocks())
                        .setBloomBits(p.bloomBits()).setBloomExpectedFpp(p.expectedFpp()).setHashScheme(p.scheme.toString())
                        .setCapacityBlocks(p.lifetimes.capacity()).setEvictions(p.lifetimes.evictions())
                        .setExpirations(p.lifetimes.expirations()).setPinnedBlocks(p.lifetimes.pinned()));
            }
            return b.build();
        });
    }

    @Override
    public void ping(PingRequest req, StreamObserver<PingResponse> out) {
        out.onNext(PingResponse.getDefaultInstance());
        out.onCompleted();
    }

    private Partition partition(String key) {
        if (key.isEmpty()) {
            throw invalid("partition_key is empty");
        }
        if (!TokenCacheServer.PARTITION_KEY.matcher(key).matches()) {
            throw invalid("partition_key is malformed: 1-64 characters of letters, digits, '.', '_' and '-'");
        }
        Partition p = cache.partition(key);
        if (p == null) {
            throw Status.NOT_FOUND.withDescription("unknown partition '" + key + "' (the server's --partitions list)")
                    .asRuntimeException();
        }
        return p;
    }

    private void checkBatch(int n) {
        if (n > maxBatch) {
            throw invalid("batch of " + n + " exceeds the limit of " + maxBatch);
        }
    }

    private static StatusRuntimeException invalid(String message) {
        return Status.INVALID_ARGUMENT.withDescription(message).asRuntimeException();
    }

    /** Runs a handler and turns every failure into a status, so no exception escapes to grpc. */
    private static <T> void answer(StreamObserver<T> out, Supplier<T> handler) {
        T value;
        try {
            value = handler.get();
        } catch (StatusRuntimeException e) {
            out.onError(e);
            return;
        } catch (ChunkCache.PartitionFullException e) {
            out.onError(Status.RESOURCE_EXHAUSTED.withDescription(e.getMessage()).asRuntimeException());
            return;
        } catch (BackendException | MlkvException e) {
            LOG.error("storage failure: {}", e.getMessage());
            out.onError(Status.UNAVAILABLE.withDescription(e.getMessage()).asRuntimeException());
            return;
        } catch (RuntimeException e) {
            LOG.error("internal error", e);
            out.onError(Status.INTERNAL.withDescription(e.toString()).asRuntimeException());
            return;
        }
        out.onNext(value);
        out.onCompleted();
    }
}
