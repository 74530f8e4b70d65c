// CPU grid sampling. Pixel-outer, channel-inner: the taps of an output pixel are computed once
// and reused for all C channels, so the per-channel cost is T loads and T multiply-adds.
#include <algorithm>

#include "../common/math.h"
#include "parallel.h"

namespace chatanyone {
namespace {

template <int NDIM>
void warp_range(const WarpParams& p, int64_t begin, int64_t end) {
  constexpr int T = NDIM == 2 ? 4 : 8;
  const float* in = static_cast<const float*>(p.input);
  const float* grid = static_cast<const float*>(p.grid);
  const float* mask = static_cast<const float*>(p.mask);
  float* out = static_cast<float*>(p.out);
  const int64_t in_plane = p.D * p.H * p.W;
  const int64_t out_plane = p.Do * p.Ho * p.Wo;
  const int64_t C = p.C;
  int32_t off[T];
  float w[T];
  for (int64_t i = begin; i < end; ++i) {  // i = n * out_plane + pixel
    const int64_t n = i / out_plane, q = i - n * out_plane;
    const float* g = grid + i * NDIM;
    if constexpr (NDIM == 2) {
      taps_2d(g[0], g[1], p.H, p.W, p.align_corners, p.padding, off, w);
    } else {
      taps_3d(g[0], g[1], g[2], p.D, p.H, p.W, p.align_corners, p.padding, off, w);
    }
    if (mask) {
      const float m = mask[i];  // fused mask multiply folded into the weights
      for (int k = 0; k < T; ++k) w[k] *= m;
    }
    const float* src = in + n * C * in_plane;
    float* dst = out + n * C * out_plane + q;
    for (int64_t c = 0; c < C; ++c, src += in_plane, dst += out_plane) {
      float s = 0.f;
      for (int k = 0; k < T; ++k) s += w[k] * src[off[k]];
      *dst = s;
    }
  }
}

}  // namespace

void warp_cpu(const WarpParams& p) {
  const int64_t total = p.N * p.Do * p.Ho * p.Wo;
  // ~16k channel-samples per chunk keeps the scheduling overhead far below the work.
  const int64_t grain = std::max<int64_t>(64, 16384 / std::max<int64_t>(1, p.C));
  if (p.ndim == 2) {
    parallel_for(total, grain, [&](int64_t b, int64_t e) { warp_range<2>(p, b, e); });
  } else {
    parallel_for(total, grain, [&](int64_t b, int64_t e) { warp_range<3>(p, b, e); });
  }
}

}  // namespace chatanyone
