// Per-element math written once, compiled by the host compiler for the CPU kernels and by nvcc
// for the CUDA kernels, so both backends compute the same numbers.
#pragma once
#include <math.h>
#include <stdint.h>

#include "params.h"

#if defined(__CUDACC__)
#define CA_HD __host__ __device__ __forceinline__
#else
#define CA_HD inline
#endif
#if defined(__CUDA_ARCH__)
#define CA_UNROLL _Pragma("unroll")
#else
#define CA_UNROLL  // host compilers unroll these constant-trip loops at -O3 anyway
#endif

namespace chatanyone {

// Normalized grid coordinate -> pixel coordinate, as torch.nn.functional.grid_sample does it.
// How one axis maps a normalized coordinate to a clamped pixel coordinate. Computed once per call
// so the per-element code has no branches on padding or align_corners (the CPU loop vectorizes).
struct AxisMap {
  float scale, offset;  // x = (g + 1) * scale + offset: torch's operation order, bit-equal more often
  float lo, hi;         // clamp bounds
  int32_t size;
};

CA_HD AxisMap axis_map(int64_t size, bool align_corners, Padding padding) {
  AxisMap m;
  m.scale = align_corners ? float(size - 1) * 0.5f : float(size) * 0.5f;
  m.offset = align_corners ? 0.f : -0.5f;
  // Border: clamp onto the edge pixels, as grid_sample does. Zeros: beyond [-2, size+1] every tap
  // is outside anyway; clamping keeps floorf->int defined for huge values and sends NaN to a
  // bound, which is why no grid value can index out of bounds.
  m.lo = padding == Padding::Border ? 0.f : -2.f;
  m.hi = padding == Padding::Border ? float(size - 1) : float(size) + 1.f;
  m.size = int32_t(size);
  return m;
}

// One axis of a bilinear tap: indices and weights, both zeroed where a tap falls outside [0, size).
struct AxisTap {
  int32_t i0, i1;
  float w0, w1;
};

CA_HD AxisTap axis_tap(float g, const AxisMap& m) {
  float x = (g + 1.f) * m.scale + m.offset;
  x = x > m.lo ? x : m.lo;  // written as selects, not fmaxf/fminf: NaN still goes to a bound, and
  x = x < m.hi ? x : m.hi;  // the host compiler emits maxps/minps instead of libm calls
  const float f = floorf(x);
  const int32_t i0 = int32_t(f);
  const float t = x - f;
  const bool v0 = (i0 >= 0) & (i0 < m.size);
  const bool v1 = (i0 + 1 >= 0) & (i0 + 1 < m.size);
  AxisTap a;
  a.i0 = v0 ? i0 : 0;
  a.i1 = v1 ? i0 + 1 : 0;
  a.w0 = v0 ? 1.f - t : 0.f;
  a.w1 = v1 ? t : 0.f;
  return a;
}

// Four taps of a 2-D bilinear sample: plane offsets y*W+x and weights.
CA_HD void taps_2d(float gx, float gy, const AxisMap& mx, const AxisMap& my, int32_t off[4], float w[4]) {
  const AxisTap ax = axis_tap(gx, mx);
  const AxisTap ay = axis_tap(gy, my);
  const int32_t W = mx.size;
  off[0] = ay.i0 * W + ax.i0; w[0] = ay.w0 * ax.w0;
  off[1] = ay.i0 * W + ax.i1; w[1] = ay.w0 * ax.w1;
  off[2] = ay.i1 * W + ax.i0; w[2] = ay.w1 * ax.w0;
  off[3] = ay.i1 * W + ax.i1; w[3] = ay.w1 * ax.w1;
}

// Eight taps of a 3-D trilinear sample: volume offsets (z*H+y)*W+x and weights.
CA_HD void taps_3d(float gx, float gy, float gz, const AxisMap& mx, const AxisMap& my, const AxisMap& mz,
                   int32_t off[8], float w[8]) {
  const AxisTap ax = axis_tap(gx, mx);
  const AxisTap ay = axis_tap(gy, my);
  const AxisTap az = axis_tap(gz, mz);
  const int32_t hw = my.size * mx.size, W = mx.size;
  const int32_t zs[2] = {az.i0 * hw, az.i1 * hw};
  const int32_t ys[2] = {ay.i0 * W, ay.i1 * W};
  const int32_t xs[2] = {ax.i0, ax.i1};
  const float wz[2] = {az.w0, az.w1}, wy[2] = {ay.w0, ay.w1}, wx[2] = {ax.w0, ax.w1};
  CA_UNROLL
  for (int k = 0; k < 8; ++k) {
    const int iz = k >> 2, iy = (k >> 1) & 1, ix = k & 1;
    off[k] = zs[iz] + ys[iy] + xs[ix];
    w[k] = wz[iz] * wy[iy] * wx[ix];
  }
}

// Centre of pixel j along an axis of `size` pixels in normalized coordinates (align_corners=False).
CA_HD float pixel_center(int64_t j, int64_t size) { return (2.f * float(j) + 1.f) / float(size) - 1.f; }

// One axis factor of the separable Gaussian exp(-((x-kx)^2 + (y-ky)^2) / (2 sigma^2)).
CA_HD float gauss_axis(float c, float k, float inv_two_sigma2) {
  const float d = c - k;
  return expf(-d * d * inv_two_sigma2);
}

// One element of the DDIM update (see python/chatanyone/ops/ddim.py for the formulas). The
// template arguments fix the branches, so the CPU loop over elements has none and vectorizes.
template <int P, bool UNCOND, bool NOISE, bool CLIP>
CA_HD float ddim_update_t(float x, float m, float u, float z, const DDIMCoeffs& c) {
  if (UNCOND) m = u + c.guidance * (m - u);
  float x0, eps;
  if (P == int(Prediction::Eps)) {
    eps = m;
    x0 = (x - c.sqrt_1ma * eps) * c.inv_sqrt_a;
  } else if (P == int(Prediction::V)) {
    x0 = c.sqrt_a * x - c.sqrt_1ma * m;
    eps = c.sqrt_1ma * x + c.sqrt_a * m;
  } else {
    x0 = m;
    eps = (x - c.sqrt_a * x0) * c.inv_sqrt_1ma;
  }
  if (CLIP) {
    x0 = x0 > -c.clip ? x0 : -c.clip;
    x0 = x0 < c.clip ? x0 : c.clip;
    eps = (x - c.sqrt_a * x0) * c.inv_sqrt_1ma;  // keep eps consistent with the clipped x0
  }
  float r = c.sqrt_a_prev * x0 + c.dir_coef * eps;
  if (NOISE) r += c.sigma * z;
  return r;
}

// Runtime-dispatched form (the CUDA kernel: the branches are uniform across a warp).
CA_HD float ddim_update(float x, float m, float u, float z, const DDIMCoeffs& c) {
  const bool clip = c.clip > 0.f;
#define CA_DDIM_CASE(P)                                                                       \
  if (c.has_uncond) {                                                                         \
    if (c.has_noise) return clip ? ddim_update_t<P, true, true, true>(x, m, u, z, c)          \
                                 : ddim_update_t<P, true, true, false>(x, m, u, z, c);        \
    return clip ? ddim_update_t<P, true, false, true>(x, m, u, z, c)                          \
                : ddim_update_t<P, true, false, false>(x, m, u, z, c);                        \
  }                                                                                           \
  if (c.has_noise) return clip ? ddim_update_t<P, false, true, true>(x, m, u, z, c)           \
                               : ddim_update_t<P, false, true, false>(x, m, u, z, c);         \
  return clip ? ddim_update_t<P, false, false, true>(x, m, u, z, c)                           \
              : ddim_update_t<P, false, false, false>(x, m, u, z, c);
  if (c.prediction == Prediction::Eps) { CA_DDIM_CASE(0) }
  if (c.prediction == Prediction::V) { CA_DDIM_CASE(1) }
  CA_DDIM_CASE(2)
#undef CA_DDIM_CASE
}

}  // namespace chatanyone
