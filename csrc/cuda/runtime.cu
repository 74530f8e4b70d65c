// CUDA runtime queries used by the bindings (device selection, build_info()).
#include <cuda_runtime.h>

#include "../common/params.h"

namespace chatanyone {

const char* cuda_set_device(int device) {
  const cudaError_t err = cudaSetDevice(device);
  return err == cudaSuccess ? "" : cudaGetErrorString(err);
}

int cuda_runtime_version() {
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? v : 0;
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error so later calls report their own
    return -1;
  }
  return n;
}

}  // namespace chatanyone
