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

// What the inner loops need of one triangle besides its MeshTri: vertex 0's values and the
// differences to vertices 1 and 2 (mesh_lerp3's arguments, so the rounding is mesh_interp's,
// the CUDA kernel's), and the per-column steps of edge functions 1 and 2.
struct TriAttr {
  float z0, dz1, dz2;    // depth (0 when none)
  float sx0, dsx1, dsx2;  // source x
  float sy0, dsy1, dsy2;  // source y
  int64_t step1, step2;  // w_k(j + 1) - w_k(j)
};

TriAttr tri_attr(const MeshFlowParams& p, const MeshTri& m) {
  TriAttr a{};
  const float* s = p.src;
  const int32_t v0 = m.v[0], v1 = m.v[1], v2 = m.v[2];
  if (p.depth) {
    a.z0 = p.depth[v0];
    a.dz1 = p.depth[v1] - a.z0;
    a.dz2 = p.depth[v2] - a.z0;
  }
  a.sx0 = s[2 * v0];
  a.dsx1 = s[2 * v1] - a.sx0;
  a.dsx2 = s[2 * v2] - a.sx0;
  a.sy0 = s[2 * v0 + 1];
  a.dsy1 = s[2 * v1 + 1] - a.sy0;
  a.dsy2 = s[2 * v2 + 1] - a.sy0;
  a.step1 = mesh_edge(m, 1, 1, 0) - mesh_edge(m, 1, 0, 0);
  a.step2 = mesh_edge(m, 2, 1, 0) - mesh_edge(m, 2, 0, 0);
  return a;
}

}  // namespace

void mesh_flow_cpu(const MeshFlowParams& p) {
  const int64_t H = p.H, W = p.W, T = p.T;
  if (H * W == 0) return;
  std::vector<MeshTri> tris(size_t(std::max<int64_t>(T, 1)));
  std::vector<TriAttr> attrs(size_t(std::max<int64_t>(T, 1)));
  std::vector<char> valid(size_t(std::max<int64_t>(T, 1)), 0);
  parallel_for(T, 256, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      valid[t] = mesh_tri_setup(p, t, &tris[t]);
      if (valid[t]) attrs[t] = tri_attr(p, tris[t]);
    }
  });
  std::vector<float> cx(W);  // identity x of each column (pixel_center, as the CUDA kernel has it)
  for (int64_t j = 0; j < W; ++j) cx[j] = pixel_center(j, W);

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
    float* g = p.grid;
    for (int64_t band = bb; band < be; ++band) {
      const int64_t r0 = band * kBandRows, r1 = std::min(H, r0 + kBandRows);
      for (int64_t q = r0 * W; q < r1 * W; ++q) store_key(g + 2 * q, kMeshEmpty);
      for (int64_t n = start[band]; n < start[band + 1]; ++n) {
        const int64_t t = binned[n];
        const MeshTri& m = tris[t];
        const TriAttr a = attrs[t];
        const int64_t i0 = std::max<int64_t>(r0, m.y0), i1 = std::min<int64_t>(r1 - 1, m.y1);
        for (int64_t i = i0; i <= i1; ++i) {
          int64_t lo, hi;
          mesh_row_span(m, i, &lo, &hi);
          float* row = g + 2 * i * W;
          if (!p.depth) {  // one key for the whole triangle
            const uint64_t key = mesh_key(0.f, t);
            for (int64_t j = lo; j <= hi; ++j)
              if (key < load_key(row + 2 * j)) store_key(row + 2 * j, key);
            continue;
          }
          // Inside the span every pixel is covered (exact): only the depth is left to compute,
          // as mesh_pixel_key does (same integers, same float operations).
          const int64_t c1 = mesh_edge(m, 1, 0, i), c2 = mesh_edge(m, 2, 0, i);
          for (int64_t j = lo; j <= hi; ++j) {
            const MeshBary l{float(c1 + a.step1 * j) * m.inv_area, float(c2 + a.step2 * j) * m.inv_area};
            const uint64_t key = mesh_key(mesh_lerp3(l, a.z0, a.dz1, a.dz2), t);
            if (key < load_key(row + 2 * j)) store_key(row + 2 * j, key);
          }
        }
      }
      // Pass 2 (mesh_resolve, with the triangle's constants kept while a row stays in it).
      for (int64_t i = r0; i < r1; ++i) {
        const float cy = pixel_center(i, H);
        float* row = g + 2 * i * W;
        float* mrow = p.mask + i * W;
        int64_t last = -1, c1 = 0, c2 = 0;
        const MeshTri* m = nullptr;
        const TriAttr* a = nullptr;
        for (int64_t j = 0; j < W; ++j) {
          const uint64_t key = load_key(row + 2 * j);
          if (key == kMeshEmpty) {
            row[2 * j] = cx[j];
            row[2 * j + 1] = cy;
            mrow[j] = 0.f;
            continue;
          }
          const int64_t t = mesh_key_triangle(key);
          if (t != last) {
            last = t;
            m = &tris[t];
            a = &attrs[t];
            c1 = mesh_edge(*m, 1, 0, i);
            c2 = mesh_edge(*m, 2, 0, i);
          }
          const MeshBary l{float(c1 + a->step1 * j) * m->inv_area, float(c2 + a->step2 * j) * m->inv_area};
          row[2 * j] = mesh_lerp3(l, a->sx0, a->dsx1, a->dsx2);
          row[2 * j + 1] = mesh_lerp3(l, a->sy0, a->dsy1, a->dsy2);
          mrow[j] = 1.f;
        }
      }
    }
  });
}

}  // namespace chatanyone
