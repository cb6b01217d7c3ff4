// MLKV GPU hash table: a fixed-capacity, bucketed table of uint64 keys -> float[dim] values
// with per-slot scores, held in HBM as structure-of-arrays.
//
// Layout: capacity = numBuckets * BUCKET slots. Slot s has keys[s], scores[s], digests[s] and
// values[s * dim .. (s + 1) * dim). A key lives only in bucket hash(key) & (numBuckets - 1), in
// any of its BUCKET slots. digests[s] is one byte of the key's hash (never 0); 0 marks an empty
// slot, so one 128-byte read of a bucket's digests rejects almost every non-matching slot.
//
// Dirty marks: dirty[s] is 1 while slot s holds a value newer than the tiers below the table
// (the tiered store's write-back). The kernels that write a value set it when the call says so
// (mark / dirty_set), inserts always write it, an eviction reports it with the evicted row
// (evicted_dirty), and mlkv_export_dirty finds the marked entries for a flush. An empty slot's
// mark means nothing.
//
// Repeated keys: in an assigning upsert the last occurrence of a key wins, whatever order tiles
// run in. Either a pass before it (mlkv_dedup, mlkv_dedup_win) marks last occurrences and only
// they write, or (LRU scores) every occurrence writes, the upsert reports a repeat, and the last
// occurrences write again after it (mlkv_dedup_rewrite). See "Repeated keys in an assigning
// launch" below.
//
// Launch arguments: the kernels that every table call launches take one struct of 8-byte fields
// instead of a parameter list, so the host passes a single argument (JCuda marshals each
// argument separately, about half a microsecond apiece).
//
// Concurrency inside one launch: a slot being written holds LOCKED_KEY in keys[s] (taken with
// atomicCAS, released with a fenced store of the real key). Turning an empty slot into a used one,
// or evicting, happens under the bucket's spin lock, after re-checking that no other tile has just
// inserted the same key, so a key repeated in a batch is stored once. Calls on one table are
// serialised by the host, so a find never meets a locked slot.
//
// Every key is handled by a tile of TILE threads: each lane scans BUCKET / TILE digests (one
// 16-byte load) and copies every TILE-th element (16-byte vectors where alignment allows).

#include <cstdint>
#include <cooperative_groups.h>
#include <cuda/atomic>

namespace cg = cooperative_groups;

#define EMPTY_KEY 0x8000000000000000ULL
#define LOCKED_KEY 0x8000000000000001ULL

constexpr int BUCKET = 128;
constexpr int TILE = 8;
constexpr int DIGESTS_PER_LANE = BUCKET / TILE;  // 16: one uint4 per lane

// The place of this thread's entry in an output compacted by *count, with one atomicAdd per group
// of a warp's threads that reach the call together (warp-aggregated), not one per entry: a
// batch's misses all counted on one address otherwise queue there.
__device__ __forceinline__ int compact_slot(int* count) {
    cg::coalesced_group g = cg::coalesced_threads();
    int first = 0;
    if (g.thread_rank() == 0) first = atomicAdd(count, (int)g.size());
    return g.shfl(first, 0) + (int)g.thread_rank();
}

// What an upsert does with a key it finds, and whether it may insert one it does not.
constexpr int MODE_ASSIGN = 0;          // insert_or_assign: value = in
constexpr int MODE_FIND_OR_INSERT = 1;  // value kept, copied to out; absent: inserted from in
constexpr int MODE_ACCUM = 2;           // accum_or_assign: value += in; absent: inserted as in
constexpr int MODE_INSERT_ABSENT = 4;   // install: value and dirty mark kept; absent: inserted from in
// assign (existing keys only) has its own kernel, mlkv_assign_only.

// How scores are set.
constexpr int SCORE_LRU = 0;     // the call's clock
constexpr int SCORE_LFU = 1;     // hits counted, new entries 1
constexpr int SCORE_CUSTOM = 2;  // the caller's per-key scores

__device__ __forceinline__ uint64_t mix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

__device__ __forceinline__ uint32_t digest_of(uint64_t h) {
    uint32_t d = (uint32_t)(h >> 56);
    return d == 0 ? 1 : d;
}

// A row copied by `Width` threads, `lane` being this thread's place among them: 16-byte vectors
// where both rows allow them. A thread always copies the same elements for a given dim and
// alignment, so a copy out of a row and a copy into it by the same threads need only a barrier
// of those threads between them.
template <int Width>
__device__ __forceinline__ void lanes_copy(float* __restrict__ dst, const float* __restrict__ src, int dim, int lane) {
    if (((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) & 15) == 0 && (dim & 3) == 0) {
        float4* d4 = reinterpret_cast<float4*>(dst);
        const float4* s4 = reinterpret_cast<const float4*>(src);
        for (int i = lane; i < (dim >> 2); i += Width) d4[i] = s4[i];
    } else {
        for (int i = lane; i < dim; i += Width) dst[i] = src[i];
    }
}

template <typename Tile>
__device__ __forceinline__ void tile_copy(const Tile& tile, float* __restrict__ dst,
                                          const float* __restrict__ src, int dim) {
    lanes_copy<TILE>(dst, src, dim, tile.thread_rank());
}

template <typename Tile>
__device__ __forceinline__ void tile_add(const Tile& tile, float* dst, const float* src, int dim) {
    for (int i = tile.thread_rank(); i < dim; i += TILE) dst[i] += src[i];
}

// dst[i] += src[i] for i < dim with atomic adds, for rows other tiles may add to at the same time.
// On sm_90 and later, 16-byte vector atomics where both rows allow them: a hot key's occurrences
// queue at L2 for each atomic on its row's lines, so four elements per atomic shorten the queue
// (each element is added atomically; the four need not land together).
template <typename Tile>
__device__ __forceinline__ void tile_atomic_add(const Tile& tile, float* dst, const float* src, int dim) {
#if __CUDA_ARCH__ >= 900
    if ((dim & 3) == 0 && ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) & 15) == 0) {
        for (int i = tile.thread_rank() * 4; i < dim; i += TILE * 4) {
            atomicAdd(reinterpret_cast<float4*>(dst + i), *reinterpret_cast<const float4*>(src + i));
        }
        return;
    }
#endif
    for (int i = tile.thread_rank(); i < dim; i += TILE) atomicAdd(dst + i, src[i]);
}

// Asks L2 for a row this tile will read later (one lane per 128-byte line, no registers held),
// so that the read overlaps the probe instead of following it.
template <typename Tile>
__device__ __forceinline__ void tile_prefetch(const Tile& tile, const float* row, int dim) {
    const char* bytes = reinterpret_cast<const char*>(row);
    int size = dim * 4;
    for (int off = tile.thread_rank() * 128; off < size; off += TILE * 128) {
        asm volatile("prefetch.global.L2 [%0];" ::"l"(bytes + off));
    }
    if (tile.thread_rank() == TILE - 1) asm volatile("prefetch.global.L2 [%0];" ::"l"(bytes + size - 1));
}

// Looks for `key` among the slots of bucket `base` whose digest is `digest`. Returns the slot
// (the same in every lane) or -1. Sets *locked_seen when a candidate slot was locked, in which
// case the caller must look again (the slot may hold `key` once unlocked).
template <typename Tile>
__device__ __forceinline__ int64_t tile_find(const Tile& tile, const uint64_t* keys, const uint8_t* digests,
                                             uint64_t base, uint64_t key, uint32_t digest, bool* locked_seen) {
    int lane = tile.thread_rank();
    uint4 d = __ldcg(reinterpret_cast<const uint4*>(digests + base) + lane);
    uint32_t pattern = digest * 0x01010101u;
    uint32_t words[4] = {d.x, d.y, d.z, d.w};
    int64_t found = -1;
    bool locked = false;
#pragma unroll
    for (int w = 0; w < 4; w++) {
        uint32_t m = __vcmpeq4(words[w], pattern);
        while (m != 0) {
            int byte = (__ffs(m) - 1) >> 3;
            m &= ~(0xffu << (byte * 8));
            uint64_t slot = base + lane * DIGESTS_PER_LANE + w * 4 + byte;
            uint64_t k = *reinterpret_cast<volatile const uint64_t*>(keys + slot);
            if (k == key) found = (int64_t)slot;
            else if (k == LOCKED_KEY) locked = true;
        }
    }
    unsigned hit = tile.ballot(found >= 0);
    *locked_seen = tile.any(locked);
    if (hit == 0) return -1;
    return tile.shfl(found, __ffs(hit) - 1);
}

// First empty slot of the bucket, or -1. Caller holds the bucket lock.
template <typename Tile>
__device__ __forceinline__ int64_t tile_empty_slot(const Tile& tile, const uint64_t* keys,
                                                   const uint8_t* digests, uint64_t base) {
    int lane = tile.thread_rank();
    uint4 d = __ldcg(reinterpret_cast<const uint4*>(digests + base) + lane);
    uint32_t words[4] = {d.x, d.y, d.z, d.w};
    int64_t found = -1;
#pragma unroll
    for (int w = 0; w < 4 && found < 0; w++) {
        uint32_t m = __vcmpeq4(words[w], 0u);
        while (m != 0 && found < 0) {
            int byte = (__ffs(m) - 1) >> 3;
            m &= ~(0xffu << (byte * 8));
            uint64_t slot = base + lane * DIGESTS_PER_LANE + w * 4 + byte;
            if (*reinterpret_cast<volatile const uint64_t*>(keys + slot) == EMPTY_KEY) found = (int64_t)slot;
        }
    }
    unsigned hit = tile.ballot(found >= 0);
    if (hit == 0) return -1;
    return tile.shfl(found, __ffs(hit) - 1);
}

// Slot with the lowest score in the bucket (lowest index on ties). Caller holds the bucket lock.
template <typename Tile>
__device__ __forceinline__ int64_t tile_min_score_slot(const Tile& tile, const uint64_t* scores, uint64_t base,
                                                       uint64_t* min_score) {
    int lane = tile.thread_rank();
    uint64_t best = ~0ULL;
    int64_t best_slot = -1;
    for (int i = 0; i < DIGESTS_PER_LANE; i++) {
        uint64_t slot = base + i * TILE + lane;
        uint64_t s = *reinterpret_cast<volatile const uint64_t*>(scores + slot);
        if (s < best || (s == best && (int64_t)slot < best_slot)) {
            best = s;
            best_slot = (int64_t)slot;
        }
    }
    for (int off = TILE / 2; off > 0; off >>= 1) {
        uint64_t os = tile.shfl_down(best, off);
        int64_t oslot = tile.shfl_down(best_slot, off);
        if (os < best || (os == best && oslot < best_slot)) {
            best = os;
            best_slot = oslot;
        }
    }
    *min_score = tile.shfl(best, 0);
    return tile.shfl(best_slot, 0);
}

// Acquire/release fences at device scope (fence.acq_rel.gpu), much cheaper than
// __threadfence()'s sequentially consistent membar.gl, and all the locks below need.
__device__ __forceinline__ void fence_acq_rel() {
    cuda::atomic_thread_fence(cuda::memory_order_acq_rel, cuda::thread_scope_device);
}

__device__ __forceinline__ void lock_bucket(int* lock) {
    while (atomicCAS(lock, 0, 1) != 0) {
    }
    fence_acq_rel();
}

__device__ __forceinline__ void unlock_bucket(int* lock) {
    fence_acq_rel();
    atomicExch(lock, 0);
}

