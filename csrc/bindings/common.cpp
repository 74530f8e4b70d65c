#include "common.h"

#include <sstream>

namespace chatanyone {

std::string shape_str(const Array& a) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << "]";
  return s.str();
}

std::string dtype_str(nb::dlpack::dtype d) {
  const char* kind = d.code == uint8_t(nb::dlpack::dtype_code::Float)  ? "float"
                     : d.code == uint8_t(nb::dlpack::dtype_code::Int)  ? "int"
                     : d.code == uint8_t(nb::dlpack::dtype_code::UInt) ? "uint"
                     : d.code == uint8_t(nb::dlpack::dtype_code::Bool) ? "bool"
                                                                        : "other";
  return std::string(kind) + std::to_string(int(d.bits));
}

bool is_f32(const Array& a) { return a.dtype() == nb::dtype<float>(); }
bool is_f16(const Array& a) {
  const auto d = a.dtype();
  return d.code == uint8_t(nb::dlpack::dtype_code::Float) && d.bits == 16 && d.lanes == 1;
}

void check_float(const Array& a, const char* name, bool allow_f16) {
  if (is_f32(a) || (allow_f16 && is_f16(a))) return;
  throw nb::type_error((std::string(name) + ": expected dtype " +
                        (allow_f16 ? "float32 or float16" : "float32") + ", got " + dtype_str(a.dtype()))
                           .c_str());
}

void check_shape(const Array& a, const char* name, const std::vector<int64_t>& shape) {
  bool ok = a.ndim() == shape.size();
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = int64_t(a.shape(i)) == shape[i];
  if (ok) return;
  std::ostringstream s;
  s << name << ": expected shape [";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "], got " << shape_str(a);
  throw nb::value_error(s.str().c_str());
}

void check_shape(const Array& a, const char* name, std::initializer_list<int64_t> shape) {
  check_shape(a, name, std::vector<int64_t>(shape));
}

bool check_device(std::initializer_list<const Array*> arrays, std::initializer_list<const char*> names) {
  const Array* first = *arrays.begin();
  const int type = first->device_type(), id = first->device_id();
  auto name = names.begin();
  for (const Array* a : arrays) {
    if (a->device_type() != type || a->device_id() != id) {
      throw nb::value_error((std::string(*name) + ": expected the device of " + *names.begin() +
                             " (dlpack device " + std::to_string(type) + ":" + std::to_string(id) +
                             "), got device " + std::to_string(a->device_type()) + ":" +
                             std::to_string(a->device_id()))
                                .c_str());
    }
    ++name;
  }
  if (type == nb::device::cpu::value) return false;
  if (type == nb::device::cuda::value || type == nb::device::cuda_managed::value) {
#ifdef CHATANYONE_WITH_CUDA
    check_cuda(cuda_set_device(id), "selecting the CUDA device");
    return true;
#else
    throw nb::value_error((std::string(*names.begin()) +
                           ": got a CUDA array, but this build of chatanyone has no CUDA backend; "
                           "see chatanyone.build_info() and rebuild with CHATANYONE_CUDA=ON where "
                           "nvcc is available")
                              .c_str());
#endif
  }
  throw nb::value_error((std::string(*names.begin()) + ": expected a CPU or CUDA array, got dlpack device type " +
                         std::to_string(type))
                            .c_str());
}

void check_cuda(const char* err, const char* what) {
  if (err && err[0]) throw std::runtime_error(std::string("CUDA error while ") + what + ": " + err);
}

}  // namespace chatanyone
