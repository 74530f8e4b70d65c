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

namespace chatanyone {

// Normalized grid coordinate -> pixel coordinate, as torch.nn.functional.grid_sample does it.
// Same operation order as torch's CPU kernel, so results agree to the last bit more often.
CA_HD float unnormalize(float g, int64_t size, bool align_corners) {
  return align_corners ? (g + 1.f) * (float(size - 1) * 0.5f) : (g + 1.f) * (float(size) * 0.5f) - 0.5f;
}

// One axis of a bilinear tap: lower index i0 and the two weights, zeroed where a tap falls
// outside [0, size). Clamping first keeps floorf->int defined for huge values and NaN (fmaxf
// maps NaN to the bound), which is why no grid value can index out of bounds.
struct AxisTap {
  int32_t i0, i1;  // tap indices, already replaced by 0 where invalid
  float w0, w1;    // weights, 0 where invalid
};

CA_HD AxisTap axis_tap(float g, int64_t size, bool align_corners, Padding padding) {
  float x = unnormalize(g, size, align_corners);
  if (padding == Padding::Border) {
    x = fminf(fmaxf(x, 0.f), float(size - 1));
  } else {
    x = fminf(fmaxf(x, -2.f), float(size) + 1.f);  // beyond this every tap is outside anyway
  }
  const float f = floorf(x);
  const int32_t i0 = int32_t(f);
  const float t = x - f;
  AxisTap a;
  const bool v0 = i0 >= 0 && i0 < size;
  const bool v1 = i0 + 1 >= 0 && i0 + 1 < size;
  a.i0 = v0 ? i0 : 0;
  a.i1 = v1 ? i0 + 1 : 0;
  a.w0 = v0 ? 1.f - t : 0.f;
  a.w1 = v1 ? t : 0.f;
  return a;
}

// Four taps of a 2-D bilinear sample: plane offsets y*W+x and weights.
CA_HD void taps_2d(float gx, float gy, int64_t H, int64_t W, bool align, Padding pad,
                   int32_t off[4], float w[4]) {
  const AxisTap ax = axis_tap(gx, W, align, pad);
  const AxisTap ay = axis_tap(gy, H, align, pad);
  const int32_t w_ = int32_t(W);
  off[0] = ay.i0 * w_ + ax.i0; w[0] = ay.w0 * ax.w0;
  off[1] = ay.i0 * w_ + ax.i1; w[1] = ay.w0 * ax.w1;
  off[2] = ay.i1 * w_ + ax.i0; w[2] = ay.w1 * ax.w0;
  off[3] = ay.i1 * w_ + ax.i1; w[3] = ay.w1 * ax.w1;
}

// Eight taps of a 3-D trilinear sample: volume offsets (z*H+y)*W+x and weights.
CA_HD void taps_3d(float gx, float gy, float gz, int64_t D, int64_t H, int64_t W, bool align,
                   Padding pad, int32_t off[8], float w[8]) {
  const AxisTap ax = axis_tap(gx, W, align, pad);
  const AxisTap ay = axis_tap(gy, H, align, pad);
  const AxisTap az = axis_tap(gz, D, align, pad);
  const int32_t hw = int32_t(H * W), w_ = int32_t(W);
  const int32_t zs[2] = {az.i0 * hw, az.i1 * hw};
  const int32_t ys[2] = {ay.i0 * w_, ay.i1 * w_};
  const int32_t xs[2] = {ax.i0, ax.i1};
  const float wz[2] = {az.w0, az.w1}, wy[2] = {ay.w0, ay.w1}, wx[2] = {ax.w0, ax.w1};
#pragma unroll
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

// One element of the DDIM update (see python/chatanyone/ops/ddim.py for the formulas).
CA_HD float ddim_update(float x, float m, float u, float z, const DDIMCoeffs& c) {
  if (c.has_uncond) m = u + c.guidance * (m - u);
  float x0, eps;
  if (c.prediction == Prediction::Eps) {
    eps = m;
    x0 = (x - c.sqrt_1ma * eps) / c.sqrt_a;
  } else if (c.prediction == Prediction::V) {
    x0 = c.sqrt_a * x - c.sqrt_1ma * m;
    eps = c.sqrt_1ma * x + c.sqrt_a * m;
  } else {
    x0 = m;
    eps = (x - c.sqrt_a * x0) / c.sqrt_1ma;
  }
  if (c.clip > 0.f) {
    x0 = fminf(fmaxf(x0, -c.clip), c.clip);
    eps = (x - c.sqrt_a * x0) / c.sqrt_1ma;  // keep eps consistent with the clipped x0
  }
  float r = c.sqrt_a_prev * x0 + c.dir_coef * eps;
  if (c.has_noise) r += c.sigma * z;
  return r;
}

}  // namespace chatanyone