// Releases a slot lock: the value writes before it become visible before the key does.
__device__ __forceinline__ void publish_key(uint64_t* slot_key, uint64_t key) {
    fence_acq_rel();
    atomicExch(reinterpret_cast<unsigned long long*>(slot_key), (unsigned long long)key);
}

__device__ __forceinline__ uint64_t new_score(int score_mode, uint64_t clock, const uint64_t* in_scores, long i) {
    if (score_mode == SCORE_LRU) return clock;
    return score_mode == SCORE_LFU ? 1 : in_scores[i];
}

__device__ __forceinline__ uint64_t hit_score(int score_mode, uint64_t old, uint64_t clock, const uint64_t* in_scores,
                                              long i) {
    if (score_mode == SCORE_LRU) return clock;
    return score_mode == SCORE_LFU ? old + 1 : in_scores[i];
}

// Frequency admission (HbmAdmission.FREQUENCY): a count-min sketch of 4-bit counters, 16 to a
// 64-bit word, four rows, laid out and hashed exactly as io.mlkv.storage.policy.FrequencySketch
// (the host twin; a test compares the two word for word). mlkv_sketch_add counts each key of a
// lookup; an install screened by it replaces a full bucket's victim only if the sketch has seen
// the newcomer more often than the victim. The host halves every counter (mlkv_sketch_halve)
// after ten accesses per table entry, so old popularity fades.
__device__ __forceinline__ uint64_t sketch_seed(int row) {
    switch (row & 3) {
        case 0: return 0x9E3779B97F4A7C15ULL;
        case 1: return 0xC2B2AE3D27D4EB4FULL;
        case 2: return 0x165667B19E3779F9ULL;
        default: return 0xD6E8FEB86659FD93ULL;
    }
}

__device__ __forceinline__ uint64_t sketch_spread(uint64_t key) {
    uint64_t x = key * 0x9E3779B97F4A7C15ULL;
    return x ^ (x >> 29);
}

__device__ __forceinline__ uint64_t sketch_word(uint64_t h, int row, uint64_t mask) {
    uint64_t x = (h ^ sketch_seed(row)) * sketch_seed(row + 1);
    return (uint64_t)(uint32_t)(x >> 40) & mask;
}

__device__ __forceinline__ int sketch_shift(uint64_t h, int row) {
    return ((((int)(h >> (row * 4))) & 3) + (row << 2)) << 2;
}

// The estimated recent access count of `key`, 0 to 15.
__device__ __forceinline__ int sketch_frequency(const uint64_t* sketch, uint64_t mask, uint64_t key) {
    uint64_t h = sketch_spread(key);
    int f = 15;
#pragma unroll
    for (int row = 0; row < 4; row++) {
        uint64_t w = __ldcg(sketch + sketch_word(h, row, mask));
        f = min(f, (int)((w >> sketch_shift(h, row)) & 0xF));
    }
    return f;
}

// Counts one access to each of in_keys[0, n), one thread per key; a saturated counter (15) stays.
extern "C" __global__ void mlkv_sketch_add(uint64_t* sketch, uint64_t mask, const uint64_t* __restrict__ in_keys,
                                           long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint64_t h = sketch_spread(in_keys[i]);
#pragma unroll
    for (int row = 0; row < 4; row++) {
        unsigned long long* w = reinterpret_cast<unsigned long long*>(sketch + sketch_word(h, row, mask));
        int shift = sketch_shift(h, row);
        unsigned long long old = *reinterpret_cast<volatile unsigned long long*>(w);
        while (((old >> shift) & 0xF) != 0xF) {
            unsigned long long seen = atomicCAS(w, old, old + (1ULL << shift));
            if (seen == old) break;
            old = seen;
        }
    }
}

// Halves every counter of the sketch's `words` words.
extern "C" __global__ void mlkv_sketch_halve(uint64_t* sketch, uint64_t words) {
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < words; i += (uint64_t)gridDim.x * blockDim.x) {
        sketch[i] = (sketch[i] >> 1) & 0x7777777777777777ULL;
    }
}

// touch: -1 leaves scores alone (a plain find); SCORE_LRU sets each found key's score to `clock`,
// SCORE_LFU adds one per occurrence, so that eviction follows reads as well as writes.
__device__ __forceinline__ void find_body(const uint64_t* __restrict__ keys, const uint8_t* __restrict__ digests,
                                          const float* __restrict__ values, uint64_t bucket_mask, int dim,
                                          const uint64_t* __restrict__ in_keys, long n, float* __restrict__ out,
                                          uint8_t* __restrict__ found, uint64_t* __restrict__ out_scores,
                                          uint64_t* scores, uint64_t* missed_keys,
                                          int* missed_index, int* missed_count, int touch, uint64_t clock,
                                          const int* __restrict__ out_index) {
    auto tile = cg::tiled_partition<TILE>(cg::this_thread_block());
    long i = (long)(blockIdx.x * (blockDim.x / TILE) + threadIdx.x / TILE);
    if (i >= n) return;
    uint64_t key = in_keys[i];
    // Where key i's results go: row and byte out_index[i] (a sharded table's batch order), or i.
    long o = out_index != nullptr ? (long)out_index[i] : i;
    uint64_t h = mix64(key);
    uint64_t base = (h & bucket_mask) * BUCKET;
    bool locked;
    int64_t slot = (key == EMPTY_KEY || key == LOCKED_KEY) ? -1 : tile_find(tile, keys, digests, base, key, digest_of(h), &locked);
    if (slot >= 0) {
        tile_copy(tile, out + (size_t)o * dim, values + (size_t)slot * dim, dim);
    }
    if (tile.thread_rank() == 0) {
        if (found != nullptr) found[o] = slot >= 0;
        if (out_scores != nullptr && slot >= 0) out_scores[o] = scores[slot];
        if (slot >= 0 && touch == SCORE_LRU) {
            // A hot key's occurrences all write the same score: only the first of them stores it.
            if (scores[slot] != clock) scores[slot] = clock;
        } else if (slot >= 0 && touch == SCORE_LFU) {
            atomicAdd(reinterpret_cast<unsigned long long*>(scores + slot), 1ULL);
        }
        if (slot < 0 && missed_keys != nullptr) {
            int m = compact_slot(missed_count);
            missed_keys[m] = key;
            missed_index[m] = (int)i;
        }
    }
}

struct FindArgs {
    const uint64_t* keys;
    const uint8_t* digests;
    const float* values;
    uint64_t bucket_mask;
    int64_t dim;
    const uint64_t* in_keys;
    int64_t n;
    float* out;
    uint8_t* found;
    uint64_t* out_scores;
    uint64_t* scores;
    uint64_t* missed_keys;
    int* missed_index;
    int* missed_count;
    int64_t touch;
    uint64_t clock;
    const int* out_index;  // null: key i's results at i
};
static_assert(sizeof(FindArgs) == 17 * 8, "FindArgs: one 8-byte field per argument");

extern "C" __global__ void __launch_bounds__(256, 8) mlkv_find(const FindArgs a) {
    find_body(a.keys, a.digests, a.values, a.bucket_mask, (int)a.dim, a.in_keys, (long)a.n, a.out, a.found,
              a.out_scores, a.scores, a.missed_keys, a.missed_index, a.missed_count, (int)a.touch, a.clock,
              a.out_index);
}

struct ContainsArgs {
    const uint64_t* keys;
    const uint8_t* digests;
    uint64_t bucket_mask;
    const uint64_t* in_keys;
    int64_t n;
    uint8_t* found;
};
static_assert(sizeof(ContainsArgs) == 6 * 8, "ContainsArgs: one 8-byte field per argument");

extern "C" __global__ void mlkv_contains(const ContainsArgs a) {
    const uint64_t* __restrict__ keys = a.keys;
    const uint8_t* __restrict__ digests = a.digests;
    uint64_t bucket_mask = a.bucket_mask;
    const uint64_t* __restrict__ in_keys = a.in_keys;
    long n = (long)a.n;
    uint8_t* __restrict__ found = a.found;
    auto tile = cg::tiled_partition<TILE>(cg::this_thread_block());
    long i = (long)(blockIdx.x * (blockDim.x / TILE) + threadIdx.x / TILE);
    if (i >= n) return;
    uint64_t key = in_keys[i];
    uint64_t h = mix64(key);
    bool locked;
    int64_t slot = (key == EMPTY_KEY || key == LOCKED_KEY) ? -1
            : tile_find(tile, keys, digests, (h & bucket_mask) * BUCKET, key, digest_of(h), &locked);
    if (tile.thread_rank() == 0) found[i] = slot >= 0;
}

