// Plain parameter structs and launch prototypes shared by the CPU, CUDA and binding sides.
// No nanobind, no CUDA headers: every compiler in the build can include this file.
#pragma once
#include <cstdint>

namespace chatanyone {

enum class Padding : int { Zeros = 0, Border = 1 };
enum class Prediction : int { Eps = 0, V = 1, X0 = 2 };
enum class DType : int { F32 = 0, F16 = 1 };

// Bilinear (2-D) or trilinear (3-D) grid sampling. For 2-D, D = Do = 1.
// All arrays are C-contiguous: input [N,C,D,H,W], grid [N,Do,Ho,Wo,ndim], mask [N,Do,Ho,Wo],
// out [N,C,Do,Ho,Wo]. Pointers are void so one struct serves float32 and float16.
struct WarpParams {
  int ndim;  // 2 or 3
  int64_t N, C, D, H, W;
  int64_t Do, Ho, Wo;
  Padding padding;
  bool align_corners;
  DType dtype;
  const void* input;
  const void* grid;
  const void* mask;  // nullptr: no fused multiply
  void* out;
};

// Gaussian heatmaps of K keypoints; optional per-keypoint weights [N,K].
struct HeatmapParams {
  int64_t N, K, H, W;
  float inv_two_sigma2;  // 1 / (2 sigma^2)
  const float* kp;       // [N,K,2] (x, y) normalized
  const float* weights;  // [N,K] or nullptr
  float* out;            // [N,K,H,W]
};

// Sparse-motion terms (FOMM convention), K keypoints plus a background channel 0.
struct SparseMotionParams {
  int64_t N, K, H, W;
  float inv_two_sigma2;
  const float* kp_source;   // [N,K,2]
  const float* kp_driving;  // [N,K,2]
  const float* weights;     // [N,K] or nullptr
  float* heatmap_diff;      // [N,K+1,H,W]
  float* grids;             // [N,K+1,H,W,2]
};

// Scalar coefficients of one DDIM update, computed once on the host (see ddim_coefficients).
struct DDIMCoeffs {
  Prediction prediction;
  float sqrt_a;        // sqrt(alpha_t)
  float sqrt_1ma;      // sqrt(1 - alpha_t)
  float inv_sqrt_a;    // 1 / sqrt(alpha_t): multiplies instead of divides per element
  float inv_sqrt_1ma;  // 1 / sqrt(1 - alpha_t)
  float sqrt_a_prev;   // sqrt(alpha_prev)
  float dir_coef;      // sqrt(max(0, 1 - alpha_prev - sigma^2))
  float sigma;         // eta * sqrt((1-a_prev)/(1-a_t)) * sqrt(1 - a_t/a_prev)
  float guidance;      // classifier-free guidance scale (used only with uncond)
  float clip;          // clip |x0| to this value; <= 0 or inf: no clipping
  bool has_uncond;
  bool has_noise;
};

struct DDIMParams {
  int64_t numel;
  DDIMCoeffs c;
  const float* x;
  const float* model_out;
  const float* uncond;  // or nullptr
  const float* noise;   // or nullptr
  float* x_prev;        // may alias x
};

// A triangle mesh rasterized into a backward flow field (chatanyone.ops.mesh_flow). Coordinates
// are normalized (align_corners=False), x then y. Pass 1 keeps, per pixel, the 64-bit key of the
// winning triangle (depth, then triangle index) in the grid buffer itself, which therefore must
// be 8-byte aligned; pass 2 turns each key into the interpolated source position.
struct MeshFlowParams {
  int64_t V, T, H, W;
  const float* dst;     // [V,2] the output-image (driving) mesh
  const float* src;     // [V,2] the same vertices in the source image
  const int32_t* tris;  // [T,3] vertex indices; triangles with an index outside [0, V) are skipped
  const float* depth;   // [V] per dst vertex, or nullptr (then the larger triangle index wins)
  float* grid;          // [H,W,2] out
  float* mask;          // [H,W] out: 1 covered, 0 not
};

// CPU entry points (csrc/cpu). Multithreaded; block until done.
void warp_cpu(const WarpParams& p);
void heatmaps_cpu(const HeatmapParams& p);
void sparse_motion_cpu(const SparseMotionParams& p);
void ddim_step_cpu(const DDIMParams& p);
void mesh_flow_cpu(const MeshFlowParams& p);

// CPU thread pool size (csrc/cpu/parallel.cpp).
int cpu_num_threads();
void cpu_set_num_threads(int n);

// CUDA entry points (csrc/cuda). Launch on the legacy default stream, synchronize, and return
// an empty string on success or the CUDA error text, so the caller decides how to raise.
const char* warp_cuda(const WarpParams& p);
const char* heatmaps_cuda(const HeatmapParams& p);
const char* sparse_motion_cuda(const SparseMotionParams& p);
const char* ddim_step_cuda(const DDIMParams& p);
const char* mesh_flow_cuda(const MeshFlowParams& p);
// Make `device` current for the calling thread before a launch.
const char* cuda_set_device(int device);
// Runtime facts for build_info(); device_count < 0 means the runtime failed (e.g. no driver).
int cuda_runtime_version();
int cuda_device_count();

}  // namespace chatanyone
