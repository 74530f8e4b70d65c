// CPU mesh_flow: bounding-box scanline rasterization in two passes.
//   setup  every triangle once (snap, orient, box; common/mesh.h);
//   pass 1 the image is cut into bands of rows, one task per band: each band walks the triangles
//          binned to it and, row by row, the span of covered columns (exact integer solve), keeping
//          the smallest key (depth, then larger triangle index) per pixel. Bands own their pixels,
//          so no atomics are needed, and the result does not depend on the order or the threads;
//   pass 2 each pixel turns its key into the barycentric interpolation of the source vertices.
// Pass 1 keeps its 64-bit keys in the grid buffer itself (8 bytes per pixel, like one (x, y)
// pair), read and written with memcpy so no aliasing rule is broken.
#include <algorithm>
#include <cstring>
#include <vector>

#include "../common/mesh.h"
#include "parallel.h"

namespace chatanyone {
namespace {

constexpr int64_t kBandRows = 8;  // rows per pass-1 task: small enough to balance a face-sized cluster

inline uint64_t load_key(const float* g) {
  uint64_t k;
  std::memcpy(&k, g, 8);
  return k;
}
inline void store_key(float* g, uint64_t k) { std::memcpy(g, &k, 8); }

}  // namespace

void mesh_flow_cpu(const MeshFlowParams& p) {
  const int64_t H = p.H, W = p.W, T = p.T;
  if (H * W == 0) return;
  std::vector<MeshTri> tris(size_t(std::max<int64_t>(T, 1)));
  std::vector<char> valid(size_t(std::max<int64_t>(T, 1)), 0);
  parallel_for(T, 256, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) valid[t] = mesh_tri_setup(p, t, &tris[t]);
  });

  // Bin the triangles by band (counting sort, ascending triangle index inside a band).
  const int64_t n_bands = (H + kBandRows - 1) / kBandRows;
  std::vector<int64_t> start(n_bands + 1, 0);
  for (int64_t t = 0; t < T; ++t)
    if (valid[t])
      for (int64_t b = tris[t].y0 / kBandRows; b <= tris[t].y1 / kBandRows; ++b) ++start[b + 1];
  for (int64_t b = 0; b < n_bands; ++b) start[b + 1] += start[b];
  std::vector<int32_t> binned(size_t(start[n_bands]));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t t = 0; t < T; ++t)
      if (valid[t])
        for (int64_t b = tris[t].y0 / kBandRows; b <= tris[t].y1 / kBandRows; ++b) binned[fill[b]++] = int32_t(t);
  }

  // Pass 1 and pass 2 per band: the band's pixels are finished by the task that keyed them.
  parallel_for(n_bands, 1, [&](int64_t bb, int64_t be) {
    for (int64_t band = bb; band < be; ++band) {
      const int64_t r0 = band * kBandRows, r1 = std::min(H, r0 + kBandRows);
      float* g = p.grid;
      for (int64_t q = r0 * W; q < r1 * W; ++q) store_key(g + 2 * q, kMeshEmpty);
      for (int64_t n = start[band]; n < start[band + 1]; ++n) {
        const int64_t t = binned[n];
        const MeshTri& m = tris[t];
        const int64_t i0 = std::max<int64_t>(r0, m.y0), i1 = std::min<int64_t>(r1 - 1, m.y1);
        for (int64_t i = i0; i <= i1; ++i) {
          int64_t lo, hi;
          mesh_row_span(m, i, &lo, &hi);
          float* row = g + 2 * i * W;
          if (!p.depth) {  // one key for the whole triangle
            const uint64_t key = mesh_key(0.f, t);
            for (int64_t j = lo; j <= hi; ++j)
              if (key < load_key(row + 2 * j)) store_key(row + 2 * j, key);
          } else {
            for (int64_t j = lo; j <= hi; ++j) {
              const uint64_t key = mesh_pixel_key(p, m, t, j, i);  // inside the span, never empty
              if (key < load_key(row + 2 * j)) store_key(row + 2 * j, key);
            }
          }
        }
      }
      for (int64_t i = r0; i < r1; ++i) {
        for (int64_t j = 0; j < W; ++j) {
          float* gp = g + 2 * (i * W + j);
          const uint64_t key = load_key(gp);
          mesh_resolve(p, key == kMeshEmpty ? nullptr : &tris[mesh_key_triangle(key)], j, i, gp, p.mask + i * W + j);
        }
      }
    }
  });
}

}  // namespace chatanyone
