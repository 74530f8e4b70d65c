// The chatanyone._core module: kernels (warp, heatmaps, ddim, mesh_flow) and build_info().
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "common.h"

namespace nb = nanobind;
using namespace chatanyone;

namespace {

nb::dict build_info() {
  nb::dict d;
  nb::list backends;
  backends.append("cpu");
#ifdef CHATANYONE_WITH_CUDA
  backends.append("cuda");
  d["cuda_version"] = CHATANYONE_CUDA_VERSION;            // toolkit the kernels were compiled with
  d["cuda_architectures"] = CHATANYONE_CUDA_ARCHITECTURES;  // SASS targets and embedded PTX
  d["cuda_runtime_version"] = cuda_runtime_version();
  d["cuda_devices"] = cuda_device_count();  // -1: no usable driver on this machine
#else
  d["cuda_version"] = nb::none();
  d["cuda_architectures"] = nb::none();
  d["cuda_runtime_version"] = nb::none();
  d["cuda_devices"] = 0;
#endif
  d["backends"] = backends;
  d["compiler"] = CHATANYONE_CXX_COMPILER;
  d["build_type"] = CHATANYONE_BUILD_TYPE;
  d["threads"] = cpu_num_threads();
  return d;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "chatanyone native kernels; use the chatanyone.ops wrappers, which validate arguments.";
  m.def("build_info", &build_info, "What was built: backends, CUDA version and architectures, compiler, threads.");
  m.def("get_num_threads", &cpu_num_threads, "Threads the CPU kernels use.");
  m.def("set_num_threads", &cpu_set_num_threads, nb::arg("n"), "Set the threads the CPU kernels use (>= 1).");
  bind_warp(m);
  bind_heatmaps(m);
  bind_ddim(m);
  bind_mesh_flow(m);
}