// One key of an upsert, by one tile. Returns 1 if the key took an empty slot (the table grew).
template <typename Tile>
__device__ __forceinline__ int upsert_one(const Tile& tile, long i, uint64_t* keys, uint64_t* scores,
                                          uint8_t* digests, float* values, const int* __restrict__ dedup_slot,
                                          const int* dedup_win, int* bucket_locks,
                                          uint64_t bucket_mask, int dim, int mode, int score_mode,
                                          uint64_t clock, const uint64_t* __restrict__ in_keys,
                                          const float* __restrict__ in_values, const uint64_t* __restrict__ in_scores,
                                          float* __restrict__ out, uint8_t* __restrict__ found_out,
                                          uint64_t* evicted_keys, float* evicted_values, uint64_t* evicted_scores,
                                          unsigned long long* evicted_count, unsigned long long* rejected_count,
                                          unsigned long long* dup_seen, uint8_t* dirty, int mark,
                                          uint8_t* evicted_dirty, const uint64_t* sketch, uint64_t sketch_mask) {
    int lane = tile.thread_rank();
    uint64_t key = in_keys[i];
    if (key == EMPTY_KEY || key == LOCKED_KEY) return 0;  // refused on the host; never corrupt the table
    uint64_t h = mix64(key);
    uint64_t b = h & bucket_mask;
    uint64_t base = b * BUCKET;
    uint32_t digest = digest_of(h);
    const float* src = in_values == nullptr ? nullptr : in_values + (size_t)i * dim;
    // Assign and accumulate read the row whether the key is found or inserted: ask for it now,
    // so that its read overlaps the probe.
    if (src != nullptr && (mode == MODE_ASSIGN || mode == MODE_ACCUM)) tile_prefetch(tile, src, dim);
    // The duplicate mark is loaded before the probe and used after it. Every lane reads the same
    // word, which nothing writes during the launch, so the tile takes one branch.
    int p = dedup_slot != nullptr ? dedup_slot[i] : 0;
    bool locked;
    int64_t slot = tile_find(tile, keys, digests, base, key, digest, &locked);
    if (dedup_slot != nullptr && dedup_win[p] != (int)i) {
        // A later occurrence of this key writes; this one only reports presence.
        if (lane == 0 && found_out != nullptr) found_out[i] = slot >= 0;
        return 0;
    }
    for (bool first = true;; first = false) {
        if (!first) slot = tile_find(tile, keys, digests, base, key, digest, &locked);
        if (slot >= 0) {
            // Present: lock the slot by swapping its key for LOCKED_KEY (an eviction may race it).
            int ok = 0;
            if (lane == 0) {
                ok = atomicCAS(reinterpret_cast<unsigned long long*>(keys + slot), key, LOCKED_KEY) == key;
            }
            if (!tile.shfl(ok, 0)) continue;
            // Modes that read the value, and the repeat detection that reads the score, must see
            // the previous holder's writes.
            if (mode == MODE_ACCUM || mode == MODE_FIND_OR_INSERT || dup_seen != nullptr) fence_acq_rel();
            float* v = values + (size_t)slot * dim;
            // An install leaves a present entry as it is: the table's copy is never older than
            // the row a tier below offers.
            if (mode == MODE_INSERT_ABSENT) {
            } else if (mode == MODE_ASSIGN) tile_copy(tile, v, src, dim);
            else if (mode == MODE_ACCUM) tile_add(tile, v, src, dim);
            else if (mode == MODE_FIND_OR_INSERT) tile_copy(tile, out + (size_t)i * dim, v, dim);
            tile.sync();
            if (lane == 0) {
                if (mark && (mode == MODE_ASSIGN || mode == MODE_ACCUM)) dirty[slot] = 1;
                uint64_t old = dup_seen != nullptr ? *reinterpret_cast<volatile uint64_t*>(scores + slot) : scores[slot];
                // Detection (LRU only): this call's clock means another occurrence wrote first.
                if (dup_seen != nullptr && old == clock) *dup_seen = 1;
                scores[slot] = hit_score(score_mode, old, clock, in_scores, i);
                if (found_out != nullptr) found_out[i] = 1;
                publish_key(keys + slot, key);
            }
            return 0;
        }
        if (locked) continue;  // a candidate was being written; it may be this key
        // Absent: take the bucket lock and look again, since a duplicate may have just inserted it.
        if (lane == 0) lock_bucket(bucket_locks + b);
        tile.sync();
        slot = tile_find(tile, keys, digests, base, key, digest, &locked);
        if (slot >= 0 || locked) {
            tile.sync();
            if (lane == 0) unlock_bucket(bucket_locks + b);
            continue;
        }
        uint64_t score = new_score(score_mode, clock, in_scores, i);
        slot = tile_empty_slot(tile, keys, digests, base);
        int grew = slot >= 0;
        if (grew) {
            if (lane == 0) keys[slot] = LOCKED_KEY;
        } else {
            uint64_t min_score;
            slot = tile_min_score_slot(tile, scores, base, &min_score);
            bool reject = score_mode == SCORE_CUSTOM && score < min_score;
            if (!reject && sketch != nullptr) {
                // Frequency admission: the newcomer must have been seen more often than the
                // victim. A victim being written right now (locked) is not compared.
                int refused = 0;
                if (lane == 0) {
                    uint64_t victim = *reinterpret_cast<volatile uint64_t*>(keys + slot);
                    refused = victim != LOCKED_KEY && victim != EMPTY_KEY
                            && sketch_frequency(sketch, sketch_mask, key) <= sketch_frequency(sketch, sketch_mask, victim);
                }
                reject = tile.shfl(refused, 0) != 0;
            }
            if (reject) {
                tile.sync();
                if (lane == 0) {
                    unlock_bucket(bucket_locks + b);
                    atomicAdd(rejected_count, 1ULL);
                    if (found_out != nullptr) found_out[i] = 0;
                }
                return 0;
            }
            // Lock the victim; an update in flight holds it briefly, so wait for it.
            uint64_t victim = 0;
            if (lane == 0) {
                while (true) {
                    victim = *reinterpret_cast<volatile uint64_t*>(keys + slot);
                    if (victim != LOCKED_KEY &&
                        atomicCAS(reinterpret_cast<unsigned long long*>(keys + slot), victim, LOCKED_KEY) == victim) {
                        break;
                    }
                }
            }
            victim = tile.shfl(victim, 0);
            fence_acq_rel();
            // An entry written by this call evicted by it again: a repeated key may have been
            // inserted twice, so the repair must look.
            if (lane == 0 && dup_seen != nullptr && scores[slot] == clock) *dup_seen = 1;
            unsigned long long e = 0;
            if (lane == 0) e = atomicAdd(evicted_count, 1ULL);
            e = tile.shfl(e, 0);
            if (evicted_keys != nullptr) {
                tile_copy(tile, evicted_values + (size_t)e * dim, values + (size_t)slot * dim, dim);
                if (lane == 0) {
                    evicted_keys[e] = victim;
                    if (evicted_scores != nullptr) evicted_scores[e] = scores[slot];
                    if (evicted_dirty != nullptr) evicted_dirty[e] = dirty[slot];
                }
            }
            tile.sync();
        }
        if (lane == 0) {
            digests[slot] = (uint8_t)digest;
            dirty[slot] = (uint8_t)mark;
            unlock_bucket(bucket_locks + b);
        }
        float* v = values + (size_t)slot * dim;
        tile_copy(tile, v, src, dim);
        if (mode == MODE_FIND_OR_INSERT) tile_copy(tile, out + (size_t)i * dim, src, dim);
        tile.sync();
        if (lane == 0) {
            scores[slot] = score;
            if (found_out != nullptr) found_out[i] = 0;
            publish_key(keys + slot, key);
        }
        return grew;
    }
}

// insert_or_assign, insert_and_evict, find_or_insert, accum_or_assign and assign in one kernel.
// evicted_* may be null (victims are dropped and only counted). rejected counts keys not stored
// because their custom score was below the full bucket's lowest. Growth is summed per block in
// shared memory: one global atomic per block instead of one per new key on a single address.
__device__ __forceinline__ void
upsert_body(uint64_t* keys, uint64_t* scores, uint8_t* digests, float* values, const int* dedup_slot,
            const int* dedup_win, int* bucket_locks, unsigned long long* size, uint64_t bucket_mask, int dim, int mode, int score_mode,
            uint64_t clock, const uint64_t* __restrict__ in_keys, const float* __restrict__ in_values,
            const uint64_t* __restrict__ in_scores, long n, float* __restrict__ out, uint8_t* __restrict__ found_out,
            uint64_t* evicted_keys, float* evicted_values, uint64_t* evicted_scores,
            unsigned long long* evicted_count, unsigned long long* rejected_count, unsigned long long* dup_seen,
            uint8_t* dirty, int mark, uint8_t* evicted_dirty, const uint64_t* sketch, uint64_t sketch_mask) {
    __shared__ unsigned long long grown;
    if (threadIdx.x == 0) grown = 0;
    __syncthreads();
    auto tile = cg::tiled_partition<TILE>(cg::this_thread_block());
    long i = (long)(blockIdx.x * (blockDim.x / TILE) + threadIdx.x / TILE);
    if (i < n) {
        int g = upsert_one(tile, i, keys, scores, digests, values, dedup_slot, dedup_win, bucket_locks,
                           bucket_mask, dim, mode,
                           score_mode, clock, in_keys, in_values, in_scores, out, found_out, evicted_keys,
                           evicted_values, evicted_scores, evicted_count, rejected_count, dup_seen, dirty, mark,
                           evicted_dirty, sketch, sketch_mask);
        if (g && tile.thread_rank() == 0) atomicAdd(&grown, 1ULL);
    }
    __syncthreads();
    if (threadIdx.x == 0 && grown != 0) atomicAdd(size, grown);
}

// What the marking pass left for an assigning launch (mlkv_upsert, mlkv_assign_only).
struct RepeatMarks {
    const int* slot;  // null: no marking pass (unique keys, repair after, or no need)
    const int* win;
    const uint64_t* flag;
    uint64_t epoch;
};

// The duplicate marks of a launch after the marking pass: null (every position writes) unless
// the pass of this launch (its epoch) found a repeated key.
__device__ __forceinline__ const int* marks_of(const RepeatMarks& m) {
    return m.slot != nullptr && *m.flag == m.epoch ? m.slot : nullptr;
}

struct UpsertArgs {
    uint64_t* keys;
    uint64_t* scores;
    uint8_t* digests;
    float* values;
    RepeatMarks marks;
    int* bucket_locks;
    unsigned long long* size;
    uint64_t bucket_mask;
    int64_t dim;
    int64_t mode;
    int64_t score_mode;
    uint64_t clock;
    const uint64_t* in_keys;
    const float* in_values;
    const uint64_t* in_scores;
    int64_t n;
    float* out;
    uint8_t* found_out;
    uint64_t* evicted_keys;
    float* evicted_values;
    uint64_t* evicted_scores;
    unsigned long long* evicted_count;
    unsigned long long* rejected_count;
    unsigned long long* dup_seen;  // not null: LRU scores, no marks; set to 1 when a key repeats
    uint8_t* dirty;                // the table's dirty marks
    int64_t mark;                  // 1: entries this call writes become dirty; 0: inserts are clean
    uint8_t* evicted_dirty;        // may be null: the dirty mark of each evicted entry
    const uint64_t* sketch;        // not null: frequency admission of clean installs (see sketch_frequency)
    uint64_t sketch_mask;          // the sketch's words - 1
};
static_assert(sizeof(UpsertArgs) == 32 * 8, "UpsertArgs: one 8-byte field per argument");

extern "C" __global__ void __launch_bounds__(256, 8) mlkv_upsert(const UpsertArgs a) {
    upsert_body(a.keys, a.scores, a.digests, a.values, marks_of(a.marks), a.marks.win, a.bucket_locks, a.size,
                a.bucket_mask, (int)a.dim, (int)a.mode, (int)a.score_mode, a.clock, a.in_keys, a.in_values,
                a.in_scores, (long)a.n, a.out, a.found_out, a.evicted_keys, a.evicted_values, a.evicted_scores,
                a.evicted_count, a.rejected_count, a.dup_seen, a.dirty, (int)a.mark, a.evicted_dirty, a.sketch,
                a.sketch_mask);
}

// Installs grouped by bucket. An install (MODE_INSERT_ABSENT) of a batch with many keys per bucket
// (a 1M-key read's half a million misses into a full 1M-entry table put about sixty on each bucket)
// spends its time queued at bucket locks in mlkv_upsert: every newcomer takes its bucket's lock and
// scans the bucket's 128 scores for a victim, one after another. Grouped instead, one warp per
// bucket installs that bucket's newcomers in turn with the bucket's keys and scores held in
// registers (four slots a lane: slot base + lane + 32 * r), without locks: calls on one table are
// serialised on its stream, so the warp is its bucket's only writer during the launch.
// mlkv_group_count ranks each key within its bucket, mlkv_shard_scan (one shard) turns the counts
// into each bucket's first position, mlkv_group_scatter orders the batch by bucket, then
// mlkv_install_grouped. The outcome is mlkv_upsert's: a present key keeps its value and dirty mark
// and gets a hit score; an absent one takes the bucket's first empty slot, else evicts the lowest
// score (lowest slot on ties). Frequency screening and custom scores stay with mlkv_upsert.
constexpr int GROUP_WARP = 32;
constexpr int GROUP_SLOTS = BUCKET / GROUP_WARP;  // 4 a lane

extern "C" __global__ void mlkv_group_count(const uint64_t* __restrict__ in_keys, long n, uint64_t bucket_mask,
                                            unsigned int* __restrict__ counts, int* __restrict__ rank) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) rank[i] = (int)atomicAdd(counts + (mix64(in_keys[i]) & bucket_mask), 1u);
}

extern "C" __global__ void mlkv_group_scatter(const uint64_t* __restrict__ in_keys, long n, uint64_t bucket_mask,
                                              const unsigned int* __restrict__ starts, const int* __restrict__ rank,
                                              int* __restrict__ order) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) order[starts[mix64(in_keys[i]) & bucket_mask] + rank[i]] = (int)i;
}

