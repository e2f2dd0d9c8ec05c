// The fused norm's launch shape: adjustGridConfig for a table of (N, D, dtype, SMs), some worked by hand
// below, the strategy's choice of cluster launch, the shared-memory size, and which thread holds which pack.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "reference/fused_launch.h"

using namespace ar;

namespace {

struct Row {
  std::int64_t tokens, hidden;
  DType dtype;
  int sm_count;
  GridConfig expected;
};

GridConfig grid_of(const Row& r) {
  return adjust_grid_config(r.tokens, r.hidden / elements_per_pack(r.dtype), r.sm_count, true);
}

}  // namespace

TEST_CASE("adjustGridConfig: a table of shapes", "[cpu]") {
  // Worked by hand, bf16 D = 4096 (T = 512 packs): cs = 8 divides T, bs = 64; below 128 threads, so bs = 128
  // and cs = 4. N = 1: 1*4 <= 132 keeps it; the widening step tries cs = 8, bs = 64 (>= 64, 8 <= 132) and
  // takes it back: (64, 8, 1). N = 32: widening would need 32*8 = 256 > 132 SMs: (128, 4, 1). N = 64:
  // 64*4 > 132 narrows to (256, 2, 1), and 64*2 = 128 fits. N = 128: narrows again to (512, 1, 1).
  //
  // bf16 D = 7168 (T = 896): cs = 8, bs = 112 -> (224, 4) for 128 threads. N = 16 widens back (16*8 = 128
  // <= 132): (112, 8, 1); N = 17 cannot (136 > 132): (224, 4, 1). N = 34: 34*4 = 136 > 132 narrows to
  // (448, 2, 1). N = 67: 134 > 132 and bs = 448 <= 512 narrows to (896, 1, 1).
  //
  // bf16 D = 8200 (T = 1025, odd): no cluster divides it, cs = 1 and bs = 1025 > 1024, so the last step
  // widens the cluster past divisibility: cs = 2, bs = ceil(1025 / 2) = 513: one thread too many.
  //
  // fp32 D = 65536 (T = 16384): cs = 8, bs = 2048; the cluster is already 8, so loads = 2, bs = 1024.
  const Row rows[] = {
      {1, 4096, DType::kBf16, 132, {64, 8, 1}},
      {32, 4096, DType::kBf16, 132, {128, 4, 1}},
      {64, 4096, DType::kBf16, 132, {256, 2, 1}},
      {128, 4096, DType::kBf16, 132, {512, 1, 1}},
      {100000, 4096, DType::kBf16, 132, {512, 1, 1}},
      {1, 7168, DType::kBf16, 132, {112, 8, 1}},
      {16, 7168, DType::kBf16, 132, {112, 8, 1}},
      {17, 7168, DType::kBf16, 132, {224, 4, 1}},
      {33, 7168, DType::kBf16, 132, {224, 4, 1}},  // 33*4 = 132 is not more than 132
      {34, 7168, DType::kBf16, 132, {448, 2, 1}},
      {66, 7168, DType::kBf16, 132, {448, 2, 1}},
      {67, 7168, DType::kBf16, 132, {896, 1, 1}},
      {16, 7168, DType::kBf16, 114, {224, 4, 1}},  // an H100 PCIe: 16*8 = 128 > 114
      {18, 7168, DType::kBf16, 148, {112, 8, 1}},  // a B200: 18*8 = 144 <= 148
      {18, 7168, DType::kBf16, 132, {224, 4, 1}},
      {1, 7168, DType::kFp32, 132, {224, 8, 1}},  // T = 1792: 1792/8 = 224 threads
      {1, 4096, DType::kFp32, 132, {128, 8, 1}},
      {1, 128, DType::kFp16, 132, {16, 1, 1}},  // T = 16: halved to one block of 16; widening needs >= 64
      {1, 8, DType::kBf16, 132, {1, 1, 1}},
      {1, 8200, DType::kBf16, 132, {513, 2, 1}},
      {1, 65536, DType::kBf16, 132, {1024, 8, 1}},
      {1000, 65536, DType::kBf16, 132, {1024, 8, 1}},  // bs = 1024 > 512: never narrowed
      {17, 16384, DType::kBf16, 132, {512, 4, 1}},
      {34, 16384, DType::kBf16, 132, {1024, 2, 1}},
      {200, 16384, DType::kBf16, 132, {1024, 2, 1}},
      {1, 65536, DType::kFp32, 132, {1024, 8, 2}},
  };
  for (const Row& r : rows) {
    INFO("N=" << r.tokens << " D=" << r.hidden << " " << dtype_name(r.dtype) << " SMs=" << r.sm_count);
    const GridConfig g = grid_of(r);
    CHECK(g.block_size == r.expected.block_size);
    CHECK(g.cluster_size == r.expected.cluster_size);
    CHECK(g.loads_per_thread == r.expected.loads_per_thread);
  }
}

