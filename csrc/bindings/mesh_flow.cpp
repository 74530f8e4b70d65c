#include <cstdint>

#include "common.h"

namespace chatanyone {
namespace {

void mesh_flow(In dst, In src, In tris, OptIn depth, Out grid, Out mask) {
  check_float(dst.dtype(), "dst_vertices", false);
  if (dst.ndim() != 2 || dst.shape(1) != 2)
    throw nb::value_error(("dst_vertices: expected [V,2], got " + shape_str(dst)).c_str());
  const int64_t V = dst.shape(0);
  check_float(src.dtype(), "src_vertices", false);
  check_shape(shape_of(src), "src_vertices", {V, 2});
  if (tris.dtype() != nb::dtype<int32_t>())
    throw nb::type_error(("triangles: expected dtype int32, got " + dtype_str(tris.dtype())).c_str());
  if (tris.ndim() != 2 || tris.shape(1) != 3)
    throw nb::value_error(("triangles: expected [T,3], got " + shape_str(tris)).c_str());
  const int64_t T = tris.shape(0);
  if (T >= INT32_MAX) throw nb::value_error("triangles: expected fewer than 2**31 - 1 triangles");
  if (depth) {
    check_float(depth->dtype(), "depth", false);
    check_shape(shape_of(*depth), "depth", {V});
  }
  check_float(grid.dtype(), "grid", false);
  if (grid.ndim() != 3 || grid.shape(2) != 2)
    throw nb::value_error(("grid: expected [H,W,2], got " + shape_str(grid)).c_str());
  const int64_t H = grid.shape(0), W = grid.shape(1);
  if (H > (int64_t(1) << 20) || W > (int64_t(1) << 20))
    throw nb::value_error(("grid: expected H and W up to 2**20, got " + shape_str(grid)).c_str());
  check_float(mask.dtype(), "mask", false);
  check_shape(shape_of(mask), "mask", {H, W});
  // Pass 1 keeps a 64-bit key per pixel in the grid buffer (atomics on CUDA need alignment).
  if (reinterpret_cast<uintptr_t>(grid.data()) % 8 != 0) throw nb::value_error("grid: expected 8-byte aligned data");
  const bool cuda =
      depth ? check_device({dev(dst, "dst_vertices"), dev(src, "src_vertices"), dev(tris, "triangles"),
                            dev(*depth, "depth"), dev(grid, "grid"), dev(mask, "mask")})
            : check_device({dev(dst, "dst_vertices"), dev(src, "src_vertices"), dev(tris, "triangles"),
                            dev(grid, "grid"), dev(mask, "mask")});
  // Indices outside [0, V) are skipped by the kernels (chatanyone.ops.mesh_flow raises on them
  // first), so no direct call can read outside the vertex arrays.
  MeshFlowParams p{V, T, H, W,
                   static_cast<const float*>(dst.data()),
                   static_cast<const float*>(src.data()),
                   static_cast<const int32_t*>(tris.data()),
                   depth ? static_cast<const float*>(depth->data()) : nullptr,
                   static_cast<float*>(grid.data()),
                   static_cast<float*>(mask.data())};
  nb::gil_scoped_release release;
#ifdef CHATANYONE_WITH_CUDA
  if (cuda) return check_cuda(mesh_flow_cuda(p), "rasterizing the mesh");
#endif
  (void)cuda;
  mesh_flow_cpu(p);
}

}  // namespace

void bind_mesh_flow(nb::module_& m) {
  m.def("mesh_flow", &mesh_flow, nb::arg("dst_vertices").noconvert(), nb::arg("src_vertices").noconvert(),
        nb::arg("triangles").noconvert(), nb::arg("depth").noconvert().none(), nb::arg("grid").noconvert(),
        nb::arg("mask").noconvert(),
        "Rasterize a triangle mesh into preallocated `grid` and `mask`; see chatanyone.ops.mesh_flow.");
}

}  // namespace chatanyone