__device__ __forceinline__ uint64_t group_pick(const uint64_t (&v)[GROUP_SLOTS], int r) {
    return r == 0 ? v[0] : r == 1 ? v[1] : r == 2 ? v[2] : v[3];
}

__device__ __forceinline__ void group_set(uint64_t (&v)[GROUP_SLOTS], int r, uint64_t x) {
#pragma unroll
    for (int q = 0; q < GROUP_SLOTS; q++) {
        if (q == r) v[q] = x;
    }
}

// One newcomer's place in a bucket held as k/s: present (its slot, *evicts false, *present true), an
// empty slot, or the lowest-scored victim (*evicts true). Returns the bucket slot (0..127), the
// same in every lane; updates k and s as the install will (the owner lane's register).
__device__ __forceinline__ int group_place(uint64_t (&k)[GROUP_SLOTS], uint64_t (&s)[GROUP_SLOTS], uint64_t key,
                                           int lane, int score_mode, uint64_t clock, bool* present, bool* evicts) {
    const unsigned full = 0xffffffffu;
    int at = -1;
    int empty = -1;
    uint64_t best = ~0ULL;
    int best_slot = BUCKET;
#pragma unroll
    for (int r = 0; r < GROUP_SLOTS; r++) {
        int slot = lane + GROUP_WARP * r;
        if (k[r] == key) at = slot;
        if (k[r] == EMPTY_KEY && empty < 0) empty = slot;
        if (s[r] < best) {  // r ascending: on ties the lower slot stays
            best = s[r];
            best_slot = slot;
        }
    }
    unsigned hit = __ballot_sync(full, at >= 0);
    if (hit != 0) {
        int slot = __shfl_sync(full, at, __ffs(hit) - 1);
        if (lane == (slot & (GROUP_WARP - 1))) {
            int r = slot / GROUP_WARP;
            group_set(s, r, hit_score(score_mode, group_pick(s, r), clock, nullptr, 0));
        }
        *present = true;
        *evicts = false;
        return slot;
    }
    *present = false;
    // The lowest empty slot, else the lowest (score, slot): both reduced over the warp.
    int e = empty < 0 ? BUCKET : empty;
    for (int off = GROUP_WARP / 2; off > 0; off >>= 1) {
        e = min(e, __shfl_xor_sync(full, e, off));
        uint64_t ob = __shfl_xor_sync(full, best, off);
        int os = __shfl_xor_sync(full, best_slot, off);
        if (ob < best || (ob == best && os < best_slot)) {
            best = ob;
            best_slot = os;
        }
    }
    int slot = e < BUCKET ? e : best_slot;
    *evicts = e >= BUCKET;
    if (lane == (slot & (GROUP_WARP - 1))) {
        int r = slot / GROUP_WARP;
        group_set(k, r, key);
        group_set(s, r, new_score(score_mode, clock, nullptr, 0));
    }
    return slot;
}

struct GroupedInstallArgs {
    uint64_t* keys;
    uint64_t* scores;
    uint8_t* digests;
    float* values;
    uint8_t* dirty;
    unsigned long long* size;
    uint64_t buckets;
    int64_t dim;
    int64_t score_mode;            // LRU or LFU
    uint64_t clock;
    const uint64_t* in_keys;
    const float* in_values;
    const int* order;              // batch positions grouped by bucket (mlkv_group_scatter)
    const unsigned int* starts;    // each bucket's first place in order (mlkv_shard_scan)
    const unsigned int* total;     // the number of keys grouped (mlkv_shard_scan's shard_start[1])
    int64_t mark;                  // the dirty mark of inserted entries
    uint8_t* found_out;            // may be null: 1 for a key present before, 0 for one inserted
    uint64_t* evicted_keys;        // may be null: victims are then dropped and only counted
    float* evicted_values;
    uint64_t* evicted_scores;      // may be null
    uint8_t* evicted_dirty;        // may be null
    unsigned long long* evicted_count;
};
static_assert(sizeof(GroupedInstallArgs) == 22 * 8, "GroupedInstallArgs: one 8-byte field per argument");

// One warp per bucket; see "Installs grouped by bucket" above. Where evicted entries are kept, a
// first pass over the newcomers (registers only) counts the bucket's evictions, so that one atomic
// reserves their places in the outputs.
extern "C" __global__ void __launch_bounds__(256) mlkv_install_grouped(const GroupedInstallArgs a) {
    const unsigned full = 0xffffffffu;
    long b = ((long)blockIdx.x * blockDim.x + threadIdx.x) / GROUP_WARP;
    if (b >= (long)a.buckets) return;  // the whole warp
    int lane = threadIdx.x & (GROUP_WARP - 1);
    unsigned int from = a.starts[b];
    unsigned int to = b + 1 < (long)a.buckets ? a.starts[b + 1] : *a.total;
    if (from == to) return;
    int dim = (int)a.dim;
    int score_mode = (int)a.score_mode;
    uint64_t base = (uint64_t)b * BUCKET;
    uint64_t k[GROUP_SLOTS];
    uint64_t s[GROUP_SLOTS];
#pragma unroll
    for (int r = 0; r < GROUP_SLOTS; r++) {
        k[r] = a.keys[base + lane + GROUP_WARP * r];
        s[r] = a.scores[base + lane + GROUP_WARP * r];
    }
    unsigned long long first_evicted = 0;
    if (a.evicted_keys != nullptr) {
        uint64_t kk[GROUP_SLOTS];
        uint64_t ss[GROUP_SLOTS];
#pragma unroll
        for (int r = 0; r < GROUP_SLOTS; r++) {
            kk[r] = k[r];
            ss[r] = s[r];
        }
        unsigned int evictions = 0;
        for (unsigned int c = from; c < to; c += GROUP_WARP) {
            uint64_t mine = c + lane < to ? a.in_keys[a.order[c + lane]] : EMPTY_KEY;
            int m = (int)min(to - c, (unsigned int)GROUP_WARP);
            for (int t = 0; t < m; t++) {
                uint64_t key = __shfl_sync(full, mine, t);
                if (key == EMPTY_KEY || key == LOCKED_KEY) continue;  // refused on the host; never stored
                bool present, evicts;
                group_place(kk, ss, key, lane, score_mode, a.clock, &present, &evicts);
                evictions += evicts ? 1 : 0;
            }
        }
        if (lane == 0 && evictions != 0) first_evicted = atomicAdd(a.evicted_count, (unsigned long long)evictions);
        first_evicted = __shfl_sync(full, first_evicted, 0);
    }
    unsigned int grew = 0;
    unsigned int evicted = 0;
    for (unsigned int c = from; c < to; c += GROUP_WARP) {
        int mine_i = c + lane < to ? a.order[c + lane] : 0;
        uint64_t mine = c + lane < to ? a.in_keys[mine_i] : EMPTY_KEY;
        int m = (int)min(to - c, (unsigned int)GROUP_WARP);
        for (int t = 0; t < m; t++) {
            uint64_t key = __shfl_sync(full, mine, t);
            long i = __shfl_sync(full, mine_i, t);
            if (key == EMPTY_KEY || key == LOCKED_KEY) continue;
            // The victim's key and score, read before group_place overwrites them in the registers.
            bool present, evicts;
            uint64_t old_k[GROUP_SLOTS];
            uint64_t old_s[GROUP_SLOTS];
#pragma unroll
            for (int r = 0; r < GROUP_SLOTS; r++) {
                old_k[r] = k[r];
                old_s[r] = s[r];
            }
            int at = group_place(k, s, key, lane, score_mode, a.clock, &present, &evicts);
            uint64_t slot = base + at;
            int owner = at & (GROUP_WARP - 1);
            int r = at / GROUP_WARP;
            if (present) {
                if (lane == owner) a.scores[slot] = group_pick(s, r);
                if (lane == 0 && a.found_out != nullptr) a.found_out[i] = 1;
                continue;
            }
            if (evicts) {
                uint64_t victim = __shfl_sync(full, group_pick(old_k, r), owner);
                uint64_t victim_score = __shfl_sync(full, group_pick(old_s, r), owner);
                if (a.evicted_keys != nullptr) {
                    unsigned long long e = first_evicted + evicted;
                    lanes_copy<GROUP_WARP>(a.evicted_values + (size_t)e * dim, a.values + (size_t)slot * dim, dim, lane);
                    if (lane == 0) {
                        a.evicted_keys[e] = victim;
                        if (a.evicted_scores != nullptr) a.evicted_scores[e] = victim_score;
                        if (a.evicted_dirty != nullptr) a.evicted_dirty[e] = a.dirty[slot];
                    }
                    __syncwarp();
                }
                evicted++;
            } else {
                grew++;
            }
            lanes_copy<GROUP_WARP>(a.values + (size_t)slot * dim, a.in_values + (size_t)i * dim, dim, lane);
            if (lane == owner) {
                a.keys[slot] = key;
                a.scores[slot] = group_pick(s, r);
                a.digests[slot] = (uint8_t)digest_of(mix64(key));
                a.dirty[slot] = (uint8_t)a.mark;
                if (a.found_out != nullptr) a.found_out[i] = 0;
            }
        }
    }
    if (lane == 0) {
        if (grew != 0) atomicAdd(a.size, (unsigned long long)grew);
        if (evicted != 0 && a.evicted_keys == nullptr) atomicAdd(a.evicted_count, (unsigned long long)evicted);
    }
}

// assign (existing keys only), specialised: after the marking pass (dedup_slot null: unique keys
// promised, or repeats repaired after), the last occurrence of each key is its only writer, and
// assign never inserts or evicts, so no slot can change under it and no lock is taken; the kernel
// is find plus a value write, with find's occupancy. Other occurrences only report presence.
// Scores follow the table's mode, as in mlkv_upsert.
__device__ __forceinline__ void
assign_only_body(const uint64_t* __restrict__ keys, uint64_t* scores, const uint8_t* __restrict__ digests,
                 float* values, const int* __restrict__ dedup_slot, const int* dedup_win,
                 uint64_t bucket_mask, int dim, int score_mode, uint64_t clock, const uint64_t* __restrict__ in_keys,
                 const float* __restrict__ in_values, const uint64_t* __restrict__ in_scores, long n,
                 uint8_t* __restrict__ found_out, unsigned long long* dup_seen, uint8_t* dirty_set,
                 uint64_t* missed_keys, int* missed_index, int* missed_count, long index_base) {
    auto tile = cg::tiled_partition<TILE>(cg::this_thread_block());
    long i = (long)(blockIdx.x * (blockDim.x / TILE) + threadIdx.x / TILE);
    if (i >= n) return;
    int lane = tile.thread_rank();
    uint64_t key = in_keys[i];
    if (key == EMPTY_KEY || key == LOCKED_KEY) return;  // refused on the host
    const float* src = in_values + (size_t)i * dim;
    tile_prefetch(tile, src, dim);  // read after the probe; asked for now
    // Loaded before the probe, used after it; the same word in every lane (nothing writes it here).
    int p = dedup_slot != nullptr ? dedup_slot[i] : 0;
    uint64_t h = mix64(key);
    uint64_t base = (h & bucket_mask) * BUCKET;
    bool locked;
    int64_t slot = tile_find(tile, keys, digests, base, key, digest_of(h), &locked);
    // Without marks (unique keys promised, or repeats repaired after), every position writes.
    if ((dedup_slot == nullptr || dedup_win[p] == (int)i) && slot >= 0) {
        // LRU without marks: occurrences of a key write without a lock, so the detection swaps
        // the score atomically (this call's clock means another occurrence wrote). It runs after
        // the copy, whose stores need not wait for the score's read: any two occurrences' swaps
        // are ordered, so the later one sees the clock whichever copy came first.
        tile_copy(tile, values + (size_t)slot * dim, src, dim);
        if (lane == 0) {
            if (dirty_set != nullptr) dirty_set[slot] = 1;
            if (dup_seen == nullptr) {
                scores[slot] = hit_score(score_mode, scores[slot], clock, in_scores, i);
            } else {
                // A score already at this call's clock is a repeat without the exchange, which a
                // hot key's occurrences would otherwise queue for.
                unsigned long long old_score = *reinterpret_cast<volatile unsigned long long*>(scores + slot);
                if (old_score != clock) {
                    old_score = atomicExch(reinterpret_cast<unsigned long long*>(scores + slot), (unsigned long long)clock);
                }
                if (old_score == clock) *dup_seen = 1;
            }
        }
    }
    if (lane == 0 && found_out != nullptr) found_out[i] = slot >= 0;
    if (lane == 0 && slot < 0 && missed_keys != nullptr) {
        int m = compact_slot(missed_count);
        missed_keys[m] = key;
        missed_index[m] = (int)(index_base + i);
    }
}

