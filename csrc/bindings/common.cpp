#include "common.h"

#include <string>

namespace chatanyone {

std::string dtype_str(nb::dlpack::dtype d) {
  const char* kind = d.code == uint8_t(nb::dlpack::dtype_code::Float)  ? "float"
                     : d.code == uint8_t(nb::dlpack::dtype_code::Int)  ? "int"
                     : d.code == uint8_t(nb::dlpack::dtype_code::UInt) ? "uint"
                     : d.code == uint8_t(nb::dlpack::dtype_code::Bool) ? "bool"
                                                                        : "other";
  return std::string(kind) + std::to_string(int(d.bits));
}

bool is_f32(nb::dlpack::dtype d) { return d == nb::dtype<float>(); }
bool is_f16(nb::dlpack::dtype d) {
  return d.code == uint8_t(nb::dlpack::dtype_code::Float) && d.bits == 16 && d.lanes == 1;
}

void check_float(nb::dlpack::dtype d, const char* name, bool allow_f16) {
  if (is_f32(d) || (allow_f16 && is_f16(d))) return;
  throw nb::type_error((std::string(name) + ": expected dtype " + (allow_f16 ? "float32 or float16" : "float32") +
                        ", got " + dtype_str(d))
                           .c_str());
}

// Messages are built with std::string and std::to_string, never iostreams: an ostringstream
// segfaulted here on the H200 machine (GCC 13.3, its Python 3.12), inside ostream::_M_insert<long>.
static std::string shape_str(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void check_shape(const std::vector<int64_t>& shape, const char* name, const std::vector<int64_t>& want) {
  if (shape == want) return;
  throw nb::value_error((std::string(name) + ": expected shape " + shape_str(want) + ", got " + shape_str(shape)).c_str());
}

bool check_device(std::initializer_list<DevArg> arrays) {
  const DevArg first = *arrays.begin();
  const int type = first.type, id = first.id;
  for (const DevArg& a : arrays) {
    if (a.type != type || a.id != id) {
      throw nb::value_error((std::string(a.name) + ": expected the device of " + first.name + " (dlpack device " +
                             std::to_string(type) + ":" + std::to_string(id) + "), got device " +
                             std::to_string(a.type) + ":" + std::to_string(a.id))
                                .c_str());
    }
  }
  if (type == nb::device::cpu::value) return false;
  if (type == nb::device::cuda::value || type == nb::device::cuda_managed::value) {
#ifdef CHATANYONE_WITH_CUDA
    check_cuda(cuda_set_device(id), "selecting the CUDA device");
    return true;
#else
    throw nb::value_error((std::string(first.name) +
                           ": got a CUDA array, but this build of chatanyone has no CUDA backend; "
                           "see chatanyone.build_info() and rebuild with CHATANYONE_CUDA=ON where "
                           "nvcc is available")
                              .c_str());
#endif
  }
  throw nb::value_error((std::string(first.name) + ": expected a CPU or CUDA array, got dlpack device type " +
                         std::to_string(type))
                            .c_str());
}

void check_cuda(const char* err, const char* what) {
  if (err && err[0]) throw std::runtime_error(std::string("CUDA error while ") + what + ": " + err);
}

}  // namespace chatanyone
