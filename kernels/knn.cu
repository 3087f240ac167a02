// Exact k nearest neighbours, never holding the n x n distance matrix. The host (src/cuda.rs)
// walks blocks of queries against tiles of rows: cuBLAS computes the tile's dot products,
// then `knn_topk_tile` turns them into squared distances (less the query's own norm, the same
// for every candidate) and merges them into each query's running top-k.
#include "common.cuh"

// The most neighbours a query keeps; src/cuda.rs refuses a larger k with a clear error.
#define KNN_MAX_K 64

// Squared norm of each row of the row-major n x d matrix x: one warp per row.
extern "C" __global__ void row_norms(const float *x, int n, int d, float *norms) {
    unsigned row = global_warp();
    if (row >= (unsigned)n) return;
    const float *r = x + (size_t)row * d;
    float s = 0.0f;
    for (int t = lane_id(); t < d; t += 32) s += r[t] * r[t];
    s = warp_sum(s);
    if (lane_id() == 0) norms[row] = s;
}

// Empties `len` running top-k places.
extern "C" __global__ void knn_reset(float *best_d, unsigned *best_i, int len) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) {
        best_d[i] = __int_as_float(0x7f800000);  // +inf
        best_i[i] = NO_ROW;
    }
}

// Keeps the k first of (d, i) in the sorted list (ld, li) of length len.
__device__ __forceinline__ void keep(float *ld, unsigned *li, int &len, int k, float d,
                                     unsigned i) {
    if (len == k && !before(d, i, ld[k - 1], li[k - 1])) return;
    int p = len < k ? len : k - 1;
    while (p > 0 && before(d, i, ld[p - 1], li[p - 1])) {
        ld[p] = ld[p - 1];
        li[p] = li[p - 1];
        --p;
    }
    ld[p] = d;
    li[p] = i;
    if (len < k) ++len;
}

// One warp per query q (rows qs..qs+ql). `products` is ql x rl, row-major: the query's dot
// products with rows rs..rs+rl. `best_d`/`best_i` (ql x k, sorted) hold the query's k best so
// far and receive the merged k best. The query itself is never its own neighbour.
extern "C" __global__ void knn_topk_tile(const float *products, const float *norms, int ql,
                                         int rl, int qs, int rs, int k, float *best_d,
                                         unsigned *best_i) {
    unsigned q = global_warp();
    if (q >= (unsigned)ql) return;
    unsigned lane = lane_id();
    float ld[KNN_MAX_K];
    unsigned li[KNN_MAX_K];
    int len = 0;
    // Each lane starts from its share of the places kept so far...
    for (int j = lane; j < k; j += 32) {
        unsigned i = best_i[(size_t)q * k + j];
        if (i != NO_ROW) keep(ld, li, len, k, best_d[(size_t)q * k + j], i);
    }
    // ...takes in every 32nd row of the tile (consecutive lanes read consecutive products)...
    const float *row = products + (size_t)q * rl;
    unsigned self = qs + q;
    for (int c = lane; c < rl; c += 32) {
        unsigned i = rs + c;
        if (i == self) continue;
        float d = norms[i] - 2.0f * row[c];
        if (len < k || before(d, i, ld[len - 1], li[len - 1])) keep(ld, li, len, k, d, i);
    }
    // ...and the 32 sorted lists are merged: k rounds of a warp-wide minimum of the heads.
    int head = 0;
    for (int r = 0; r < k; ++r) {
        float d = head < len ? ld[head] : __int_as_float(0x7f800000);
        unsigned i = head < len ? li[head] : NO_ROW;
        float md = d;
        unsigned mi = i;
        for (int offset = 16; offset > 0; offset >>= 1) {
            float od = __shfl_xor_sync(FULL_MASK, md, offset);
            unsigned oi = __shfl_xor_sync(FULL_MASK, mi, offset);
            if (before(od, oi, md, mi)) {
                md = od;
                mi = oi;
            }
        }
        // Rows are unique, so exactly one lane owns a real minimum and moves on.
        if (head < len && i == mi && i != NO_ROW) ++head;
        if (lane == 0) {
            best_d[(size_t)q * k + r] = md;
            best_i[(size_t)q * k + r] = mi;
        }
    }
}
