// The emulated CUDA mesh_flow against the CPU kernel on random triangle soups (random sizes, both
// windings, degenerate and out-of-range triangles, exact depth ties): bit for bit, or exit 1.
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../../csrc/common/params.h"

using namespace chatanyone;

int main() {
  std::mt19937 rng(1);
  int bad = 0, cases = 0;
  for (int rep = 0; rep < 40; ++rep) {
    const int V = 5 + int(rng() % 60), T = int(rng() % 120), H = 1 + int(rng() % 40), W = 1 + int(rng() % 40);
    std::uniform_real_distribution<float> u(-1.4f, 1.4f), z(0.f, 1.f);
    std::vector<float> dst(2 * V), src(2 * V), depth(V);
    for (auto& x : dst) x = u(rng);
    for (auto& x : src) x = u(rng);
    for (auto& x : depth) x = rep % 5 == 0 ? 0.25f : z(rng);  // every 5th: all depths tie
    std::vector<int32_t> tris(3 * T);
    for (auto& x : tris) x = int32_t(rng() % V) - (rep % 7 == 3 ? 2 : 0);  // some out of range
    for (int d = 0; d < 2; ++d) {
      std::vector<float> g1(2 * H * W), m1(H * W), g2(2 * H * W), m2(H * W);
      MeshFlowParams p{V, T, H, W, dst.data(), src.data(), tris.data(), d ? depth.data() : nullptr, g1.data(), m1.data()};
      mesh_flow_cpu(p);
      p.grid = g2.data();
      p.mask = m2.data();
      if (mesh_flow_cuda(p)[0]) return 2;
      ++cases;
      if (std::memcmp(g1.data(), g2.data(), g1.size() * 4) || std::memcmp(m1.data(), m2.data(), m1.size() * 4)) {
        ++bad;
        std::printf("mismatch: rep %d depth %d V=%d T=%d %dx%d\n", rep, d, V, T, H, W);
      }
    }
  }
  std::printf("%d/%d cases bit-identical\n", cases - bad, cases);
  return bad ? 1 : 0;
}
