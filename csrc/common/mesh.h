// Per-pixel math of mesh_flow (triangle rasterization into a flow field), written once for the
// CPU kernel, the CUDA kernel and nothing else (kept out of math.h so editing it rebuilds only
// the mesh_flow sources).
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "math.h"

namespace chatanyone {

// Vertices are snapped to 1/256 pixel (as GPU rasterizers do), so the coverage test is exact
// integer arithmetic: shared edges are covered exactly once and the CPU, the CUDA kernel and the
// numpy reference agree bit for bit on which pixel belongs to which triangle. Both the .cpp and
// the .cu file that include this are compiled without FMA contraction (see CMakeLists.txt), so
// depths and grids are bit-identical on both backends too.

constexpr double kMeshGuardPx = 1048576.0;  // |vertex| <= 2^20 px: edge functions fit in int64
constexpr uint64_t kMeshEmpty = ~uint64_t(0);  // pass-1 key of a pixel no triangle covers

// Normalized coordinate -> pixel coordinate (pixel i's centre at i) in 1/256 px, rounded to
// nearest. Written in double so the snapped value is the same on every backend (and in numpy).
// False when the vertex is not finite or lies beyond the guard band.
CA_HD bool mesh_snap(float v, int64_t size, int64_t* out) {
  const double q = (double(v) + 1.0) * (0.5 * double(size)) - 0.5;
  if (!(fabs(q) <= kMeshGuardPx)) return false;
  *out = int64_t(floor(q * 256.0 + 0.5));
  return true;
}

// floor(a / b) and ceil(a / b) for b > 0 (C++ division truncates toward zero).
CA_HD int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
CA_HD int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// One triangle after setup: vertices in 1/256 px ordered so that `area` > 0 (y points down).
// Edge k runs from vertex k+1 to vertex k+2 (mod 3); its edge function at a point P is
// w_k = (b - a) x (P - a), and w_0 + w_1 + w_2 = area, so w_k / area is vertex k's barycentric.
struct MeshTri {
  int64_t x[3], y[3];
  int64_t area;       // twice the signed area, in (1/256 px)^2, > 0
  int64_t bias[3];    // P is on edge k's inner side when w_k >= bias[k]: 0 on top/left edges, else 1
  float inv_area;     // 1 / float(area), the same on every backend (IEEE division)
  int32_t v[3];       // vertex indices, in the order above
  int32_t x0, x1, y0, y1;  // pixel bounding box clipped to the image, inclusive
};

// Set up triangle t. False (skip it) when an index is out of range, a vertex is not finite or
// beyond the guard band, the snapped triangle has zero area, or its box misses the image.
CA_HD bool mesh_tri_setup(const MeshFlowParams& p, int64_t t, MeshTri* m) {
  int32_t v[3];
  for (int k = 0; k < 3; ++k) {
    v[k] = p.tris[3 * t + k];
    if (v[k] < 0 || int64_t(v[k]) >= p.V) return false;
  }
  int64_t x[3], y[3];
  for (int k = 0; k < 3; ++k)
    if (!mesh_snap(p.dst[2 * v[k]], p.W, &x[k]) || !mesh_snap(p.dst[2 * v[k] + 1], p.H, &y[k])) return false;
  int64_t area = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0]);
  if (area == 0) return false;
  if (area < 0) {  // either winding is accepted: swap two vertices
    int64_t tx = x[1], ty = y[1];
    int32_t tv = v[1];
    x[1] = x[2]; y[1] = y[2]; v[1] = v[2];
    x[2] = tx; y[2] = ty; v[2] = tv;
    area = -area;
  }
  int64_t xmin = x[0], xmax = x[0], ymin = y[0], ymax = y[0];
  for (int k = 1; k < 3; ++k) {
    xmin = x[k] < xmin ? x[k] : xmin; xmax = x[k] > xmax ? x[k] : xmax;
    ymin = y[k] < ymin ? y[k] : ymin; ymax = y[k] > ymax ? y[k] : ymax;
  }
  int64_t x0 = ceil_div(xmin, 256), x1 = floor_div(xmax, 256);  // pixel centres are at multiples of 256
  int64_t y0 = ceil_div(ymin, 256), y1 = floor_div(ymax, 256);
  x0 = x0 > 0 ? x0 : 0; x1 = x1 < p.W - 1 ? x1 : p.W - 1;
  y0 = y0 > 0 ? y0 : 0; y1 = y1 < p.H - 1 ? y1 : p.H - 1;
  if (x0 > x1 || y0 > y1) return false;
  for (int k = 0; k < 3; ++k) {
    m->x[k] = x[k]; m->y[k] = y[k]; m->v[k] = v[k];
    const int a = (k + 1) % 3, b = (k + 2) % 3;
    const int64_t dx = x[b] - x[a], dy = y[b] - y[a];
    // Top-left rule: with y down and area > 0 the interior lies right of a left edge (dy < 0)
    // and below a top edge (dy == 0, dx > 0). The same edge walked the other way by the
    // neighbouring triangle gets the opposite answer, so it is covered exactly once.
    m->bias[k] = (dy < 0 || (dy == 0 && dx > 0)) ? 0 : 1;
  }
  m->area = area;
  m->inv_area = 1.f / float(area);
  m->x0 = int32_t(x0); m->x1 = int32_t(x1); m->y0 = int32_t(y0); m->y1 = int32_t(y1);
  return true;
}

