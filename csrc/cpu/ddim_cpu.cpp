#include "../common/math.h"
#include "parallel.h"

namespace chatanyone {
namespace {

// x_prev may alias x exactly (the sampler updates in place): each element is read before it is
// written, so vectorizing is still correct, and ivdep tells GCC so.
template <int P, bool U, bool Z, bool CLIP>
void ddim_range(const DDIMParams& p, int64_t b, int64_t e) {
  const float* x = p.x;
  const float* m = p.model_out;
  const float* u = p.uncond;
  const float* z = p.noise;
  float* out = p.x_prev;
  const DDIMCoeffs c = p.c;
#pragma GCC ivdep
  for (int64_t i = b; i < e; ++i)
    out[i] = ddim_update_t<P, U, Z, CLIP>(x[i], m[i], U ? u[i] : 0.f, Z ? z[i] : 0.f, c);
}

template <int P>
void ddim_pred(const DDIMParams& p, int64_t b, int64_t e) {
  const bool u = p.c.has_uncond, z = p.c.has_noise, clip = p.c.clip > 0.f;
  if (u && z) return clip ? ddim_range<P, true, true, true>(p, b, e) : ddim_range<P, true, true, false>(p, b, e);
  if (u) return clip ? ddim_range<P, true, false, true>(p, b, e) : ddim_range<P, true, false, false>(p, b, e);
  if (z) return clip ? ddim_range<P, false, true, true>(p, b, e) : ddim_range<P, false, true, false>(p, b, e);
  return clip ? ddim_range<P, false, false, true>(p, b, e) : ddim_range<P, false, false, false>(p, b, e);
}

}  // namespace

void ddim_step_cpu(const DDIMParams& p) {
  parallel_for(p.numel, 1 << 16, [&](int64_t b, int64_t e) {
    if (p.c.prediction == Prediction::Eps) ddim_pred<0>(p, b, e);
    else if (p.c.prediction == Prediction::V) ddim_pred<1>(p, b, e);
    else ddim_pred<2>(p, b, e);
  });
}

}  // namespace chatanyone