struct AssignArgs {
    const uint64_t* keys;
    uint64_t* scores;
    const uint8_t* digests;
    float* values;
    RepeatMarks marks;
    uint64_t bucket_mask;
    int64_t dim;
    int64_t score_mode;
    uint64_t clock;
    const uint64_t* in_keys;
    const float* in_values;
    const uint64_t* in_scores;
    int64_t n;
    uint8_t* found_out;
    unsigned long long* dup_seen;  // as in UpsertArgs
    uint8_t* dirty_set;            // not null: the table's dirty marks, set for every entry written
    uint64_t* missed_keys;         // not null: keys not found, compacted, with their positions
    int* missed_index;
    int* missed_count;
    int64_t index_base;            // added to the positions reported (the chunk's place in the batch)
};
static_assert(sizeof(AssignArgs) == 23 * 8, "AssignArgs: one 8-byte field per argument");

extern "C" __global__ void __launch_bounds__(256, 8) mlkv_assign_only(const AssignArgs a) {
    assign_only_body(a.keys, a.scores, a.digests, a.values, marks_of(a.marks), a.marks.win, a.bucket_mask,
                     (int)a.dim, (int)a.score_mode, a.clock, a.in_keys, a.in_values, a.in_scores, (long)a.n,
                     a.found_out, a.dup_seen, a.dirty_set, a.missed_keys, a.missed_index, a.missed_count,
                     (long)a.index_base);
}

// Repeated keys in an assigning launch, through a scratch hash set of the batch (open
// addressing, set_mask + 1 slots, at least twice the batch), in two ways:
// - Marking first (LFU and custom scores, and inserts the host does not wait for):
//    1. mlkv_dedup puts every position's key in the set with one compare-and-swap; a position
//       that finds its key already there stores the launch's epoch in *flag and marks the entry.
//    2. mlkv_dedup_win, only when *flag holds the epoch, keeps the highest position per key in win
//       (atomicMax) and where each position's key sits in slot_of. Without a repeated key it
//       returns at once and the upsert reads no marks (marks_of).
//    3. the upsert, where only marked last occurrences write;
//    4. mlkv_dedup_reset empties the set (and win and the marks when they were written).
// - Repairing after (LRU scores, calls the host waits for): the upsert runs without marks, every
//   occurrence writes, and one that finds its slot already scored with this call's clock reports
//   a repeat (dup_seen). Only then does the host run steps 1, 2, mlkv_dedup_rewrite (the last
//   occurrence of each repeated key writes its row again) and 4. A batch of distinct keys pays
//   no pass over the set at all.
// The set starts empty (keys EMPTY_KEY, win -1, marks 0). Reserved keys (refused on the host;
// the upsert skips them) never enter it. An epoch is never reused, so *flag needs no reset.
struct DedupArgs {
    const uint64_t* in_keys;
    int64_t n;
    uint64_t* set_keys;
    int* win;
    uint64_t set_mask;
    int* slot_of;
    uint64_t* flag;
    uint64_t epoch;
    uint8_t* repeated;  // per set slot: 1 when its key occurs more than once
    const int* positions;  // each key's position in its batch (the set picks the highest), or null: its index
};
static_assert(sizeof(DedupArgs) == 10 * 8, "DedupArgs: one 8-byte field per argument");

__device__ __forceinline__ bool reserved_key(uint64_t key) {
    return key == EMPTY_KEY || key == LOCKED_KEY;
}

extern "C" __global__ void mlkv_dedup(const DedupArgs a) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n) return;
    uint64_t key = a.in_keys[i];
    if (reserved_key(key)) return;
    uint64_t p = mix64(key) & a.set_mask;
    while (true) {
        // Read first: the occurrences of a hot key find it there without a compare-and-swap each.
        unsigned long long prev = *reinterpret_cast<volatile unsigned long long*>(a.set_keys + p);
        if (prev == EMPTY_KEY) {
            prev = atomicCAS(reinterpret_cast<unsigned long long*>(a.set_keys + p), EMPTY_KEY, key);
            if (prev == EMPTY_KEY) return;
        }
        if (prev == key) {
            // Stores only where they change something: every repeat of a batch would store here.
            if (reinterpret_cast<volatile uint8_t*>(a.repeated)[p] == 0) a.repeated[p] = 1;
            if (*reinterpret_cast<volatile const uint64_t*>(a.flag) != a.epoch) *a.flag = a.epoch;
            return;
        }
        p = (p + 1) & a.set_mask;
    }
}

extern "C" __global__ void mlkv_dedup_win(const DedupArgs a) {
    if (*a.flag != a.epoch) return;
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n) return;
    uint64_t key = a.in_keys[i];
    if (reserved_key(key)) return;
    uint64_t p = mix64(key) & a.set_mask;
    while (a.set_keys[p] != key) p = (p + 1) & a.set_mask;  // mlkv_dedup put it there
    int pos = a.positions != nullptr ? a.positions[i] : (int)i;
    // Positions only grow: one already higher needs no atomic (a hot key's occurrences queue on it).
    if (*reinterpret_cast<volatile int*>(a.win + p) < pos) atomicMax(a.win + p, pos);
    a.slot_of[i] = (int)p;
}

extern "C" __global__ void mlkv_dedup_reset(const DedupArgs a) {
    uint64_t slots = a.set_mask + 1;
    bool win_written = *a.flag == a.epoch;
    uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t s = t; s < slots; s += stride) {
        a.set_keys[s] = EMPTY_KEY;
        if (win_written) {
            a.win[s] = -1;
            a.repeated[s] = 0;
        }
    }
}

// The last occurrence of each distinct key of a batch, after mlkv_dedup and mlkv_dedup_win of
// this epoch: its position goes to out_index, compacted in no particular order, and *out_count
// (zero before) counts them. Without a repeated key (the flag not at this epoch) every position
// is its key's last. Reserved keys (refused on the host) are left out when keys repeat.
extern "C" __global__ void mlkv_unique_last(const uint64_t* __restrict__ in_keys, long n, const uint64_t* flag,
                                            uint64_t epoch, const int* __restrict__ win,
                                            const int* __restrict__ slot_of, int* __restrict__ out_index,
                                            unsigned long long* out_count) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (*flag != epoch) {
        if (i < n) out_index[i] = (int)i;
        if (i == 0) *out_count = (unsigned long long)n;
        return;
    }
    // Every lane of a warp takes part in the ballot: no early return for i >= n here.
    bool last = i < n && !reserved_key(in_keys[i]) && win[slot_of[i]] == (int)i;
    unsigned mask = __ballot_sync(0xffffffffu, last);
    int lane = threadIdx.x & 31;
    unsigned long long first = 0;
    if (lane == 0 && mask != 0) first = atomicAdd(out_count, (unsigned long long)__popc(mask));
    first = __shfl_sync(0xffffffffu, first, 0);
    if (last) out_index[first + __popc(mask & ((1u << lane) - 1))] = (int)i;
}

// mlkv_unique_last for keys that come with their batch positions (the misses an assigning kernel
// compacted, in no particular order), after mlkv_dedup and mlkv_dedup_win of this epoch with those
// positions: each distinct key once, with its highest position, to out_keys/out_positions,
// compacted in no particular order; *out_count (zero before) counts them. Without a repeated key
// every entry is copied.
extern "C" __global__ void mlkv_unique_last_at(const uint64_t* __restrict__ in_keys, const int* __restrict__ positions,
                                               long n, const uint64_t* flag, uint64_t epoch,
                                               const int* __restrict__ win, const int* __restrict__ slot_of,
                                               uint64_t* __restrict__ out_keys, int* __restrict__ out_positions,
                                               unsigned long long* out_count) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    bool repeats = *flag == epoch;
    // Every lane of a warp takes part in the ballot: no early return for i >= n here.
    bool last = i < n && !reserved_key(in_keys[i]) && (!repeats || win[slot_of[i]] == positions[i]);
    unsigned mask = __ballot_sync(0xffffffffu, last);
    int lane = threadIdx.x & 31;
    unsigned long long first = 0;
    if (lane == 0 && mask != 0) first = atomicAdd(out_count, (unsigned long long)__popc(mask));
    first = __shfl_sync(0xffffffffu, first, 0);
    if (last) {
        unsigned long long at = first + __popc(mask & ((1u << lane) - 1));
        out_keys[at] = in_keys[i];
        out_positions[at] = positions[i];
    }
}

// Step 3 of the repair: the last occurrence of each repeated key writes its row again, over
// whatever the occurrences that ran after it left. Scores already hold the call's clock.
struct RewriteArgs {
    const uint64_t* keys;
    const uint8_t* digests;
    float* values;
    uint64_t bucket_mask;
    int64_t dim;
    const uint64_t* in_keys;
    const float* in_values;
    int64_t n;
    const int* slot_of;
    const int* win;
    const uint8_t* repeated;
    const uint64_t* flag;
    uint64_t epoch;
};
static_assert(sizeof(RewriteArgs) == 13 * 8, "RewriteArgs: one 8-byte field per argument");

extern "C" __global__ void mlkv_dedup_rewrite(const RewriteArgs a) {
    if (*a.flag != a.epoch) return;
    auto tile = cg::tiled_partition<TILE>(cg::this_thread_block());
    long i = (long)(blockIdx.x * (blockDim.x / TILE) + threadIdx.x / TILE);
    if (i >= a.n) return;
    uint64_t key = a.in_keys[i];
    if (reserved_key(key)) return;
    int p = a.slot_of[i];
    if (!a.repeated[p] || a.win[p] != (int)i) return;
    uint64_t h = mix64(key);
    bool locked;
    int64_t slot = tile_find(tile, a.keys, a.digests, (h & a.bucket_mask) * BUCKET, key, digest_of(h), &locked);
    if (slot >= 0) tile_copy(tile, a.values + (size_t)slot * a.dim, a.in_values + (size_t)i * a.dim, (int)a.dim);
}

