// CUDA grid sampling: one thread per output pixel, looping over channels so the taps are
// computed once; neighbouring threads write neighbouring pixels (coalesced stores).
#include <cuda_fp16.h>

#include "../common/math.h"
#include "check.cuh"

namespace chatanyone {
namespace {

__device__ __forceinline__ float load(const float* p, long long i) { return __ldg(p + i); }
__device__ __forceinline__ float load(const __half* p, long long i) { return __half2float(p[i]); }
__device__ __forceinline__ void store(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, long long i, float v) { p[i] = __float2half(v); }

template <typename T, int NDIM>
__global__ void warp_kernel(WarpParams p) {
  constexpr int K = NDIM == 2 ? 4 : 8;
  const long long out_plane = p.Do * p.Ho * p.Wo;
  const long long total = p.N * out_plane;
  const T* in = static_cast<const T*>(p.input);
  const T* grid = static_cast<const T*>(p.grid);
  const T* mask = static_cast<const T*>(p.mask);
  T* out = static_cast<T*>(p.out);
  const long long in_plane = p.D * p.H * p.W;
  const AxisMap mx = axis_map(p.W, p.align_corners, p.padding);
  const AxisMap my = axis_map(p.H, p.align_corners, p.padding);
  const AxisMap mz = axis_map(p.D, p.align_corners, p.padding);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long n = i / out_plane, q = i - n * out_plane;
    int32_t off[K];
    float w[K];
    if constexpr (NDIM == 2) {
      taps_2d(load(grid, 2 * i), load(grid, 2 * i + 1), mx, my, off, w);
    } else {
      taps_3d(load(grid, 3 * i), load(grid, 3 * i + 1), load(grid, 3 * i + 2), mx, my, mz, off, w);
    }
    if (mask) {
      const float m = load(mask, i);
#pragma unroll
      for (int k = 0; k < K; ++k) w[k] *= m;
    }
    const T* src = in + n * p.C * in_plane;
    for (long long c = 0; c < p.C; ++c, src += in_plane) {
      float s = 0.f;
#pragma unroll
      for (int k = 0; k < K; ++k) s += w[k] * load(src, off[k]);
      store(out, (n * p.C + c) * out_plane + q, s);
    }
  }
}

template <typename T>
void launch(const WarpParams& p) {
  const long long total = p.N * p.Do * p.Ho * p.Wo;
  const int threads = 256;
  const unsigned blocks = blocks_for(total, threads);
  if (p.ndim == 2) warp_kernel<T, 2><<<blocks, threads>>>(p);
  else warp_kernel<T, 3><<<blocks, threads>>>(p);
}

}  // namespace

const char* warp_cuda(const WarpParams& p) {
  if (p.N * p.Do * p.Ho * p.Wo == 0) return "";
  if (p.dtype == DType::F16) launch<__half>(p);
  else launch<float>(p);
  return finish_launch();
}

}  // namespace chatanyone