TEST_CASE("adjustGridConfig without a cluster only adds loads", "[cpu]") {
  CHECK(adjust_grid_config(1, 1000, 132, false) == GridConfig{1000, 1, 1});
  CHECK(adjust_grid_config(1, 1025, 132, false) == GridConfig{513, 1, 2});
  CHECK(adjust_grid_config(1, 5000, 132, false) == GridConfig{1000, 1, 5});   // 2500, 1667, 1250, then 1000
  CHECK(adjust_grid_config(1, 16384, 132, false) == GridConfig{2048, 1, 8});  // gives up: the caller refuses
  CHECK(adjust_grid_config(500, 16, 132, false) == GridConfig{16, 1, 1});     // N plays no part
}

TEST_CASE("oneshot launches a cluster of one pack per thread and refuses wider rows", "[cpu]") {
  const NormLaunch l = norm_launch(Strategy::kOneShot, 1, 7168, DType::kBf16);
  CHECK(l.cluster_launch);
  CHECK(l.grid == GridConfig{112, 8, 1});
  CHECK(l.packs_per_row == 896);
  CHECK(l.warps_per_block() == 4);
  CHECK(l.has_partial_warp());  // 112 = 3 * 32 + 16
  CHECK(l.exited_threads() == 0);
  CHECK(l.dynamic_shared_bytes == 0);
  // packedIdx = blockIdx.y * bs + threadIdx.x
  CHECK(pack_owner(l, 0) == PackOwner{0, 0, 0});
  CHECK(pack_owner(l, 111) == PackOwner{0, 111, 0});
  CHECK(pack_owner(l, 112) == PackOwner{1, 0, 0});
  CHECK(pack_owner(l, 895) == PackOwner{7, 111, 0});
  CHECK(pack_of(l, 7, 111, 0) == 895);

  // One thread beyond the row: it returns before the block reduction.
  const NormLaunch odd = norm_launch(Strategy::kOneShot, 1, 8200, DType::kBf16);
  CHECK(odd.grid == GridConfig{513, 2, 1});
  CHECK(odd.exited_threads() == 1);
  CHECK(pack_of(odd, 1, 511, 0) == 1024);
  CHECK(pack_of(odd, 1, 512, 0) == -1);

  CHECK(norm_launch(Strategy::kOneShot, 1, 65536, DType::kBf16).grid == GridConfig{1024, 8, 1});
  CHECK_THROWS_WITH(norm_launch(Strategy::kOneShot, 1, 65536 + 8, DType::kBf16),
                    Catch::Contains("exceeds the maximum supported hidden dimension 65536"));
  CHECK_THROWS_WITH(norm_launch(Strategy::kOneShot, 1, 32768 + 4, DType::kFp32),
                    Catch::Contains("maximum supported hidden dimension 32768"));
  CHECK_THROWS_WITH(norm_launch(Strategy::kOneShot, 1, 100, DType::kBf16), Catch::Contains("not a multiple of 8"));
}

