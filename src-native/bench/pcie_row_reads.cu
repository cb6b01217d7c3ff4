// How fast a GPU reads and writes rows of pinned, mapped host memory at random, in the DRAM tier's
// layout: the ceiling of the store's device reads of keys that HBM lacks (issue 18's uniform rows).
//
// The DRAM tier keeps, per bucket of 16 slots, a sequence count and version (16 bytes, side by
// side), the slots' keys (16 x 8 bytes) and the slots' rows (16 x dim floats), each kind in its own
// array. A device read of a key HBM lacks (mlkv_dram_probe) reads the count, the keys and then the
// row over PCIe. This program times, on Q random slots of such a table in mapped host memory, the
// reads one probe could be made of, each with one tile of 16 threads per key as the store does:
//   row            the row only (what a read costs if the key's slot were known on the GPU)
//   keys+row       the bucket's keys, then the matching row
//   count+keys+row the count and the keys, then the row (the store's unchecked probe)
//   checked        count, keys, row, and the count again after a fence (the store's checked probe)
//   row write      the row written from device memory into host memory (an in-place write)
//   keys, claimed row write   the bucket's keys read, its count made odd, the row written, the
//                  count made even: the store's in-place DRAM write (demotions), in one kernel
//   HBM keys, claimed row write   the same with the keys from a copy in device memory
//   HBM keys+row   the bucket's keys from a copy in device memory, then the row from host memory
//   copy           one cudaMemcpyAsync of Q rows' bytes, contiguous (the link's bulk rate)
// and the same row read from a table in device memory, for scale. Every figure is the median of
// --reps timed launches after three untimed ones.
//
//   nvcc -O3 -std=c++17 -arch=sm_90 -o pcie_row_reads src-native/bench/pcie_row_reads.cu
//   ./pcie_row_reads [--slots 2796208] [--queries 524288] [--dim 64] [--reps 20]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#define CHECK(call)                                                                              \
    do {                                                                                         \
        cudaError_t e_ = (call);                                                                 \
        if (e_ != cudaSuccess) {                                                                 \
            std::fprintf(stderr, "pcie_row_reads: %s failed: %s (%d)\n", #call, cudaGetErrorName(e_), \
                         (int)e_);                                                               \
            std::exit(1);                                                                        \
        }                                                                                        \
    } while (0)

constexpr int SLOTS = 16;
constexpr int BLOCK = 256;

enum Mode { ROW = 0, KEYS_ROW = 1, COUNT_KEYS_ROW = 2, CHECKED = 3, ROW_WRITE = 4, CLAIMED_WRITE = 5 };

// One tile of SLOTS threads per query; lane l handles slot l of the bucket and 16 bytes of the row
// (dim 64: the whole 256-byte row in one request per lane group, as mlkv_dram_probe reads it).
__global__ void __launch_bounds__(BLOCK) probe(const uint64_t* __restrict__ query, long n, int mode,
                                               const volatile uint64_t* keys, const volatile uint64_t* counts,
                                               float* values, int dim, float* __restrict__ out,
                                               unsigned long long* __restrict__ misses) {
    long t = (long)blockIdx.x * blockDim.x + threadIdx.x;
    long q = t / SLOTS;
    if (q >= n) return;
    int lane = threadIdx.x % SLOTS;
    int tile_base = (threadIdx.x & 31) & ~(SLOTS - 1);
    unsigned tile_mask = ((1u << SLOTS) - 1) << tile_base;
    uint64_t slot = query[q];
    uint64_t bucket = slot / SLOTS;
    uint64_t key = slot + 1;  // every slot holds its index + 1
    uint64_t seq = 0;
    if (mode == COUNT_KEYS_ROW || mode == CHECKED) seq = counts[2 * bucket];
    if (mode == CHECKED) __threadfence_system();
    uint64_t found = slot;
    if (mode != ROW && mode != ROW_WRITE) {
        bool match = (seq & 1) == 0 && keys[bucket * SLOTS + lane] == key;
        unsigned ballot = (__ballot_sync(tile_mask, match) & tile_mask) >> tile_base;
        if (ballot == 0) {
            if (lane == 0) atomicAdd(misses, 1ull);
            return;
        }
        found = bucket * SLOTS + (__ffs(ballot) - 1);
    }
    float4* host_row = reinterpret_cast<float4*>(values + found * (uint64_t)dim);
    float4* dev_row = reinterpret_cast<float4*>(out + q * (long)dim);
    if (mode == CLAIMED_WRITE) {
        // As the store's in-place DRAM write does it, in one kernel instead of three: the count
        // read and made odd, the row written, the count made even (the counts' values do not
        // matter here; tiles of one bucket race on them).
        volatile uint64_t* count = const_cast<volatile uint64_t*>(counts) + 2 * bucket;
        if (lane == 0) *count = *count + 1;
        __threadfence_system();
        __syncwarp(tile_mask);
        for (int d = lane; d < dim / 4; d += SLOTS) host_row[d] = dev_row[d];
        __threadfence_system();
        __syncwarp(tile_mask);
        if (lane == 0) *count = *count + 1;
        return;
    }
    if (mode == ROW_WRITE) {
        for (int d = lane; d < dim / 4; d += SLOTS) host_row[d] = dev_row[d];
        return;
    }
    float4 part[4];
    for (int v = 0; v < 4; v++) {
        int d = lane + v * SLOTS;
        if (d < dim / 4) part[v] = __ldcv(host_row + d);
    }
    bool unchanged = true;
    if (mode == CHECKED) {
        __threadfence_system();
        unchanged = counts[2 * bucket] == seq;
    }
    if (!__all_sync(tile_mask, unchanged)) return;
    for (int v = 0; v < 4; v++) {
        int d = lane + v * SLOTS;
        if (d < dim / 4) dev_row[d] = part[v];
    }
}