extern "C" __global__ void mlkv_fill_u64(uint64_t* dst, uint64_t value, uint64_t count) {
    uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t s = t; s < count; s += stride) dst[s] = value;
}

// into[i] += from[i] for i < n: adds one call's counters to running totals without the host
// reading them (inserts that return without waiting).
extern "C" __global__ void mlkv_add_u64(const uint64_t* __restrict__ from, uint64_t* __restrict__ into, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) into[i] += from[i];
}

extern "C" __global__ void mlkv_erase(uint64_t* keys, uint8_t* digests, unsigned long long* size,
                                      uint64_t bucket_mask, const uint64_t* __restrict__ in_keys, long n,
                                      unsigned long long* erased) {
    auto tile = cg::tiled_partition<TILE>(cg::this_thread_block());
    long i = (long)(blockIdx.x * (blockDim.x / TILE) + threadIdx.x / TILE);
    if (i >= n) return;
    uint64_t key = in_keys[i];
    if (key == EMPTY_KEY || key == LOCKED_KEY) return;
    uint64_t h = mix64(key);
    bool locked;
    int64_t slot = tile_find(tile, keys, digests, (h & bucket_mask) * BUCKET, key, digest_of(h), &locked);
    if (slot >= 0 && tile.thread_rank() == 0) {
        // A duplicate in the batch finds the same slot; only one CAS wins.
        if (atomicCAS(reinterpret_cast<unsigned long long*>(keys + slot), key, LOCKED_KEY) == key) {
            digests[slot] = 0;
            fence_acq_rel();
            atomicExch(reinterpret_cast<unsigned long long*>(keys + slot), EMPTY_KEY);
            atomicAdd(size, ~0ULL);
            atomicAdd(erased, 1ULL);
        }
    }
}

// Copies the used slots of [offset, offset + count) to the outputs, compacted; with dirty, only
// those whose mark is set (the marks stay; the caller clears them once the rows are safe below).
// A warp handles 32 consecutive slots and copies each found value with all its lanes. scores,
// dirty and out_scores may be null.
__device__ __forceinline__ void export_compacted(const uint64_t* __restrict__ keys, const uint64_t* __restrict__ scores,
                                                 const uint8_t* __restrict__ dirty, const float* __restrict__ values,
                                                 int dim, uint64_t offset, long count, uint64_t* out_keys,
                                                 float* out_values, uint64_t* out_scores,
                                                 unsigned long long* out_count) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    bool used = false;
    uint64_t key = EMPTY_KEY;
    if (t < count) {
        key = keys[offset + t];
        used = key != EMPTY_KEY && key != LOCKED_KEY && (dirty == nullptr || dirty[offset + t] != 0);
    }
    unsigned mask = __ballot_sync(0xffffffffu, used);
    if (mask == 0) return;
    unsigned long long first = 0;
    if (lane == 0) first = atomicAdd(out_count, (unsigned long long)__popc(mask));
    first = __shfl_sync(0xffffffffu, first, 0);
    int rank = __popc(mask & ((1u << lane) - 1));
    if (used) {
        out_keys[first + rank] = key;
        if (out_scores != nullptr) out_scores[first + rank] = scores[offset + t];
    }
    const unsigned all_used = mask;
    while (mask != 0) {
        int src_lane = __ffs(mask) - 1;
        mask &= mask - 1;
        long slot = (long)offset + (t - lane) + src_lane;
        int r = __popc(all_used & ((1u << src_lane) - 1));
        const float* s = values + (size_t)slot * dim;
        float* d = out_values + (size_t)(first + r) * dim;
        for (int k = lane; k < dim; k += 32) d[k] = s[k];
    }
}

// Every used slot of [offset, offset + count), compacted (export_compacted).
extern "C" __global__ void mlkv_export(const uint64_t* __restrict__ keys, const uint64_t* __restrict__ scores,
                                       const float* __restrict__ values, int dim, uint64_t offset, long count,
                                       uint64_t* out_keys, float* out_values, uint64_t* out_scores,
                                       unsigned long long* out_count) {
    export_compacted(keys, scores, nullptr, values, dim, offset, count, out_keys, out_values, out_scores, out_count);
}

// The dirty slots of [offset, offset + count), compacted (export_compacted); their marks stay.
extern "C" __global__ void mlkv_export_dirty(const uint64_t* __restrict__ keys, const uint8_t* __restrict__ dirty,
                                             const float* __restrict__ values, int dim, uint64_t offset, long count,
                                             uint64_t* out_keys, float* out_values, unsigned long long* out_count) {
    export_compacted(keys, nullptr, dirty, values, dim, offset, count, out_keys, out_values, nullptr, out_count);
}

// Scatters rows of `src` (n rows) to rows index[j] of `dst`; used to merge results from lower tiers.
extern "C" __global__ void mlkv_scatter_rows(const float* __restrict__ src, const int* __restrict__ index, long n,
                                             int dim, float* __restrict__ dst) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long row = t / dim;
    if (row >= n) return;
    int d = (int)(t - row * dim);
    dst[(size_t)index[row] * dim + d] = src[(size_t)row * dim + d];
}

// Gathers rows index[j] of `src` into row j of `dst`, for j < n: the inverse of mlkv_scatter_rows.
extern "C" __global__ void mlkv_gather_rows(const float* __restrict__ src, const int* __restrict__ index, long n,
                                            int dim, float* __restrict__ dst) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long row = t / dim;
    if (row >= n) return;
    int d = (int)(t - row * dim);
    dst[(size_t)row * dim + d] = src[(size_t)index[row] * dim + d];
}

// Sets flags[index[j]] = 1 for j < n: marks the rows mlkv_scatter_rows filled as found.
extern "C" __global__ void mlkv_set_flags(const int* __restrict__ index, long n, uint8_t* __restrict__ flags) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < n) flags[index[t]] = 1;
}

// Gathers rows start .. start+count of the permutation i -> (i * step) mod n of (keys, values) into
// dst_keys/dst_values. With step coprime to n every row is taken once over the whole range; rows
// exported in slot order (so grouped by bucket) come out spread over buckets, and inserting them
// does not pile a launch's threads onto one bucket lock.
extern "C" __global__ void mlkv_gather_stride(const uint64_t* __restrict__ keys, const float* __restrict__ values,
                                              uint64_t n, int dim, uint64_t step, uint64_t start, long count,
                                              uint64_t* __restrict__ dst_keys, float* __restrict__ dst_values) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long row = t / dim;
    if (row >= count) return;
    int d = (int)(t - row * dim);
    uint64_t src = (unsigned __int128)((start + row) % n) * step % n;
    if (d == 0) dst_keys[row] = keys[src];
    dst_values[(size_t)row * dim + d] = values[src * dim + d];
}

extern "C" __global__ void mlkv_clear(uint64_t* keys, uint8_t* digests, uint64_t* scores, uint64_t capacity) {
    uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t s = t; s < capacity; s += stride) {
        keys[s] = EMPTY_KEY;
        digests[s] = 0;
        scores[s] = 0;
    }
}

// Adds deltas to keys that exist, leaving absent keys alone (the tiered store accumulates into the
// keys HBM holds and sends the rest below). Every occurrence of a repeated key adds its delta
// (atomicAdd per element), so no duplicate pre-pass is needed; never inserts or evicts, so no slot
// changes under it and no lock is taken. found_out[i] (may be null) tells whether key i existed;
// dirty_set (may be null) gets the marks of the entries written; missed_keys (may be null) the
// keys not found, compacted, with their positions.
extern "C" __global__ void __launch_bounds__(256, 8)
mlkv_accum_existing(const uint64_t* __restrict__ keys, uint64_t* scores, const uint8_t* __restrict__ digests,
                    float* values, uint64_t bucket_mask, int dim, int score_mode, uint64_t clock,
                    const uint64_t* __restrict__ in_keys, const float* __restrict__ deltas,
                    const uint64_t* __restrict__ in_scores, long n, uint8_t* __restrict__ found_out,
                    uint8_t* dirty_set, uint64_t* missed_keys, int* missed_index, int* missed_count) {
    auto tile = cg::tiled_partition<TILE>(cg::this_thread_block());
    long i = (long)(blockIdx.x * (blockDim.x / TILE) + threadIdx.x / TILE);
    if (i >= n) return;
    int lane = tile.thread_rank();
    uint64_t key = in_keys[i];
    if (key == EMPTY_KEY || key == LOCKED_KEY) {
        if (lane == 0 && found_out != nullptr) found_out[i] = 0;
        return;
    }
    uint64_t h = mix64(key);
    uint64_t base = (h & bucket_mask) * BUCKET;
    bool locked;
    int64_t slot = tile_find(tile, keys, digests, base, key, digest_of(h), &locked);
    if (slot >= 0) {
        float* row = values + (size_t)slot * dim;
        const float* d = deltas + (size_t)i * dim;
        tile_atomic_add(tile, row, d, dim);
        if (lane == 0) {
            scores[slot] = hit_score(score_mode, scores[slot], clock, in_scores, i);
            if (dirty_set != nullptr) dirty_set[slot] = 1;
        }
    }
    if (lane == 0 && found_out != nullptr) found_out[i] = slot >= 0;
    if (lane == 0 && slot < 0 && missed_keys != nullptr) {
        int m = compact_slot(missed_count);
        missed_keys[m] = key;
        missed_index[m] = (int)i;
    }
}

// *first = the lowest position of a reserved key among n keys (the caller set it to ~0 first), so
// a batch of device keys is checked without copying it to the host.
extern "C" __global__ void mlkv_first_reserved(const uint64_t* __restrict__ in_keys, long n,
                                               unsigned long long* first) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && reserved_key(in_keys[i])) atomicMin(first, (unsigned long long)i);
}

// ---------------------------------------------------------------- reading the DRAM tier in place
// The DRAM tier (io.mlkv.storage.dram.DramTier) lives in host memory that the store pins and maps
// into the GPU's address space. Its layout: buckets of DRAM_SLOTS slots; keys (int64 per slot,
// EMPTY_KEY where a slot holds no entry), values (dim float32 per slot), and two int64 counts per
// bucket side by side (`dram_counts`): its sequence count (DRAM_SEQ), odd while the bucket changes,
// then its version (DRAM_VERSION), so that a writer reads both in one PCIe request.
#define DRAM_SLOTS 16
// Longest row (floats) that mlkv_dram_probe reads into registers; a multiple of 4 * DRAM_SLOTS.
#define DRAM_VEC_ROW 128
#define DRAM_SEQ(counts, bucket) (counts)[2 * (bucket)]
#define DRAM_VERSION(counts, bucket) (counts)[2 * (bucket) + 1]

// A bucket's sequence count (x) and version (y), read together in one uncached 16-byte read.
__device__ __forceinline__ ulonglong2 dram_read_counts(const volatile uint64_t* dram_counts, uint64_t bucket) {
    return __ldcv(reinterpret_cast<const ulonglong2*>(const_cast<const uint64_t*>(&DRAM_SEQ(dram_counts, bucket))));
}

// The DRAM tier's bucket of `key`, computed as DramTier.bucketOf does.
__device__ __forceinline__ uint64_t dram_bucket_of(uint64_t key, uint64_t num_buckets) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    return ((h >> 32) * num_buckets) >> 32;
}

