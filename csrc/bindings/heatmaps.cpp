#include "common.h"

namespace chatanyone {
namespace {

void check_kp(const In& kp, const char* name) {
  check_float(kp.dtype(), name, false);
  if (kp.ndim() != 3 || kp.shape(2) != 2)
    throw nb::value_error((std::string(name) + ": expected [N,K,2], got " + shape_str(kp)).c_str());
}

float inv_two_sigma2(double sigma) {
  if (!(sigma > 0) || !(sigma < 1e30)) throw nb::value_error("sigma: expected a finite value > 0");
  return float(1.0 / (2.0 * sigma * sigma));
}

void heatmaps(In kp, OptIn weights, Out out, double sigma) {
  check_kp(kp, "kp");
  const int64_t N = kp.shape(0), K = kp.shape(1);
  if (out.ndim() != 4) throw nb::value_error(("out: expected [N,K,H,W], got " + shape_str(out)).c_str());
  check_shape(shape_of(out), "out", {N, K, int64_t(out.shape(2)), int64_t(out.shape(3))});
  check_float(out.dtype(), "out", false);
  if (weights) {
    check_float(weights->dtype(), "weights", false);
    check_shape(shape_of(*weights), "weights", {N, K});
  }
  HeatmapParams p{N, K, int64_t(out.shape(2)), int64_t(out.shape(3)), inv_two_sigma2(sigma),
                  static_cast<const float*>(kp.data()),
                  weights ? static_cast<const float*>(weights->data()) : nullptr,
                  static_cast<float*>(out.data())};
  const bool cuda = weights ? check_device({dev(kp, "kp"), dev(*weights, "weights"), dev(out, "out")})
                            : check_device({dev(kp, "kp"), dev(out, "out")});
  nb::gil_scoped_release release;
#ifdef CHATANYONE_WITH_CUDA
  if (cuda) return check_cuda(heatmaps_cuda(p), "computing heatmaps");
#endif
  (void)cuda;
  heatmaps_cpu(p);
}

void sparse_motion(In kp_source, In kp_driving, OptIn weights, Out heatmap_diff, Out grids, double sigma) {
  check_kp(kp_source, "kp_source");
  check_kp(kp_driving, "kp_driving");
  const int64_t N = kp_source.shape(0), K = kp_source.shape(1);
  check_shape(shape_of(kp_driving), "kp_driving", {N, K, 2});
  if (heatmap_diff.ndim() != 4)
    throw nb::value_error(("heatmap_diff: expected [N,K+1,H,W], got " + shape_str(heatmap_diff)).c_str());
  const int64_t H = heatmap_diff.shape(2), W = heatmap_diff.shape(3);
  check_shape(shape_of(heatmap_diff), "heatmap_diff", {N, K + 1, H, W});
  check_shape(shape_of(grids), "grids", {N, K + 1, H, W, 2});
  check_float(heatmap_diff.dtype(), "heatmap_diff", false);
  check_float(grids.dtype(), "grids", false);
  if (weights) {
    check_float(weights->dtype(), "weights", false);
    check_shape(shape_of(*weights), "weights", {N, K});
  }
  SparseMotionParams p{N, K, H, W, inv_two_sigma2(sigma),
                       static_cast<const float*>(kp_source.data()),
                       static_cast<const float*>(kp_driving.data()),
                       weights ? static_cast<const float*>(weights->data()) : nullptr,
                       static_cast<float*>(heatmap_diff.data()), static_cast<float*>(grids.data())};
  const bool cuda = weights ? check_device({dev(kp_source, "kp_source"), dev(kp_driving, "kp_driving"),
                                           dev(*weights, "weights"), dev(heatmap_diff, "heatmap_diff"),
                                           dev(grids, "grids")})
                            : check_device({dev(kp_source, "kp_source"), dev(kp_driving, "kp_driving"),
                                           dev(heatmap_diff, "heatmap_diff"), dev(grids, "grids")});
  nb::gil_scoped_release release;
#ifdef CHATANYONE_WITH_CUDA
  if (cuda) return check_cuda(sparse_motion_cuda(p), "computing sparse motion");
#endif
  (void)cuda;
  sparse_motion_cpu(p);
}

}  // namespace

void bind_heatmaps(nb::module_& m) {
  m.def("heatmaps", &heatmaps, nb::arg("kp").noconvert(), nb::arg("weights").noconvert().none(),
        nb::arg("out").noconvert(), nb::arg("sigma"),
        "Gaussian keypoint heatmaps into a preallocated `out`; see chatanyone.ops.heatmaps.");
  m.def("sparse_motion", &sparse_motion, nb::arg("kp_source").noconvert(), nb::arg("kp_driving").noconvert(),
        nb::arg("weights").noconvert().none(), nb::arg("heatmap_diff").noconvert(), nb::arg("grids").noconvert(),
        nb::arg("sigma"), "Sparse-motion terms into preallocated outputs; see chatanyone.ops.sparse_motion.");
}

}  // namespace chatanyone
