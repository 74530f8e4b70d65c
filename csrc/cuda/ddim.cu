// CUDA DDIM update: elementwise, grid-stride.
#include "../common/math.h"
#include "check.cuh"

namespace chatanyone {
namespace {

__global__ void ddim_kernel(DDIMParams p) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < p.numel;
       i += (long long)gridDim.x * blockDim.x) {
    const float u = p.uncond ? p.uncond[i] : 0.f;
    const float z = p.noise ? p.noise[i] : 0.f;
    p.x_prev[i] = ddim_update(p.x[i], p.model_out[i], u, z, p.c);
  }
}

}  // namespace

const char* ddim_step_cuda(const DDIMParams& p) {
  if (p.numel == 0) return "";
  ddim_kernel<<<blocks_for(p.numel, 256), 256>>>(p);
  return finish_launch();
}

}  // namespace chatanyone