// Which of n keys the pinned, mapped DRAM tier holds: one tile of DRAM_SLOTS threads per key reads
// the key's bucket; present[q] = 1 if a slot holds the key, or if the bucket is being changed
// (odd sequence count: the caller then treats the key as held and leaves it alone), else 0.
// key_copy, where not null, is a copy of the tier's keys in device memory taken since its last
// key change, passed only while no key can change (no CPU writer of keys runs): the bucket is
// looked at there, with no PCIe read, and a bucket being changed meanwhile only has rows changing.
extern "C" __global__ void
mlkv_dram_contains(const uint64_t* __restrict__ query, long n, const volatile uint64_t* dram_keys,
                   const volatile uint64_t* dram_counts, uint64_t num_buckets, uint8_t* __restrict__ present,
                   const uint64_t* __restrict__ key_copy) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long q = t / DRAM_SLOTS;
    if (q >= n) return;  // whole tiles leave together: all lanes of a tile share q
    int lane = threadIdx.x % DRAM_SLOTS;
    int tile_base = (threadIdx.x & 31) & ~(DRAM_SLOTS - 1);
    unsigned tile_mask = ((1u << DRAM_SLOTS) - 1) << tile_base;
    uint64_t key = query[q];
    uint64_t bucket = dram_bucket_of(key, num_buckets);
    uint64_t slot = bucket * DRAM_SLOTS + lane;
    // Slots without an entry hold EMPTY_KEY (DramTier.VACANT_KEY), which no query key equals.
    bool match = key != EMPTY_KEY && (key_copy != nullptr ? key_copy[slot] : dram_keys[slot]) == key;
    bool held = __ballot_sync(tile_mask, match) != 0
                || (key_copy == nullptr && (DRAM_SEQ(dram_counts, bucket) & 1) != 0);
    if (lane == 0) present[q] = held ? 1 : 0;
}

// One tile of DRAM_SLOTS threads per query key: lane l checks slot l of the key's bucket (one
// PCIe read of the bucket's keys for the tile), the tile copies the matching row into row q of
// `scratch`, then every lane re-reads the bucket's count. Only if it is even and unchanged for
// the whole tile is the row copied to out[index[q]], found[index[q]] set, hit[q] = 1, (if
// seq_out is not null) seq_out[q] = that count and (if hit_count is not null) *hit_count raised
// by one; otherwise hit[q] = 0 and out is untouched (with reset_found, found[index[q]] = 0), and
// the caller reads the key on the CPU.
//
// With checked 0 the probe trusts that no bucket changes while it runs (the caller saw no change
// under way before the launch and checks that none began before it uses the results, probing
// again checked if one did): it reads the count and the keys together and does not read the
// count again, four PCIe requests a key instead of five; the reads are bound by how many requests
// are in flight, not by round trips (docs/BENCHMARKS.md, runs 110-111).
//
// With key_copy not null (only with checked 0) the bucket's keys are read from that copy of the
// tier's keys in device memory, which the caller knows to hold every slot's key (no key changed
// since it was taken), and the count is not read at all: only the row crosses PCIe (two requests
// at dim 64 instead of four; docs/BENCHMARKS.md, run 119). seq_out then gets NO_SEQ, a count no
// bucket has, so a later check of the bucket (mlkv_dram_unchanged) finds it changed.
#define NO_SEQ (~0ull)
extern "C" __global__ void __launch_bounds__(256)
mlkv_dram_probe(const uint64_t* __restrict__ query, const int* __restrict__ index, long n,
                const volatile uint64_t* dram_keys, const volatile float* dram_values,
                const volatile uint64_t* dram_counts, uint64_t num_buckets, int dim,
                float* __restrict__ scratch, float* __restrict__ out, uint8_t* __restrict__ found,
                uint8_t* __restrict__ hit, uint64_t* __restrict__ seq_out, unsigned long long* __restrict__ hit_count,
                int checked, int reset_found, const uint64_t* __restrict__ key_copy) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long q = t / DRAM_SLOTS;
    if (q >= n) return;  // whole tiles leave together: all lanes of a tile share q
    int lane = threadIdx.x % DRAM_SLOTS;
    int tile_base = (threadIdx.x & 31) & ~(DRAM_SLOTS - 1);
    unsigned tile_mask = ((1u << DRAM_SLOTS) - 1) << tile_base;
    uint64_t key = query[q];
    uint64_t bucket = dram_bucket_of(key, num_buckets);
    bool copied = key_copy != nullptr && !checked;
    uint64_t seq = copied ? NO_SEQ : DRAM_SEQ(dram_counts, bucket);
    if (checked) __threadfence_system();
    uint64_t slot = bucket * DRAM_SLOTS + lane;
    uint64_t slot_key = copied ? key_copy[slot] : dram_keys[slot];
    bool match = (copied || (seq & 1) == 0) && key != EMPTY_KEY && slot_key == key;
    unsigned ballot = (__ballot_sync(tile_mask, match) & tile_mask) >> tile_base;
    if (ballot == 0) {
        if (lane == 0) {
            hit[q] = 0;
            if (reset_found) found[index[q]] = 0;
        }
        return;
    }
    uint64_t src = (bucket * DRAM_SLOTS + (__ffs(ballot) - 1)) * (uint64_t)dim;
    float* row = scratch + (size_t)q * dim;
    // PCIe reads from the GPU are limited by how many requests are in flight more than by bytes.
    // Rows of up to DRAM_VEC_ROW floats that are whole float4s (the tier's arrays are page-aligned)
    // are read 16 bytes per lane, held in registers and written once checked: dim 64 is one
    // 256-byte read per tile instead of four of 64. __ldcv does not cache, like the volatile
    // loads of other rows: the row must be what host memory holds now.
    bool in_registers = (dim & 3) == 0 && dim <= DRAM_VEC_ROW;
    float4 part[DRAM_VEC_ROW / (4 * DRAM_SLOTS)];
    const float4* from = reinterpret_cast<const float4*>(const_cast<const float*>(dram_values) + src);
    if (in_registers) {
#pragma unroll
        for (int v = 0; v < DRAM_VEC_ROW / (4 * DRAM_SLOTS); v++) {
            int d = lane + v * DRAM_SLOTS;
            if (d < dim / 4) part[v] = __ldcv(from + d);
        }
    } else {
        for (int d = lane; d < dim; d += DRAM_SLOTS) row[d] = dram_values[src + d];
    }
    bool unchanged = true;
    if (checked) {
        __threadfence_system();
        unchanged = DRAM_SEQ(dram_counts, bucket) == seq;
    }
    if (!__all_sync(tile_mask, unchanged)) {
        if (lane == 0) {
            hit[q] = 0;
            if (reset_found) found[index[q]] = 0;
        }
        return;
    }
    size_t at = (size_t)index[q];
    if (in_registers) {
        float4* to_row = reinterpret_cast<float4*>(row);
        float4* to_out = reinterpret_cast<float4*>(out + at * dim);
#pragma unroll
        for (int v = 0; v < DRAM_VEC_ROW / (4 * DRAM_SLOTS); v++) {
            int d = lane + v * DRAM_SLOTS;
            if (d < dim / 4) {
                to_row[d] = part[v];
                to_out[d] = part[v];
            }
        }
    } else {
        for (int d = lane; d < dim; d += DRAM_SLOTS) out[at * dim + d] = row[d];
    }
    if (lane == 0) {
        found[at] = 1;
        hit[q] = 1;
        if (seq_out != nullptr) seq_out[q] = seq;
        if (hit_count != nullptr) atomicAdd(hit_count, 1ull);
    }
}

// same[q] = 1 if the bucket of query[q] still has sequence count seq[q] (so no slot of it changed
// since a probe read the key's row at that count), else 0. One thread per key.
extern "C" __global__ void mlkv_dram_unchanged(const uint64_t* __restrict__ query, const uint64_t* __restrict__ seq,
                                               long n, const volatile uint64_t* dram_counts, uint64_t num_buckets,
                                               uint8_t* __restrict__ same) {
    long q = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= n) return;
    same[q] = DRAM_SEQ(dram_counts, dram_bucket_of(query[q], num_buckets)) == seq[q] ? 1 : 0;
}

// Write-back of rows evicted dirty from HBM into the DRAM tier in place, for keys the tier holds,
// instead of copying them to the host for the CPU to write. Runs only under the store's mutation
// lock, so no CPU thread writes the tier meanwhile; CPU readers and the probe kernels read it
// without that lock and check the bucket's sequence count around every row they copy. The writer
// side of that seqlock is three launches, the host waiting for each (a finished kernel's writes to
// host memory are visible to the host before the next starts), instead of system-wide fences per
// row, which cost more than the rows:
//   1. mlkv_dram_write_claim: for each entry q whose state[q] is WANTED, one tile of DRAM_SLOTS
//      lanes finds the key's slot (NOT_HELD if the tier lacks it); lane 0 claims the bucket in
//      `claims` (device memory, zeroed before each round; one writer per bucket per round, a loser
//      stays WANTED and raises *retries), reads the bucket's sequence count and version in one
//      16-byte read, makes the count odd and records the slot, the count and the version (CLAIMED).
//   2. mlkv_dram_write_copy: each CLAIMED entry's row (replacing the value, or added to it), 16
//      bytes per lane where it is whole float4s, and its slot's dirty flag.
//   3. mlkv_dram_write_release: each CLAIMED entry's bucket count even again and its version
//      changed (DONE). The version moves at the release, not before the rows: a CPU reader reads
//      a version before a row and, finding the version unchanged under the store's lock later,
//      trusts the row; a version changed no earlier than the rows keeps that true. Reading it with
//      the count instead of in the copy saves one PCIe read per row.
// Replacing rows, keys must be distinct; adding them, a key may repeat (each entry adds once).
// Rows are the caller's device memory, dim floats each.
#define DRAM_WRITE_WANTED 1
#define DRAM_WRITE_DONE 2
#define DRAM_WRITE_NOT_HELD 3
#define DRAM_WRITE_CLAIMED 4
#define DRAM_WRITE_OWNER 5
// Shared claims (`shared` 1: distinct keys, replacing rows, and one claim per bucket, claim_mask
// covering every bucket): every entry of a bucket claims it in the same round; the first (OWNER)
// makes its count odd and, in mlkv_dram_write_release, even again; the others (CLAIMED) copy
// beside it into their own slots. One round then does every entry.
extern "C" __global__ void
mlkv_dram_write_claim(const uint64_t* __restrict__ keys, long n, uint8_t* __restrict__ state,
                      unsigned int* __restrict__ claims, uint64_t claim_mask, unsigned long long* __restrict__ retries,
                      uint64_t* __restrict__ slot_out, uint64_t* __restrict__ seq_out, uint64_t* __restrict__ version_out,
                      const volatile uint64_t* dram_keys, volatile uint64_t* dram_counts, uint64_t num_buckets, int shared,
                      const uint64_t* __restrict__ key_copy) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long q = t / DRAM_SLOTS;
    if (q >= n) return;  // whole tiles leave together: all lanes of a tile share q
    if (state[q] != DRAM_WRITE_WANTED) return;  // the same for every lane of the tile
    int lane = threadIdx.x % DRAM_SLOTS;
    int tile_base = (threadIdx.x & 31) & ~(DRAM_SLOTS - 1);
    unsigned tile_mask = ((1u << DRAM_SLOTS) - 1) << tile_base;
    uint64_t key = keys[q];
    uint64_t bucket = dram_bucket_of(key, num_buckets);
    // Keys do not change here: only CPU writers change them, and none runs. key_copy, where not
    // null, is a copy of the tier's keys in device memory taken since the last key change (see
    // mlkv_dram_probe): the slot is found without a PCIe read.
    uint64_t slot_key = key_copy != nullptr ? key_copy[bucket * DRAM_SLOTS + lane] : dram_keys[bucket * DRAM_SLOTS + lane];
    bool match = key != EMPTY_KEY && slot_key == key;
    unsigned ballot = (__ballot_sync(tile_mask, match) & tile_mask) >> tile_base;
    if (lane != 0) return;
    if (ballot == 0) {
        state[q] = DRAM_WRITE_NOT_HELD;
        return;
    }
    if (shared) {
        slot_out[q] = bucket * DRAM_SLOTS + (__ffs(ballot) - 1);
        if (atomicAdd(&claims[bucket & claim_mask], 1u) != 0u) {
            state[q] = DRAM_WRITE_CLAIMED;
            return;
        }
        ulonglong2 count_and_version = dram_read_counts(dram_counts, bucket);
        DRAM_SEQ(dram_counts, bucket) = count_and_version.x + 1;
        seq_out[q] = count_and_version.x;
        version_out[q] = count_and_version.y;
        state[q] = DRAM_WRITE_OWNER;
        return;
    }
    if (atomicCAS(&claims[bucket & claim_mask], 0u, 1u) != 0u) {
        atomicAdd(retries, 1ull);
        return;
    }
    ulonglong2 count_and_version = dram_read_counts(dram_counts, bucket);
    DRAM_SEQ(dram_counts, bucket) = count_and_version.x + 1;
    seq_out[q] = count_and_version.x;
    version_out[q] = count_and_version.y;
    slot_out[q] = bucket * DRAM_SLOTS + (__ffs(ballot) - 1);
    state[q] = DRAM_WRITE_CLAIMED;
}

