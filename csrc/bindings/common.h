// Boundary checks shared by the binding files. The Python layer (chatanyone.ops) validates first
// with friendlier messages; these checks make sure no call can reach a kernel with bad memory.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>  // optional arrays (mask, weights, uncond, noise)
#include <nanobind/stl/vector.h>    // timesteps and alphas of ddim_sample

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "../common/params.h"

namespace chatanyone {
namespace nb = nanobind;

// Any dtype, any device, C-contiguous (noconvert on every argument, so no silent copies).
// Inputs are read-only views, so read-only numpy arrays (np.load mmap, broadcasts) are accepted.
using In = nb::ndarray<nb::ro, nb::c_contig>;
using Out = nb::ndarray<nb::c_contig>;
using OptIn = std::optional<In>;

// One array argument for the device check: DLPack device type and id, and its name.
struct DevArg {
  int type, id;
  const char* name;
};
template <class A>
DevArg dev(const A& a, const char* name) {
  return {int(a.device_type()), int(a.device_id()), name};
}

template <class A>
std::string shape_str(const A& a) {
  std::string s = "[";
  for (size_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + "]";
}

template <class A>
std::vector<int64_t> shape_of(const A& a) {
  std::vector<int64_t> v;
  for (size_t i = 0; i < a.ndim(); ++i) v.push_back(int64_t(a.shape(i)));
  return v;
}

std::string dtype_str(nb::dlpack::dtype d);
bool is_f32(nb::dlpack::dtype d);
bool is_f16(nb::dlpack::dtype d);

// Raises TypeError unless the dtype is float32 (or float16 where allowed).
void check_float(nb::dlpack::dtype d, const char* name, bool allow_f16);
// Raises ValueError unless `shape` equals `want`.
void check_shape(const std::vector<int64_t>& shape, const char* name, const std::vector<int64_t>& want);

// The single device check of a call: every array on one device, supported by this build.
// Returns true for CUDA (after making that device current), false for CPU.
bool check_device(std::initializer_list<DevArg> arrays);

// Raises RuntimeError if a CUDA entry point reported an error.
void check_cuda(const char* err, const char* what);

void bind_warp(nb::module_& m);
void bind_heatmaps(nb::module_& m);
void bind_ddim(nb::module_& m);
void bind_mesh_flow(nb::module_& m);

}  // namespace chatanyone
