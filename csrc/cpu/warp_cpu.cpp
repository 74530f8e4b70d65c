// CPU grid sampling. Output pixels are processed in tiles: the taps (offsets and weights) of a
// tile are computed once into a small buffer (vectorized), then each channel is sampled over the
// tile. One channel plane at a time matters: planes are often a multiple of 4 KiB apart, and
// touching all C planes per pixel thrashed the L1 sets (2.5x slower).
#include <algorithm>

#include "../common/math.h"
#include "parallel.h"

namespace chatanyone {
namespace {

constexpr int kTile = 256;  // pixels per tile: taps buffer of 8*256*8 B = 16 KiB fits L1

#if defined(__x86_64__) && defined(__GNUC__)
#define CA_X86 1
#endif

// Gather-multiply-add of one channel over a tile: dst[i] = sum_k w[k][i] * src[off[k][i]].
// Bound by loads (T taps + T offsets + T weights per sample). Measured on Zen 4 and kept out on
// purpose: AVX2/AVX-512 hardware gathers (no faster), 2-8 channels per pass sharing the offset and
// weight loads (slower: planes 4 KiB-multiples apart collide in L1 sets), and one base offset per
// 2x2 patch instead of four (no faster, slower in 3-D).
template <int T>
void sample_channel(const float* __restrict src, const int32_t* __restrict off, const float* __restrict w,
                    float* __restrict dst, int n) {
  for (int i = 0; i < n; ++i) {
    float acc = 0.f;
    for (int k = 0; k < T; ++k) acc += w[k * kTile + i] * src[off[k * kTile + i]];
    dst[i] = acc;
  }
}

// The taps of a tile, cloned per ISA so floorf and the selects become vector instructions.
template <int NDIM, bool MASK>
#ifdef CA_X86
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void tile_taps(const AxisMap mx, const AxisMap my, const AxisMap mz, const float* __restrict g,
               const float* __restrict mask, int cnt, int32_t* __restrict off, float* __restrict w) {
  constexpr int T = NDIM == 2 ? 4 : 8;
  for (int i = 0; i < cnt; ++i) {
    int32_t o[T];
    float ww[T];
    if constexpr (NDIM == 2) {
      taps_2d(g[2 * i], g[2 * i + 1], mx, my, o, ww);
    } else {
      taps_3d(g[3 * i], g[3 * i + 1], g[3 * i + 2], mx, my, mz, o, ww);
    }
    for (int k = 0; k < T; ++k) {
      off[k * kTile + i] = o[k];
      w[k * kTile + i] = MASK ? ww[k] * mask[i] : ww[k];  // fused mask, folded into the weights
    }
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
  const AxisMap mx = axis_map(p.W, p.align_corners, p.padding);
  const AxisMap my = axis_map(p.H, p.align_corners, p.padding);
  const AxisMap mz = axis_map(p.D, p.align_corners, p.padding);
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    const int64_t n = t / tiles_per_n, q0 = (t - n * tiles_per_n) * kTile;
    const int cnt = int(std::min<int64_t>(kTile, out_plane - q0));
    const float* g = grid + (n * out_plane + q0) * NDIM;
    const float* mk = mask ? mask + n * out_plane + q0 : nullptr;
    const float* src = in + n * p.C * in_plane;
    float* dst = out + n * p.C * out_plane + q0;
    if (mk) tile_taps<NDIM, true>(mx, my, mz, g, mk, cnt, off, w);
    else tile_taps<NDIM, false>(mx, my, mz, g, nullptr, cnt, off, w);
    for (int64_t c = 0; c < p.C; ++c, src += in_plane, dst += out_plane) sample_channel<T>(src, off, w, dst, cnt);
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
