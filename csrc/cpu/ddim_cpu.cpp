#include "../common/math.h"
#include "parallel.h"

namespace chatanyone {

void ddim_step_cpu(const DDIMParams& p) {
  parallel_for(p.numel, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float u = p.uncond ? p.uncond[i] : 0.f;
      const float z = p.noise ? p.noise[i] : 0.f;
      p.x_prev[i] = ddim_update(p.x[i], p.model_out[i], u, z, p.c);
    }
  });
}

}  // namespace chatanyone
