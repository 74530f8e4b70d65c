// Launch helpers shared by the .cu files (CUDA only; never included by host-only code).
#pragma once
#include <cuda_runtime.h>

namespace chatanyone {

// Launch configuration for n independent items.
inline unsigned blocks_for(long long n, int threads) {
  long long b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : (b > 0x7fffffffLL ? 0x7fffffffLL : b));
}

// After a launch: synchronize the default stream and turn any error into text for the binding.
inline const char* finish_launch() {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) err = cudaStreamSynchronize(0);
  return err == cudaSuccess ? "" : cudaGetErrorString(err);
}

}  // namespace chatanyone
