// Helpers shared by the project's kernels.
#pragma once

#define FULL_MASK 0xffffffffu
#define NO_ROW 0xffffffffu

// Sum over the 32 lanes of a warp; every lane gets the total.
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    }
    return v;
}

// The order of neighbour candidates: by distance, ties broken by the lower row, as the CPU
// reference orders them.
__device__ __forceinline__ bool before(float d, unsigned i, float other_d, unsigned other_i) {
    return d < other_d || (d == other_d && i < other_i);
}

// The index of this thread's warp in the grid, and its lane.
__device__ __forceinline__ unsigned global_warp() {
    return (blockIdx.x * blockDim.x + threadIdx.x) / 32;
}
__device__ __forceinline__ unsigned lane_id() {
    return threadIdx.x % 32;
}
