// CPU heatmaps and sparse motion. The Gaussian is separable, so each map costs H + W exps and
// H*W multiplies instead of H*W exps.
#include <algorithm>
#include <vector>

#include "../common/math.h"
#include "parallel.h"

namespace chatanyone {
namespace {

#if defined(__x86_64__) && defined(__GNUC__)
// The map loops are bound by stores; wider vectors where the CPU has them (picked at load time).
#define CA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CA_CLONES
#endif

void axis_factors(float k, int64_t size, float inv2s2, float* f) {
  for (int64_t j = 0; j < size; ++j) f[j] = gauss_axis(pixel_center(j, size), k, inv2s2);
}

// o[y, x] = (w * gy[y]) * gx[x]
CA_CLONES void outer(float* __restrict o, const float* __restrict gy, const float* __restrict gx, float w,
                     int64_t H, int64_t W) {
  for (int64_t y = 0; y < H; ++y) {
    const float fy = w * gy[y];
    for (int64_t x = 0; x < W; ++x) o[y * W + x] = fy * gx[x];
  }
}

// o[y, x] = (w * dy[y]) * dx[x] - (w * sy[y]) * sx[x]
CA_CLONES void outer_diff(float* __restrict o, const float* __restrict dy, const float* __restrict dx,
                          const float* __restrict sy, const float* __restrict sx, float w, int64_t H, int64_t W) {
  for (int64_t y = 0; y < H; ++y) {
    const float fd = w * dy[y], fs = w * sy[y];
    for (int64_t x = 0; x < W; ++x) o[y * W + x] = fd * dx[x] - fs * sx[x];
  }
}

// Grid of keypoint k: identity (pixel centres cx, cy) shifted by (sx, sy), interleaved (x, y).
CA_CLONES void shifted_grid(float* __restrict g, const float* __restrict cx, const float* __restrict cy,
                            float sx, float sy, int64_t H, int64_t W) {
  for (int64_t y = 0; y < H; ++y) {
    const float gy = cy[y] + sy;
    for (int64_t x = 0; x < W; ++x) {
      g[2 * (y * W + x)] = cx[x] + sx;
      g[2 * (y * W + x) + 1] = gy;
    }
  }
}

}  // namespace

void heatmaps_cpu(const HeatmapParams& p) {
  const int64_t maps = p.N * p.K, H = p.H, W = p.W;
  parallel_for(maps, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, H * W)), [&](int64_t b, int64_t e) {
    std::vector<float> gx(W), gy(H);
    for (int64_t i = b; i < e; ++i) {  // i = n * K + k
      const float wk = p.weights ? p.weights[i] : 1.f;
      axis_factors(p.kp[2 * i], W, p.inv_two_sigma2, gx.data());
      axis_factors(p.kp[2 * i + 1], H, p.inv_two_sigma2, gy.data());
      outer(p.out + i * H * W, gy.data(), gx.data(), wk, H, W);
    }
  });
}

void sparse_motion_cpu(const SparseMotionParams& p) {
  const int64_t K1 = p.K + 1, H = p.H, W = p.W;
  parallel_for(p.N * K1, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, H * W)), [&](int64_t b, int64_t e) {
    std::vector<float> cx(W), cy(H), dx(W), dy(H), sx(W), sy(H);
    for (int64_t x = 0; x < W; ++x) cx[x] = pixel_center(x, W);
    for (int64_t y = 0; y < H; ++y) cy[y] = pixel_center(y, H);
    for (int64_t i = b; i < e; ++i) {  // i = n * (K+1) + channel
      const int64_t n = i / K1, ch = i - n * K1;
      float* hd = p.heatmap_diff + i * H * W;
      float* gr = p.grids + i * H * W * 2;
      if (ch == 0) {  // background: no heatmap, identity grid
        std::fill(hd, hd + H * W, 0.f);
        shifted_grid(gr, cx.data(), cy.data(), 0.f, 0.f, H, W);
        continue;
      }
      const int64_t j = n * p.K + ch - 1;  // keypoint index in [N,K]
      const float wk = p.weights ? p.weights[j] : 1.f;
      const float* kd = p.kp_driving + 2 * j;
      const float* ks = p.kp_source + 2 * j;
      axis_factors(kd[0], W, p.inv_two_sigma2, dx.data());
      axis_factors(kd[1], H, p.inv_two_sigma2, dy.data());
      axis_factors(ks[0], W, p.inv_two_sigma2, sx.data());
      axis_factors(ks[1], H, p.inv_two_sigma2, sy.data());
      outer_diff(hd, dy.data(), dx.data(), sy.data(), sx.data(), wk, H, W);
      shifted_grid(gr, cx.data(), cy.data(), ks[0] - kd[0], ks[1] - kd[1], H, W);
    }
  });
}

}  // namespace chatanyone
