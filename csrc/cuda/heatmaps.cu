// CUDA heatmaps and sparse motion: one thread per output pixel of one map.
#include "../common/math.h"
#include "check.cuh"

namespace chatanyone {
namespace {

__global__ void heatmaps_kernel(HeatmapParams p) {
  const long long hw = p.H * p.W, total = p.N * p.K * hw;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long m = i / hw, r = i - m * hw, y = r / p.W, x = r - y * p.W;
    const float wk = p.weights ? p.weights[m] : 1.f;
    const float gx = gauss_axis(pixel_center(x, p.W), p.kp[2 * m], p.inv_two_sigma2);
    const float gy = gauss_axis(pixel_center(y, p.H), p.kp[2 * m + 1], p.inv_two_sigma2);
    p.out[i] = (wk * gy) * gx;  // same association as the CPU loop
  }
}

__global__ void sparse_motion_kernel(SparseMotionParams p) {
  const long long hw = p.H * p.W, K1 = p.K + 1, total = p.N * K1 * hw;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long m = i / hw, r = i - m * hw, y = r / p.W, x = r - y * p.W;
    const long long n = m / K1, ch = m - n * K1;
    const float cx = pixel_center(x, p.W), cy = pixel_center(y, p.H);
    if (ch == 0) {
      p.heatmap_diff[i] = 0.f;
      p.grids[2 * i] = cx;
      p.grids[2 * i + 1] = cy;
      continue;
    }
    const long long j = n * p.K + ch - 1;
    const float wk = p.weights ? p.weights[j] : 1.f;
    const float* kd = p.kp_driving + 2 * j;
    const float* ks = p.kp_source + 2 * j;
    const float fd = wk * gauss_axis(cy, kd[1], p.inv_two_sigma2);
    const float fs = wk * gauss_axis(cy, ks[1], p.inv_two_sigma2);
    p.heatmap_diff[i] = fd * gauss_axis(cx, kd[0], p.inv_two_sigma2) -
                        fs * gauss_axis(cx, ks[0], p.inv_two_sigma2);
    p.grids[2 * i] = cx + (ks[0] - kd[0]);
    p.grids[2 * i + 1] = cy + (ks[1] - kd[1]);
  }
}

}  // namespace

const char* heatmaps_cuda(const HeatmapParams& p) {
  const long long total = p.N * p.K * p.H * p.W;
  if (total == 0) return "";
  heatmaps_kernel<<<blocks_for(total, 256), 256>>>(p);
  return finish_launch();
}

const char* sparse_motion_cuda(const SparseMotionParams& p) {
  const long long total = p.N * (p.K + 1) * p.H * p.W;
  if (total == 0) return "";
  sparse_motion_kernel<<<blocks_for(total, 256), 256>>>(p);
  return finish_launch();
}

}  // namespace chatanyone