// Edge function k at the centre of pixel (column j, row i).
CA_HD int64_t mesh_edge(const MeshTri& m, int k, int64_t j, int64_t i) {
  const int a = (k + 1) % 3, b = (k + 2) % 3;
  return (m.x[b] - m.x[a]) * (i * 256 - m.y[a]) - (m.y[b] - m.y[a]) * (j * 256 - m.x[a]);
}

// Covered pixels of row i: columns [*lo, *hi] (empty when lo > hi). Solves w_k(j) >= bias[k],
// linear in j, per edge: the same set as testing every pixel, in a few integer divisions.
CA_HD void mesh_row_span(const MeshTri& m, int64_t i, int64_t* lo, int64_t* hi) {
  int64_t l = m.x0, h = m.x1;
  for (int k = 0; k < 3; ++k) {
    const int a = (k + 1) % 3, b = (k + 2) % 3;
    const int64_t dx = m.x[b] - m.x[a], dy = m.y[b] - m.y[a];
    const int64_t c = dx * (i * 256 - m.y[a]) + dy * m.x[a];  // w_k(j) = c - 256 dy j
    if (dy == 0) {
      if (c < m.bias[k]) h = l - 1;
    } else if (dy < 0) {  // j >= (bias - c) / (-256 dy)
      const int64_t jl = ceil_div(m.bias[k] - c, -256 * dy);
      l = jl > l ? jl : l;
    } else {  // j <= (c - bias) / (256 dy)
      const int64_t jh = floor_div(c - m.bias[k], 256 * dy);
      h = jh < h ? jh : h;
    }
  }
  *lo = l;
  *hi = h;
}

// Barycentric weights of vertices 1 and 2 at a point whose edge functions are w.
struct MeshBary {
  float l1, l2;
};
CA_HD MeshBary mesh_bary(const MeshTri& m, const int64_t w[3]) { return {float(w[1]) * m.inv_area, float(w[2]) * m.inv_area}; }

// a + l1 (b - a) + l2 (c - a): equal vertex values interpolate to exactly that value (a constant
// depth ties exactly; a constant source position stays put), and rounding is smallest near vertex
// 0. mesh_lerp3 takes the differences, so a caller may compute them once per triangle.
CA_HD float mesh_lerp3(MeshBary l, float a, float ba, float ca) { return a + (l.l1 * ba + l.l2 * ca); }
CA_HD float mesh_interp(MeshBary l, float a, float b, float c) { return mesh_lerp3(l, a, b - a, c - a); }

// Pass-1 key: smaller wins. High word: the depth in an order-preserving unsigned form (0 when no
// depth is given; NaN, reachable only through inf - inf, sorts last); low word: ~t, so that of two
// equal depths the larger triangle index wins. Never equals kMeshEmpty (t < 2^31).
CA_HD uint64_t mesh_key(float z, int64_t t) {
  uint32_t hi;
  if (z != z) {
    hi = 0xFFFFFFFEu;
  } else {
    if (z == 0.f) z = 0.f;  // -0 and +0 are one depth
    uint32_t b;
#if defined(__CUDA_ARCH__)
    b = __float_as_uint(z);
#else
    memcpy(&b, &z, 4);
#endif
    hi = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  }
  return (uint64_t(hi) << 32) | uint64_t(0xFFFFFFFFu - uint32_t(t));
}

CA_HD int64_t mesh_key_triangle(uint64_t key) { return int64_t(0xFFFFFFFFu - uint32_t(key & 0xFFFFFFFFu)); }

// Key of triangle t at pixel (j, i), or kMeshEmpty when the pixel is not covered.
CA_HD uint64_t mesh_pixel_key(const MeshFlowParams& p, const MeshTri& m, int64_t t, int64_t j, int64_t i) {
  int64_t w[3];
  for (int k = 0; k < 3; ++k) {
    w[k] = mesh_edge(m, k, j, i);
    if (w[k] < m.bias[k]) return kMeshEmpty;
  }
  float z = 0.f;
  if (p.depth) z = mesh_interp(mesh_bary(m, w), p.depth[m.v[0]], p.depth[m.v[1]], p.depth[m.v[2]]);
  return mesh_key(z, t);
}

// Pass 2 for one pixel: the source position interpolated over the winning triangle, or the
// pixel's own centre (identity) with mask 0.
CA_HD void mesh_resolve(const MeshFlowParams& p, const MeshTri* m, int64_t j, int64_t i, float* g, float* mask) {
  if (m == nullptr) {
    g[0] = pixel_center(j, p.W);
    g[1] = pixel_center(i, p.H);
    *mask = 0.f;
    return;
  }
  int64_t w[3];
  for (int k = 1; k < 3; ++k) w[k] = mesh_edge(*m, k, j, i);
  w[0] = 0;  // unused: vertex 0's weight is implied
  const MeshBary l = mesh_bary(*m, w);
  const float* s = p.src;
  g[0] = mesh_interp(l, s[2 * m->v[0]], s[2 * m->v[1]], s[2 * m->v[2]]);
  g[1] = mesh_interp(l, s[2 * m->v[0] + 1], s[2 * m->v[1] + 1], s[2 * m->v[2] + 1]);
  *mask = 1.f;
}

}  // namespace chatanyone
