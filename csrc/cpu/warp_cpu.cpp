// CPU grid sampling. Output pixels are processed in tiles: the taps (offsets and weights) of a
// tile are computed once into a small buffer, then every channel is sampled tile-wise. Working on
// one channel plane at a time matters: planes are often a multiple of 4 KiB apart, and touching
// all C planes per pixel thrashes the L1 sets (this was 2.5x slower).
#include <algorithm>

#include "../common/math.h"
#include "parallel.h"

namespace chatanyone {
namespace {

constexpr int kTile = 256;  // pixels per tile: taps buffer of 8*256*8 B = 16 KiB fits L1

// Gather-multiply-add of one channel over a tile. Compiled for AVX-512, AVX2 and baseline x86-64
// and picked at load time (ifunc), so one portable wheel still uses the hardware gathers.
template <int T>
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
void sample_tile(const float* __restrict src, const int32_t* __restrict off, const float* __restrict w,
                 float* __restrict dst, int n) {
  for (int i = 0; i < n; ++i) {
    float s = 0.f;
    for (int k = 0; k < T; ++k) s += w[k * kTile + i] * src[off[k * kTile + i]];
    dst[i] = s;
  }
}

template <int NDIM>
void warp_tiles(const WarpParams& p, int64_t tile_begin, int64_t tile_end) {
  constexpr int T = NDIM == 2 ? 4 : 8;
  const float* in = static_cast<const float*>(p.input);
  const float* grid = static_cast<const float*>(p.grid);
  const float* mask = static_cast<const float*>(p.mask);
  float* out = static_cast<float*>(p.out);
  const int64_t in_plane = p.D * p.H * p.W;
  const int64_t out_plane = p.Do * p.Ho * p.Wo;
  const int64_t tiles_per_n = (out_plane + kTile - 1) / kTile;
  alignas(64) int32_t off[T * kTile];
  alignas(64) float w[T * kTile];
  int32_t o[T];
  float ww[T];
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    const int64_t n = t / tiles_per_n, q0 = (t - n * tiles_per_n) * kTile;
    const int cnt = int(std::min<int64_t>(kTile, out_plane - q0));
    const float* g = grid + (n * out_plane + q0) * NDIM;
    for (int i = 0; i < cnt; ++i, g += NDIM) {
      if constexpr (NDIM == 2) {
        taps_2d(g[0], g[1], p.H, p.W, p.align_corners, p.padding, o, ww);
      } else {
        taps_3d(g[0], g[1], g[2], p.D, p.H, p.W, p.align_corners, p.padding, o, ww);
      }
      const float m = mask ? mask[n * out_plane + q0 + i] : 1.f;  // fused mask, folded in
      for (int k = 0; k < T; ++k) {
        off[k * kTile + i] = o[k];
        w[k * kTile + i] = ww[k] * m;
      }
    }
    const float* src = in + n * p.C * in_plane;
    float* dst = out + n * p.C * out_plane + q0;
    for (int64_t c = 0; c < p.C; ++c, src += in_plane, dst += out_plane) sample_tile<T>(src, off, w, dst, cnt);
  }
}

}  // namespace

void warp_cpu(const WarpParams& p) {
  const int64_t out_plane = p.Do * p.Ho * p.Wo;
  const int64_t tiles = p.N * ((out_plane + kTile - 1) / kTile);
  // Enough tiles per chunk that each chunk is ~32k channel-samples of work.
  const int64_t grain = std::max<int64_t>(1, 32768 / (kTile * std::max<int64_t>(1, p.C)));
  if (p.ndim == 2) {
    parallel_for(tiles, grain, [&](int64_t b, int64_t e) { warp_tiles<2>(p, b, e); });
  } else {
    parallel_for(tiles, grain, [&](int64_t b, int64_t e) { warp_tiles<3>(p, b, e); });
  }
}

}  // namespace chatanyone