TEST_CASE("twoshot's rmsNormLamport: cluster only with one load, shared memory from iters", "[cpu]") {
  // bf16 D = 7168, N = 1: (112, 8, 1), a cluster. iters = round_up(7168, 8 * 896) / 896 = 8 elements per
  // thread and array; 3 arrays * 112 threads * 8 * 2 bytes = 5376.
  const NormLaunch c = norm_launch(Strategy::kTwoShot, 1, 7168, DType::kBf16);
  CHECK(c.cluster_launch);
  CHECK(c.grid == GridConfig{112, 8, 1});
  CHECK(c.packs_per_block == 112);
  CHECK(c.shared_elements_per_thread == 8);
  CHECK(c.dynamic_shared_bytes == 5376);
  CHECK(c.exited_threads() == 0);

  // N = 128, bf16 D = 4096: (512, 1, 1) is no cluster launch. iters = 4096 / 512 = 8; 3 * 512 * 8 * 2.
  const NormLaunch plain = norm_launch(Strategy::kTwoShot, 128, 4096, DType::kBf16);
  CHECK_FALSE(plain.cluster_launch);
  CHECK(plain.grid == GridConfig{512, 1, 1});
  CHECK(plain.shared_elements_per_thread == 8);
  CHECK(plain.dynamic_shared_bytes == 24576);

  // bf16 D = 8200: (513, 2, 1); 1026 threads for 1025 packs. The idle thread stays and adds +0.
  // iters = round_up(8200, 8 * 1026 = 8208) / 1026 = 8.
  const NormLaunch odd = norm_launch(Strategy::kTwoShot, 1, 8200, DType::kBf16);
  CHECK(odd.cluster_launch);
  CHECK(odd.packs_per_block == 513);
  CHECK(odd.shared_elements_per_thread == 8);
  CHECK(odd.dynamic_shared_bytes == 3 * 513 * 8 * 2);
  CHECK(odd.exited_threads() == 0);
  CHECK(pack_owner(odd, 513) == PackOwner{1, 0, 0});
  CHECK(pack_of(odd, 1, 512, 0) == -1);

  // fp32 D = 65536: the cluster tuning needs 2 loads, so it retunes without a cluster: 8 loads of 2048
  // threads, still too many. The recomputation can never succeed (see the next test).
  CHECK_THROWS_WITH(norm_launch(Strategy::kTwoShot, 1, 65536, DType::kFp32),
                    Catch::Contains("unsupported hidden dimension 65536"));
  CHECK(norm_launch(Strategy::kTwoShot, 1, 32768, DType::kFp32).grid == GridConfig{1024, 8, 1});
}

TEST_CASE("twoshot's retune without a cluster never yields a launch", "[cpu]") {
  // The cluster tuning reaches loads > 1 only with cs = 8 and ceil(T/8) > 1024, i.e. T > 8192; the retune
  // then needs ceil(T/loads) <= 1024 with loads <= 8, i.e. T <= 8192. So every rmsNormLamport launch has one
  // load per thread, and the loads > 1 kernels are never launched.
  for (std::int64_t packs = 1; packs <= 16384; ++packs) {
    for (std::int64_t tokens : {1, 40, 5000}) {
      const GridConfig g = adjust_grid_config(tokens, packs, kDefaultSmCount, true);
      if (g.cluster_size > 1 && g.loads_per_thread > 1) {
        const GridConfig retuned = adjust_grid_config(tokens, packs, kDefaultSmCount, false);
        REQUIRE(retuned.block_size > kMaxBlockSize);
      }
    }
  }
}

TEST_CASE("a thread's loads walk the row by whole blocks", "[cpu]") {
  // Not reachable through norm_launch (see above), but the kernel's mapping for loads > 1 is
  // pack = load * bs + threadIdx.x; this launch is built by hand.
  NormLaunch l;
  l.strategy = Strategy::kTwoShot;
  l.dtype = DType::kBf16;
  l.hidden = 5000 * 8;
  l.packs_per_row = 5000;
  l.elements_per_pack = 8;
  l.grid = {1000, 1, 5};
  l.packs_per_block = 5000;
  CHECK(pack_owner(l, 1000) == PackOwner{0, 0, 1});
  CHECK(pack_owner(l, 4999) == PackOwner{0, 999, 4});
  CHECK(pack_of(l, 0, 999, 4) == 4999);
  CHECK(pack_of(l, 0, 999, 5) == -1);
}

TEST_CASE("every pack of a row belongs to exactly one thread and load", "[cpu]") {
  for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
    for (std::int64_t hidden : {8, 64, 128, 4096, 7168, 8200, 16400, 65536}) {
      for (std::int64_t tokens : {1, 17, 67, 1000}) {
        for (int sms : {114, 132, 148}) {
          const NormLaunch l = norm_launch(s, tokens, hidden, DType::kBf16, sms);
          INFO(strategy_name(s) << " D=" << hidden << " N=" << tokens << " SMs=" << sms);
          std::vector<int> seen(static_cast<std::size_t>(l.packs_per_row), 0);
          int idle = 0;
          for (int b = 0; b < l.cluster_size(); ++b) {
            for (int t = 0; t < l.block_size(); ++t) {
              for (int load = 0; load < l.loads_per_thread(); ++load) {
                const int pack = pack_of(l, b, t, load);
                if (pack < 0) {
                  ++idle;
                  continue;
                }
                ++seen[static_cast<std::size_t>(pack)];
                REQUIRE(pack_owner(l, pack) == PackOwner{b, t, load});
              }
            }
          }
          REQUIRE(std::count(seen.begin(), seen.end(), 1) == l.packs_per_row);
          REQUIRE(idle == l.threads_per_row() * l.loads_per_thread() - l.packs_per_row);
          if (s == Strategy::kOneShot) REQUIRE(l.exited_threads() == idle);
        }
      }
    }
  }
}
