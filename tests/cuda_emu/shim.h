// Sequential CPU emulation of the CUDA launch model, enough to run csrc/cuda/mesh_flow.cu's kernels
// on a machine without a GPU (tests/test_cuda_emu_mesh_flow.py). Force-included before the .cu
// file, whose `kernel<<<grid, block>>>(args)` launches the test rewrites to `launch(...)`.
// Blocks run one after another, and so do a block's threads, thread 0 first: what thread 0 writes
// to __shared__ before __syncthreads() is seen by the rest, which is all mesh_flow.cu relies on.
// atomicMin becomes a plain min, which is exact here because only one thread runs at a time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __syncthreads()

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline dim3 blockIdx, threadIdx, blockDim, gridDim;

inline unsigned long long atomicMin(unsigned long long* a, unsigned long long v) {
  const unsigned long long old = *a;
  if (v < old) *a = v;
  return old;
}

typedef int cudaError_t;
constexpr int cudaSuccess = 0;
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, int) {
  std::memset(p, v, n);
  return cudaSuccess;
}
inline const char* cudaGetErrorString(cudaError_t) { return "emulated CUDA error"; }

// csrc/cuda/check.cuh's helpers
inline unsigned blocks_for(long long n, int threads) {
  const long long b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : b);
}
inline const char* finish_launch() { return ""; }

template <class K, class... A>
void launch(K kernel, dim3 grid, dim3 block, A... args) {
  gridDim = grid;
  blockDim = block;
  for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx)
      for (unsigned t = 0; t < block.x; ++t) {
        blockIdx = dim3(bx, by);
        threadIdx = dim3(t);
        kernel(args...);
      }
}