static long arg(int argc, char** argv, const char* name, long fallback) {
    for (int i = 1; i + 1 < argc; i++) {
        if (std::strcmp(argv[i], name) == 0) {
            char* end = nullptr;
            long v = std::strtol(argv[i + 1], &end, 10);
            if (end == argv[i + 1] || *end != '\0' || v <= 0) {
                std::fprintf(stderr, "pcie_row_reads: %s takes a positive integer, not '%s'\n", name, argv[i + 1]);
                std::exit(2);
            }
            return v;
        }
    }
    return fallback;
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; i += 2) {
        if (std::strcmp(argv[i], "--slots") && std::strcmp(argv[i], "--queries") && std::strcmp(argv[i], "--dim") &&
            std::strcmp(argv[i], "--reps")) {
            std::fprintf(stderr, "pcie_row_reads: unknown option '%s' (--slots, --queries, --dim, --reps)\n", argv[i]);
            return 2;
        }
    }
    long slots = arg(argc, argv, "--slots", 2796208) / SLOTS * SLOTS;
    long queries = arg(argc, argv, "--queries", 524288);
    int dim = (int)arg(argc, argv, "--dim", 64);
    int reps = (int)arg(argc, argv, "--reps", 20);
    if (dim % 4 != 0 || dim > 4 * 4 * SLOTS || slots < SLOTS) {
        std::fprintf(stderr, "pcie_row_reads: --dim must be a multiple of 4 up to %d, --slots at least %d\n",
                     4 * 4 * SLOTS, SLOTS);
        return 2;
    }
    long buckets = slots / SLOTS;
    size_t row_bytes = (size_t)dim * sizeof(float);
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    CHECK(cudaSetDeviceFlags(cudaDeviceMapHost));

    uint64_t *h_keys, *h_counts;
    float* h_values;
    CHECK(cudaHostAlloc(&h_keys, slots * sizeof(uint64_t), cudaHostAllocMapped));
    CHECK(cudaHostAlloc(&h_counts, buckets * 2 * sizeof(uint64_t), cudaHostAllocMapped));
    CHECK(cudaHostAlloc(&h_values, slots * row_bytes, cudaHostAllocMapped));
    for (long s = 0; s < slots; s++) h_keys[s] = s + 1;
    std::memset(h_counts, 0, buckets * 2 * sizeof(uint64_t));
    for (long i = 0; i < slots * dim; i++) h_values[i] = (float)(i / dim);
    uint64_t *d_keys, *d_counts;
    float* d_values;
    CHECK(cudaHostGetDevicePointer((void**)&d_keys, h_keys, 0));
    CHECK(cudaHostGetDevicePointer((void**)&d_counts, h_counts, 0));
    CHECK(cudaHostGetDevicePointer((void**)&d_values, h_values, 0));

    std::vector<uint64_t> picks(queries);
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<uint64_t> any(0, slots - 1);
    for (auto& p : picks) p = any(rng);
    uint64_t* d_query;
    uint64_t* d_keys_in_hbm;
    float *d_out, *d_table, *d_copy;
    unsigned long long* d_misses;
    CHECK(cudaMalloc(&d_query, queries * sizeof(uint64_t)));
    CHECK(cudaMalloc(&d_out, queries * row_bytes));
    CHECK(cudaMalloc(&d_copy, queries * row_bytes));
    CHECK(cudaMalloc(&d_table, slots * row_bytes));
    CHECK(cudaMalloc(&d_keys_in_hbm, slots * sizeof(uint64_t)));
    CHECK(cudaMemcpy(d_keys_in_hbm, h_keys, slots * sizeof(uint64_t), cudaMemcpyHostToDevice));
    CHECK(cudaMalloc(&d_misses, sizeof(unsigned long long)));
    CHECK(cudaMemcpy(d_query, picks.data(), queries * sizeof(uint64_t), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d_table, h_values, slots * row_bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(d_misses, 0, sizeof(unsigned long long)));

    cudaStream_t stream;
    cudaEvent_t start, stop;
    CHECK(cudaStreamCreate(&stream));
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    long grid = (queries * SLOTS + BLOCK - 1) / BLOCK;
    auto time = [&](auto launch) {
        std::vector<float> ms;
        for (int r = 0; r < reps + 3; r++) {
            CHECK(cudaEventRecord(start, stream));
            launch();
            CHECK(cudaGetLastError());
            CHECK(cudaEventRecord(stop, stream));
            CHECK(cudaEventSynchronize(stop));
            float m;
            CHECK(cudaEventElapsedTime(&m, start, stop));
            if (r >= 3) ms.push_back(m);
        }
        std::sort(ms.begin(), ms.end());
        return ms[ms.size() / 2];
    };
    std::printf("pcie_row_reads: %s, %ld slots of dim %d in mapped host memory (%.0f MB of rows), %ld random "
                "queries, median of %d launches\n",
                prop.name, slots, dim, slots * row_bytes / 1e6, queries, reps);
    std::printf("| access | ms | rows/s | row GB/s | a 1M-key read with half its keys this way, keys/s |\n");
    std::printf("|---|---|---|---|---|\n");
    auto row = [&](const char* name, float ms) {
        double rows_per_s = queries / (ms * 1e-3);
        std::printf("| %s | %.3f | %.1fM | %.1f | %.1fM |\n", name, ms, rows_per_s / 1e6,
                    rows_per_s * row_bytes / 1e9, 2.0 * rows_per_s / 1e6);
    };
    const char* names[] = {"row", "keys+row", "count+keys+row", "checked", "row write", "keys, claimed row write"};
    for (int mode = ROW; mode <= CLAIMED_WRITE; mode++) {
        row(names[mode], time([&] {
                probe<<<grid, BLOCK, 0, stream>>>(d_query, queries, mode, d_keys, d_counts, d_values, dim, d_out,
                                                  d_misses);
            }));
    }
    row("HBM keys+row", time([&] {
            probe<<<grid, BLOCK, 0, stream>>>(d_query, queries, KEYS_ROW, d_keys_in_hbm, d_counts, d_values, dim,
                                              d_out, d_misses);
        }));
    row("HBM keys, claimed row write", time([&] {
            probe<<<grid, BLOCK, 0, stream>>>(d_query, queries, CLAIMED_WRITE, d_keys_in_hbm, d_counts, d_values, dim,
                                              d_out, d_misses);
        }));
    row("copy (contiguous)", time([&] {
            CHECK(cudaMemcpyAsync(d_copy, h_values, queries * row_bytes, cudaMemcpyHostToDevice, stream));
        }));
    row("row, table in device memory", time([&] {
            probe<<<grid, BLOCK, 0, stream>>>(d_query, queries, ROW, d_keys, d_counts, d_table, dim, d_out,
                                              d_misses);
        }));
    unsigned long long misses;
    CHECK(cudaMemcpy(&misses, d_misses, sizeof(misses), cudaMemcpyDeviceToHost));
    // Every query names a slot that holds its key: a miss means the probe read a wrong key.
    std::vector<float> got(dim);
    long q = queries / 2;
    CHECK(cudaMemcpy(got.data(), d_out + q * dim, row_bytes, cudaMemcpyDeviceToHost));
    bool rows_ok = got[0] == (float)picks[q] && got[dim - 1] == (float)picks[q];
    std::printf("misses %llu (must be 0), a row read back %s\n", misses, rows_ok ? "intact" : "WRONG");
    CHECK(cudaFreeHost(h_keys));
    CHECK(cudaFreeHost(h_counts));
    CHECK(cudaFreeHost(h_values));
    return misses == 0 && rows_ok ? 0 : 1;
}
