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

// Any dtype, any device; C-contiguous (noconvert on every argument, so no silent copies).
using Array = nb::ndarray<nb::c_contig>;
using OptArray = std::optional<Array>;

std::string shape_str(const Array& a);
std::string dtype_str(nb::dlpack::dtype d);
bool is_f32(const Array& a);
bool is_f16(const Array& a);

// Raises TypeError unless `a` is float32 (or float16 where allowed).
void check_float(const Array& a, const char* name, bool allow_f16);
// Raises ValueError unless `a` has exactly this shape.
void check_shape(const Array& a, const char* name, std::initializer_list<int64_t> shape);
void check_shape(const Array& a, const char* name, const std::vector<int64_t>& shape);

// The single device check of a call: every array on one device, supported by this build.
// Returns true for CUDA (after making that device current), false for CPU.
bool check_device(std::initializer_list<const Array*> arrays, std::initializer_list<const char*> names);

// Raises RuntimeError if a CUDA entry point reported an error.
void check_cuda(const char* err, const char* what);

void bind_warp(nb::module_& m);
void bind_heatmaps(nb::module_& m);
void bind_ddim(nb::module_& m);

}  // namespace chatanyone
