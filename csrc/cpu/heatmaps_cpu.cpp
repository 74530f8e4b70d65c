// CPU heatmaps and sparse motion. The Gaussian is separable, so each map costs H + W exps and
// H*W multiplies instead of H*W exps.
#include <vector>

#include "../common/math.h"
#include "parallel.h"

namespace chatanyone {
namespace {

void axis_factors(float k, int64_t size, float inv2s2, float* f) {
  for (int64_t j = 0; j < size; ++j) f[j] = gauss_axis(pixel_center(j, size), k, inv2s2);
}

}  // namespace

void heatmaps_cpu(const HeatmapParams& p) {
  const int64_t maps = p.N * p.K, H = p.H, W = p.W;
  parallel_for(maps, std::max<int64_t>(1, 4096 / (H * W)), [&](int64_t b, int64_t e) {
    std::vector<float> gx(W), gy(H);
    for (int64_t i = b; i < e; ++i) {  // i = n * K + k
      const float wk = p.weights ? p.weights[i] : 1.f;
      axis_factors(p.kp[2 * i], W, p.inv_two_sigma2, gx.data());
      axis_factors(p.kp[2 * i + 1], H, p.inv_two_sigma2, gy.data());
      float* o = p.out + i * H * W;
      for (int64_t y = 0; y < H; ++y) {
        const float fy = wk * gy[y];
        for (int64_t x = 0; x < W; ++x) o[y * W + x] = fy * gx[x];
      }
    }
  });
}

void sparse_motion_cpu(const SparseMotionParams& p) {
  const int64_t K1 = p.K + 1, H = p.H, W = p.W;
  parallel_for(p.N * K1, std::max<int64_t>(1, 4096 / (H * W)), [&](int64_t b, int64_t e) {
    std::vector<float> cx(W), cy(H), dx(W), dy(H), sx(W), sy(H);
    for (int64_t x = 0; x < W; ++x) cx[x] = pixel_center(x, W);
    for (int64_t y = 0; y < H; ++y) cy[y] = pixel_center(y, H);
    for (int64_t i = b; i < e; ++i) {  // i = n * (K+1) + channel
      const int64_t n = i / K1, ch = i - n * K1;
      float* hd = p.heatmap_diff + i * H * W;
      float* gr = p.grids + i * H * W * 2;
      if (ch == 0) {  // background: no heatmap, identity grid
        for (int64_t y = 0; y < H; ++y)
          for (int64_t x = 0; x < W; ++x) {
            hd[y * W + x] = 0.f;
            gr[2 * (y * W + x)] = cx[x];
            gr[2 * (y * W + x) + 1] = cy[y];
          }
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
      const float shift_x = ks[0] - kd[0], shift_y = ks[1] - kd[1];
      for (int64_t y = 0; y < H; ++y) {
        const float fd = wk * dy[y], fs = wk * sy[y], gy = cy[y] + shift_y;
        for (int64_t x = 0; x < W; ++x) {
          hd[y * W + x] = fd * dx[x] - fs * sx[x];
          gr[2 * (y * W + x)] = cx[x] + shift_x;
          gr[2 * (y * W + x) + 1] = gy;
        }
      }
    }
  });
}

}  // namespace chatanyone
