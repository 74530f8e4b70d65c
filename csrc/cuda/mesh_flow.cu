// CUDA mesh_flow, deterministic whatever the scheduling:
//   clear   every pixel's 64-bit key to "empty" (the keys live in the grid buffer);
//   raster  one block row per triangle (blockIdx.x), split into a few chunks (blockIdx.y) that
//           stride over its bounding box; a covered pixel takes atomicMin of its key, which orders
//           by depth, then by larger triangle index, so the winner never depends on timing;
//   resolve one thread per pixel turns the key into the interpolated source position.
// The per-pixel math is common/mesh.h's, the same as the CPU's; this file is compiled with
// --fmad=false (CMakeLists.txt) so both round alike and agree bit for bit.
#include "../common/mesh.h"
#include "check.cuh"

namespace chatanyone {
namespace {

constexpr int kRasterThreads = 128;

__global__ void mesh_raster_kernel(MeshFlowParams p, unsigned long long* keys) {
  __shared__ MeshTri m;
  __shared__ bool ok;
  const long long t = blockIdx.x;
  if (threadIdx.x == 0) ok = mesh_tri_setup(p, t, &m);
  __syncthreads();
  if (!ok) return;
  const long long bw = m.x1 - m.x0 + 1, n = bw * (m.y1 - m.y0 + 1);
  for (long long k = blockIdx.y * (long long)blockDim.x + threadIdx.x; k < n;
       k += (long long)gridDim.y * blockDim.x) {
    const long long i = m.y0 + k / bw, j = m.x0 + k % bw;
    const unsigned long long key = mesh_pixel_key(p, m, t, j, i);
    unsigned long long* slot = keys + i * p.W + j;
    if (key < *slot) atomicMin(slot, key);  // the plain read skips most atomics on overdraw
  }
}

__global__ void mesh_resolve_kernel(MeshFlowParams p) {
  const long long total = p.H * p.W;
  const unsigned long long* keys = reinterpret_cast<const unsigned long long*>(p.grid);
  for (long long q = blockIdx.x * (long long)blockDim.x + threadIdx.x; q < total;
       q += (long long)gridDim.x * blockDim.x) {
    const long long i = q / p.W, j = q - i * p.W;
    const unsigned long long key = keys[q];
    MeshTri m;
    const bool covered = key != kMeshEmpty && mesh_tri_setup(p, mesh_key_triangle(key), &m);
    float g[2], mask;
    mesh_resolve(p, covered ? &m : nullptr, j, i, g, &mask);
    p.grid[2 * q] = g[0];
    p.grid[2 * q + 1] = g[1];
    p.mask[q] = mask;
  }
}

}  // namespace

const char* mesh_flow_cuda(const MeshFlowParams& p) {
  const long long total = p.H * p.W;
  if (total == 0) return "";
  unsigned long long* keys = reinterpret_cast<unsigned long long*>(p.grid);
  cudaError_t err = cudaMemsetAsync(keys, 0xFF, size_t(total) * sizeof(unsigned long long), 0);  // kMeshEmpty
  if (err != cudaSuccess) return cudaGetErrorString(err);
  if (p.T > 0) {
    // Enough chunks that a triangle as large as the image is spread over several SMs; small
    // triangles' extra blocks exit right after the setup.
    const long long chunks = total / (kRasterThreads * 64) + 1;
    const dim3 blocks(unsigned(p.T), unsigned(chunks < 32 ? chunks : 32));
    mesh_raster_kernel<<<blocks, kRasterThreads>>>(p, keys);
  }
  mesh_resolve_kernel<<<blocks_for(total, 256), 256>>>(p);
  return finish_launch();
}

}  // namespace chatanyone
