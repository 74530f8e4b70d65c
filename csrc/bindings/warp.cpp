#include <limits>

#include "common.h"

namespace chatanyone {
namespace {

void warp(In input, In grid, OptIn mask, Out out, int padding, bool align_corners) {
  const int nd = int(input.ndim()) - 2;
  if (nd != 2 && nd != 3)
    throw nb::value_error(("features: expected [N,C,H,W] or [N,C,D,H,W], got " + shape_str(input)).c_str());
  check_float(input.dtype(), "features", true);
  if (grid.ndim() != size_t(nd + 2) || grid.shape(0) != input.shape(0) || grid.shape(nd + 1) != size_t(nd))
    throw nb::value_error(("grid: expected [N," + std::string(nd == 2 ? "Ho,Wo,2" : "Do,Ho,Wo,3") + "] with N=" +
                           std::to_string(input.shape(0)) + ", got " + shape_str(grid))
                              .c_str());
  if (grid.dtype() != input.dtype()) throw nb::type_error("grid: expected the dtype of features");
  if (padding != 0 && padding != 1) throw nb::value_error("padding: expected 0 (zeros) or 1 (border)");

  WarpParams p{};
  p.ndim = nd;
  p.N = input.shape(0);
  p.C = input.shape(1);
  p.D = nd == 3 ? input.shape(2) : 1;
  p.H = input.shape(nd);
  p.W = input.shape(nd + 1);
  p.Do = nd == 3 ? grid.shape(1) : 1;
  p.Ho = grid.shape(nd - 1);
  p.Wo = grid.shape(nd);
  if (p.D * p.H * p.W >= std::numeric_limits<int32_t>::max())
    throw nb::value_error("features: one channel must hold fewer than 2**31 elements");
  if (p.D * p.H * p.W == 0 && p.N * p.C * p.Do * p.Ho * p.Wo > 0)
    throw nb::value_error(("features: spatial size must be non-empty, got " + shape_str(input)).c_str());
  std::vector<int64_t> out_shape{p.N, p.C};
  if (nd == 3) out_shape.push_back(p.Do);
  out_shape.push_back(p.Ho);
  out_shape.push_back(p.Wo);
  check_shape(shape_of(out), "out", out_shape);
  if (out.dtype() != input.dtype()) throw nb::type_error("out: expected the dtype of features");
  if (mask) {
    if (mask->size() != size_t(p.N * p.Do * p.Ho * p.Wo))
      throw nb::value_error(("mask: expected N*Do*Ho*Wo elements, got " + shape_str(*mask)).c_str());
    if (mask->dtype() != input.dtype()) throw nb::type_error("mask: expected the dtype of features");
  }
  const bool cuda = mask ? check_device({dev(input, "features"), dev(grid, "grid"), dev(*mask, "mask"), dev(out, "out")})
                         : check_device({dev(input, "features"), dev(grid, "grid"), dev(out, "out")});
  if (!cuda && is_f16(input.dtype()))
    throw nb::type_error("features: float16 is supported on CUDA only; use float32 on CPU");
  p.padding = Padding(padding);
  p.align_corners = align_corners;
  p.dtype = is_f16(input.dtype()) ? DType::F16 : DType::F32;
  p.input = input.data();
  p.grid = grid.data();
  p.mask = mask ? mask->data() : nullptr;
  p.out = out.data();
  nb::gil_scoped_release release;
#ifdef CHATANYONE_WITH_CUDA
  if (cuda) return check_cuda(warp_cuda(p), "warping");
#endif
  warp_cpu(p);
}

}  // namespace

void bind_warp(nb::module_& m) {
  m.def("warp", &warp, nb::arg("features").noconvert(), nb::arg("grid").noconvert(),
        nb::arg("mask").noconvert().none(), nb::arg("out").noconvert(), nb::arg("padding"),
        nb::arg("align_corners"),
        "Bilinear grid sampling into a preallocated `out`; see chatanyone.ops.warp.");
}

}  // namespace chatanyone
