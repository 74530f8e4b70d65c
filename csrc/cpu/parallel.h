// A small persistent thread pool for the CPU kernels (no OpenMP: its runtime clashes with the
// one torch and onnxruntime bring into the same process).
#pragma once
#include <cstdint>
#include <functional>

namespace chatanyone {

// Run fn(begin, end) over [0, n) split into chunks of at least `grain` items, on the pool
// threads plus the caller. Blocks until all chunks are done. Small n runs inline.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace chatanyone