// States for a write of dirty evicted entries: WANTED where marks[q] is set, 0 (skipped) elsewhere;
// *wanted counts the WANTED ones (one atomic per warp). The counter is the writes' retry counter,
// free between writes.
extern "C" __global__ void mlkv_dram_write_want_marked(const uint8_t* __restrict__ marks, long n,
                                                       uint8_t* __restrict__ state, unsigned long long* wanted) {
    long q = (long)blockIdx.x * blockDim.x + threadIdx.x;
    bool want = q < n && marks[q] != 0;
    if (q < n) state[q] = want ? DRAM_WRITE_WANTED : 0;
    unsigned ballot = __ballot_sync(0xffffffffu, want);
    if ((threadIdx.x & 31) == 0 && ballot != 0) atomicAdd(wanted, (unsigned long long)__popc(ballot));
}

extern "C" __global__ void
mlkv_dram_write_copy(const uint64_t* __restrict__ keys, const float* __restrict__ rows, long n, int dim,
                     const uint8_t* __restrict__ state, const uint64_t* __restrict__ slot_out, float* dram_values,
                     volatile uint8_t* dram_flags, int add) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long q = t / DRAM_SLOTS;
    if (q >= n || (state[q] != DRAM_WRITE_CLAIMED && state[q] != DRAM_WRITE_OWNER)) return;
    int lane = threadIdx.x % DRAM_SLOTS;
    uint64_t at = slot_out[q];
    const float* src = rows + (size_t)q * dim;
    float* dst = dram_values + (size_t)at * dim;
    // With add, the row is added to the value (one writer per bucket per round, so entries of one
    // key add one after the other, a round apart); otherwise it replaces it.
    if ((dim & 3) == 0) {
        const float4* s4 = reinterpret_cast<const float4*>(src);
        float4* d4 = reinterpret_cast<float4*>(dst);
        for (int d = lane; d < dim / 4; d += DRAM_SLOTS) {
            float4 v = s4[d];
            if (add) {
                float4 o = d4[d];
                v.x += o.x; v.y += o.y; v.z += o.z; v.w += o.w;
            }
            d4[d] = v;
        }
    } else {
        for (int d = lane; d < dim; d += DRAM_SLOTS) dst[d] = add ? dst[d] + src[d] : src[d];
    }
    if (lane == 0) dram_flags[at] = 3;  // DramTier's OCCUPIED | DIRTY
}

extern "C" __global__ void
mlkv_dram_write_release(long n, uint8_t* __restrict__ state, const uint64_t* __restrict__ slot_out,
                        const uint64_t* __restrict__ seq_out, const uint64_t* __restrict__ version_out,
                        volatile uint64_t* dram_counts, int shared) {
    long q = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= n) return;
    uint8_t s = state[q];
    if (s == DRAM_WRITE_OWNER || (s == DRAM_WRITE_CLAIMED && !shared)) {
        uint64_t bucket = slot_out[q] / DRAM_SLOTS;
        DRAM_SEQ(dram_counts, bucket) = seq_out[q] + 2;
        DRAM_VERSION(dram_counts, bucket) = version_out[q] + 1;
    }
    if (s == DRAM_WRITE_CLAIMED || s == DRAM_WRITE_OWNER) state[q] = DRAM_WRITE_DONE;
}

// ---------------------------------------------------------------- shards (ShardedGpuTable)
// A batch is split by owner shard with a stable partition: the keys of one shard keep their
// batch order, so the last occurrence of a repeated key is still the last within its shard.
// mlkv_shard_count counts each chunk's keys per shard, mlkv_shard_scan turns the counts into
// destinations (shard-major, so each shard's part is contiguous), and mlkv_shard_scatter writes
// each key and its batch position there. The three launches use the same grid: one block of
// SHARD_BLOCK threads per SHARD_CHUNK keys.
constexpr int SHARD_BLOCK = 256;
constexpr int SHARD_CHUNK = 2048;
constexpr int MAX_SHARDS = 32;

// The owner of a key among `shards`: the high 32 bits of a second hash of the key, scaled to the
// shard count (multiply-shift). The table's buckets use the low bits of mix64(key) and its digests
// the top byte, so the owner is drawn from another hash (the key XOR a constant, then mix64): the
// keys of one shard spread over every bucket and digest. ShardedGpuTable.ownerOf is the same function.
__device__ __forceinline__ int shard_of(uint64_t key, int shards) {
    return (int)(((mix64(key ^ 0x9E3779B97F4A7C15ULL) >> 32) * (uint64_t)shards) >> 32);
}

// block_counts[s * gridDim.x + b]: keys of chunk b owned by shard s.
extern "C" __global__ void __launch_bounds__(SHARD_BLOCK)
mlkv_shard_count(const uint64_t* __restrict__ keys, long n, int shards, unsigned int* __restrict__ block_counts) {
    __shared__ unsigned int counts[MAX_SHARDS];
    for (int s = threadIdx.x; s < shards; s += blockDim.x) counts[s] = 0;
    __syncthreads();
    long begin = (long)blockIdx.x * SHARD_CHUNK;
    for (int r = threadIdx.x; r < SHARD_CHUNK; r += blockDim.x) {
        long i = begin + r;
        if (i < n) atomicAdd(&counts[shard_of(keys[i], shards)], 1u);
    }
    __syncthreads();
    for (int s = threadIdx.x; s < shards; s += blockDim.x) block_counts[(size_t)s * gridDim.x + blockIdx.x] = counts[s];
}

// One block: the exclusive prefix sums of the m = shards x chunks counts, in place (each becomes
// its chunk's first destination for that shard), and shard_start[s] = the first destination of
// shard s, shard_start[shards] = the batch's size.
extern "C" __global__ void mlkv_shard_scan(unsigned int* counts, long m, long chunks, int shards,
                                           unsigned int* __restrict__ shard_start) {
    __shared__ unsigned int sums[1024];
    int t = threadIdx.x;
    int threads = blockDim.x;
    long per = (m + threads - 1) / threads;
    long lo = min(m, (long)t * per);
    long hi = min(m, lo + per);
    unsigned int own = 0;
    for (long k = lo; k < hi; k++) own += counts[k];
    sums[t] = own;
    __syncthreads();
    for (int off = 1; off < threads; off <<= 1) {
        unsigned int v = t >= off ? sums[t - off] : 0;
        __syncthreads();
        sums[t] += v;
        __syncthreads();
    }
    unsigned int run = t == 0 ? 0 : sums[t - 1];
    for (long k = lo; k < hi; k++) {
        unsigned int c = counts[k];
        counts[k] = run;
        if (k % chunks == 0) shard_start[k / chunks] = run;
        run += c;
    }
    if (t == threads - 1) shard_start[shards] = sums[threads - 1];
}

// Writes each key to its destination in out_keys and its batch position to perm. Within a chunk
// the keys go in rounds of SHARD_BLOCK; in a round, a warp ranks its lanes of one shard with
// __match_any_sync, and the warps before it in the block add their counts, so the order of a
// shard's keys is the batch order.
extern "C" __global__ void __launch_bounds__(SHARD_BLOCK)
mlkv_shard_scatter(const uint64_t* __restrict__ keys, long n, int shards, const unsigned int* __restrict__ offsets,
                   uint64_t* __restrict__ out_keys, int* __restrict__ perm) {
    constexpr int WARPS = SHARD_BLOCK / 32;
    __shared__ unsigned int base[MAX_SHARDS];
    __shared__ unsigned int warp_counts[WARPS][MAX_SHARDS];
    int warp = threadIdx.x >> 5;
    int lane = threadIdx.x & 31;
    for (int s = threadIdx.x; s < shards; s += blockDim.x) base[s] = offsets[(size_t)s * gridDim.x + blockIdx.x];
    long begin = (long)blockIdx.x * SHARD_CHUNK;
    for (int r = 0; r < SHARD_CHUNK; r += SHARD_BLOCK) {
        for (int k = threadIdx.x; k < WARPS * MAX_SHARDS; k += blockDim.x) warp_counts[k / MAX_SHARDS][k % MAX_SHARDS] = 0;
        __syncthreads();
        long i = begin + r + threadIdx.x;
        bool live = i < n;
        uint64_t key = live ? keys[i] : 0;
        int s = live ? shard_of(key, shards) : -1;
        unsigned int same = __match_any_sync(0xffffffffu, s);
        int rank = __popc(same & ((1u << lane) - 1));
        if (live && rank == 0) warp_counts[warp][s] = __popc(same);
        __syncthreads();
        if (live) {
            unsigned int before = 0;
            for (int w = 0; w < warp; w++) before += warp_counts[w][s];
            unsigned int dst = base[s] + before + rank;
            out_keys[dst] = key;
            perm[dst] = (int)i;
        }
        __syncthreads();
        for (int q = threadIdx.x; q < shards; q += blockDim.x) {
            unsigned int total = 0;
            for (int w = 0; w < WARPS; w++) total += warp_counts[w][q];
            base[q] += total;
        }
        __syncthreads();
    }
}

// Puts the found flags of a sharded call's parts, in partition order, back in batch order:
// found[perm[j]] = part_found[j]. (A find writes in batch order itself, through out_index.)
extern "C" __global__ void mlkv_shard_unpermute_flags(const uint8_t* __restrict__ part_found, const int* __restrict__ perm,
                                                      long n, uint8_t* __restrict__ found) {
    long j = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j < n) found[perm[j]] = part_found[j];
}
