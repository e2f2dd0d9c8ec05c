// [cpu] The register rows (cuda/params.h register_packs, cuda/detail/norm_row_registers.cuh) on the CPU:
// wherever a row takes them with P packs a thread, pass p of our thread i plays FlashInfer's thread
// j = i + p * threads (thread j % bs of block j / bs), which loads pack j (or none past the row), by the
// reference's own map of FlashInfer's threads to packs (reference pack_of); the decode rows they were made for
// take them; their second level without its +0 levels gives the same bits; and their whole order of
// operations, replayed, gives the bits of reference fused_rms_norm_row; where several blocks compute a row
// (replica_plan), each row gets all its replicas and each pack's outputs one writer, whole warps at a time.
// What the GPU computes is checked by cuda_fused_test and cuda_fused_quant_test.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "cuda/params.h"
#include "reference/dtype.h"
#include "reference/float_bits.h"
#include "reference/float_ops.h"
#include "reference/fused_launch.h"
#include "reference/fused_rms_norm.h"
#include "reference/mufu.h"

using namespace ar;

namespace {

/// Our block's threads for a row of `packs` packs in a call with few rows (a block alone, wide).
int decode_block_threads(std::int64_t packs) { return cuda::fused_block_threads(packs, /*many_rows=*/false); }

}  // namespace

TEST_CASE("register rows: pass p of our thread i plays the FlashInfer thread that loads pack i + p * threads",
          "[cpu]") {
  int taken[cuda::kMaxRegisterPacks + 1] = {}, launches = 0;
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp32})
    for (std::int64_t hidden = 16 * 8; hidden <= 16384; hidden += 16 * 8)
      for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
        for (int sms : {132, 78, 114})
          for (std::int64_t n : {1, 2, 3, 8, 16, 33, 64, 100, 128, 300}) {
            const NormLaunch l = norm_launch(s, n, hidden, t, sms);
            for (int threads : {decode_block_threads(l.packs_per_row), cuda::kManyRowsBlockThreads}) {
              ++launches;
              const int packs = cuda::register_packs(l, Profile::kFlashInfer, threads);
              ++taken[packs];
              if (packs == 0) continue;
              INFO("D " << hidden << " " << dtype_name(t) << " N " << n << " SMs " << sms << " threads " << threads);
              REQUIRE(l.loads_per_thread() == 1);
              REQUIRE(l.threads_per_row() <= packs * threads);
              REQUIRE((packs == 1 || l.threads_per_row() > threads));  // the fewest passes
              REQUIRE(cuda::register_packs(l, Profile::kIeee, threads) == packs);
              REQUIRE(cuda::register_packs(l, Profile::kInvariant, threads) == 0);
              REQUIRE(cuda::register_packs(l, Profile::kTrtllm, threads) == 0);  // no fused kernel of its own
              for (int j = 0; j < packs * threads; ++j) {
                const int block = j / l.block_size(), thread = j % l.block_size();
                const int expected = j < l.packs_per_row ? j : -1;
                const int played = block < l.cluster_size() ? pack_of(l, block, thread, 0) : -1;
                if (played != expected)
                  FAIL("FlashInfer's thread " << j << " loads pack " << played << ", not " << expected);
              }
            }
          }
  CHECK(launches > 1000);
  CHECK(taken[1] > 100);
  CHECK(taken[2] > 100);
}

TEST_CASE("register rows: decode rows of D = 4096 and 8192 take them, many-token and invariant rows do not", "[cpu]") {
  for (DType t : {DType::kBf16, DType::kFp16})
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot}) {
      for (std::int64_t n = 1; n <= 16; ++n) {
        INFO(dtype_name(t) << " N " << n);
        const NormLaunch d4096 = norm_launch(s, n, 4096, t, 132), d8192 = norm_launch(s, n, 8192, t, 132);
        CHECK(cuda::register_packs(d4096, Profile::kFlashInfer, decode_block_threads(d4096.packs_per_row)) == 1);
        CHECK(cuda::register_packs(d8192, Profile::kFlashInfer, decode_block_threads(d8192.packs_per_row)) == 2);
        CHECK(cuda::register_packs(d4096, Profile::kInvariant, decode_block_threads(d4096.packs_per_row)) == 0);
      }
      // Uneven parts of two blocks a row (96 packs: 64 and 32), which cuda_fused_test runs (and D = 384 in fp32).
      const NormLaunch d768 = norm_launch(s, 1, 768, t, 132);
      CHECK(cuda::register_packs(d768, Profile::kFlashInfer, decode_block_threads(d768.packs_per_row)) == 1);
      CHECK(cuda::replica_part_packs(d768.packs_per_row, 2) == 64);
      const NormLaunch many = norm_launch(s, 2048, 4096, t, 132);
      CHECK(cuda::register_packs(many, Profile::kFlashInfer, cuda::kManyRowsBlockThreads) == 0);
    }
}

TEST_CASE("register rows by replicas: every row of a round gets its replicas, each resident, as the kernel counts them",
          "[cpu]") {
  int replicated = 0;
  for (std::int64_t row_packs : {32, 64, 96, 160, 256, 320, 512, 1024})
    for (std::int64_t rows = 1; rows <= 70; ++rows)
      for (std::int64_t fit = 1; fit <= 140; fit += 1 + fit / 16)
        for (std::int64_t blocks = std::min(rows, fit); blocks <= fit; blocks += 1 + blocks / 3) {
          INFO("rows " << rows << " of " << row_packs << " packs, blocks " << blocks << " fit " << fit);
          const cuda::ReplicaPlan plan = cuda::replica_plan(rows, row_packs, blocks, fit);
          const int r = plan.replicas;
          REQUIRE((r == 1 || r == 2 || r == 4 || r == 8));
          REQUIRE(r <= cuda::kMaxRowReplicas);
          REQUIRE(plan.part == cuda::replica_part_packs(row_packs, r));
          REQUIRE((r - 1) * plan.part < row_packs);  // no replica without packs to write
          const bool more_fit =
              rows * r * 2 <= fit && (2 * r - 1) * cuda::replica_part_packs(row_packs, 2 * r) < row_packs;
          REQUIRE((r == cuda::kMaxRowReplicas || !more_fit));  // as many as fit
          REQUIRE(plan.blocks % r == 0);
          REQUIRE(plan.blocks <= fit);
          REQUIRE(plan.blocks >= blocks / r * r);  // no fewer blocks for the stores and clears
          if (r > 1) ++replicated;
          // A call that writes over its residual (in place) asks for one: every block its own rows, as many
          // blocks as without replicas.
          const cuda::ReplicaPlan alone = cuda::replica_plan(rows, row_packs, blocks, fit, /*most_replicas=*/1);
          REQUIRE(alone.replicas == 1);
          REQUIRE(alone.part == cuda::replica_part_packs(row_packs, 1));
          REQUIRE(alone.blocks == std::min(std::max(blocks, rows), fit));
          // begin_rows: block b is replica b % r of group b / r, and group g computes rows g, g + groups, ...
          const std::int64_t groups = plan.blocks / r;
          std::vector<int> computed(static_cast<std::size_t>(rows * r), 0);  // [row][replica]
          for (std::int64_t b = 0; b < plan.blocks; ++b)
            for (std::int64_t row = b / r; row < rows; row += groups)
              ++computed[static_cast<std::size_t>(row * r + b % r)];
          for (std::int64_t i = 0; i < rows * r; ++i)  // replicas 0..r-1 of every row, each once
            if (computed[static_cast<std::size_t>(i)] != 1)
              FAIL("row " << i / r << " replica " << i % r << " is computed " << computed[static_cast<std::size_t>(i)]
                          << " times");
        }
  CHECK(replicated > 1000);
}

TEST_CASE("register rows by replicas: each pack's outputs are written by one replica, whole warps at a time", "[cpu]") {
  for (int replicas = 1; replicas <= 8; replicas *= 2)
    for (int threads = 64; threads <= cuda::kFusedBlockThreads; threads += 32)
      for (int packs = 1; packs <= cuda::kMaxRegisterPacks; ++packs)
        for (std::int64_t row_packs = 1; row_packs <= std::int64_t{packs} * threads; row_packs += 7) {
          INFO("replicas " << replicas << " threads " << threads << " packs " << packs << " row_packs " << row_packs);
          const auto part = static_cast<std::uint32_t>(cuda::replica_part_packs(row_packs, replicas));
          REQUIRE(part % 32 == 0);
          std::vector<int> writers(static_cast<std::size_t>(packs * threads), 0);
          for (std::uint32_t replica = 0; replica < static_cast<std::uint32_t>(replicas); ++replica)
            for (int i = 0; i < threads; ++i)
              for (int j = 0; j < packs; ++j) {
                // norm_row_in_registers: thread i's pass j, and whether its pack's outputs are this replica's
                const int pack = i + j * threads;
                const auto in_part_of = [&](int p) { return static_cast<std::uint32_t>(p) - replica * part < part; };
                const bool in_part = in_part_of(pack);
                if (in_part != in_part_of(pack - i % 32))
                  FAIL("thread " << i << " pass " << j << ": not its warp's part");
                if (in_part != in_part_of(pack ^ 1)) FAIL("pack " << pack << ": not its NVFP4 partner's part");
                if (in_part && pack < row_packs) ++writers[static_cast<std::size_t>(pack)];
              }
          for (std::int64_t pack = 0; pack < row_packs; ++pack)
            if (writers[static_cast<std::size_t>(pack)] != 1)
              FAIL("pack " << pack << " is written by " << writers[static_cast<std::size_t>(pack)] << " replicas");
        }
}

TEST_CASE("register rows: the second level without its +0 levels, and a fold over +0 blocks, give the same bits",
          "[cpu]") {
  // norm_row_in_registers leaves out the butterfly levels where every leaf only adds +0, and folds all 8 lanes'
  // block sums (+0 past the cluster). Sums of squares are never -0, and what follows is an FTZ add or the
  // scale's fma; this replays both ways, with that consumer, on leaves of every kind.
  const std::uint32_t kinds[] = {0x00000000u, 0x00000001u, 0x00400000u, 0x007FFFFFu, 0x00800000u, 0x3F800000u,
                                 0x3F800001u, 0x4B000000u, 0x7F7FFFFFu, 0x7F800000u, 0x7FFFFFFFu, 0x33800000u};
  const std::uint32_t rcp = 0x39800000u, eps = 0x3727C5ACu;  // about 1/4096, 1e-5
  std::uint64_t state = 12345;
  const auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(state >> 33);
  };
  for (bool ftz : {true, false})
    for (int n = 1; n <= cuda::kMaxOneThreadLeaves; ++n) {
      int leaves = 1;
      while (leaves < n) leaves *= 2;
      for (int trial = 0; trial < 2000; ++trial) {
        std::uint32_t full[32] = {}, lean[32] = {};
        for (int j = 0; j < n; ++j) full[j] = lean[j] = trial % 3 == 0 ? next() & 0x7FFFFFFFu : kinds[next() % 12];
        const auto levels = [&](std::uint32_t(&a)[32], int from) {
          for (int mask = from; mask >= 1; mask /= 2)
            for (int i = 0; i < leaves && i < mask; ++i) a[i] = add_fp32(a[i], mask >= leaves ? 0u : a[i + mask], ftz);
        };
        levels(full, 16);
        levels(lean, leaves / 2);
        INFO("n " << n << " ftz " << ftz << " full " << full[0] << " lean " << lean[0]);
        // Either goes on to the fold (from +0, then +0 blocks) or, a block alone, to the scale's fma.
        std::uint32_t folded = add_fp32(0u, lean[0], ftz);
        for (int pad = 0; pad < 7; ++pad) folded = add_fp32(folded, 0u, ftz);
        REQUIRE(folded == add_fp32(0u, full[0], ftz));
        REQUIRE(fma_fp32(lean[0], rcp, eps, ftz) == fma_fp32(full[0], rcp, eps, ftz));
        REQUIRE(fma_fp32(folded, rcp, eps, ftz) == fma_fp32(add_fp32(0u, full[0], ftz), rcp, eps, ftz));
      }
    }
}

TEST_CASE("register rows: their order of operations, replayed on the CPU, gives the reference's bits", "[cpu]") {
  // norm_row_in_registers' arithmetic step by step (thread p's pack p, its sum of squares, every warp's
  // butterfly, lane b's second level without the +0 levels, the fold over all 8 lanes, the strategy's
  // products of the two halves) against reference fused_rms_norm_row, on random rows with NaN, Inf,
  // subnormal and -0 values among them, wherever register_packs takes the row.
  std::mt19937_64 rng(7);
  const std::uint32_t specials[] = {0x0000u, 0x8000u, 0x0001u, 0x8001u, 0x7F80u, 0xFF80u, 0x7FC0u, 0x7C00u, 0x0080u};
  int rows = 0;
  for (DType t : {DType::kBf16, DType::kFp16})
    for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot})
      for (bool ftz : {true, false})
        for (std::int64_t hidden : {1024, 2048, 4096, 8192})
          for (std::int64_t n : {1, 16, 40, 64}) {
            const NormLaunch l = norm_launch(s, n, hidden, t, 132);
            const int threads = decode_block_threads(l.packs_per_row);
            const int packs = cuda::register_packs(l, ftz ? Profile::kFlashInfer : Profile::kIeee, threads);
            if (packs == 0) continue;
            NormArithmetic arith;
            arith.ftz = arith.reciprocal_fma = ftz;
            arith.epsilon = 0x3727C5ACu;
            arith.approx = approx_math_of<rsqrt_approx_ftz, rcp_approx_ftz>();
            const int warps = packs * threads / 32, their_warps = l.block_size() / 32;
            for (int trial = 0; trial < 8; ++trial) {
              arith.weight_bias = trial % 2 ? 0x3F800000u : 0u;
              const auto value = [&]() -> std::uint32_t {
                if (trial % 4 == 3 && rng() % 40 == 0) return specials[rng() % 9];
                const std::uint32_t base = t == DType::kBf16 ? 0x3C00u : 0x3400u;
                return (base + static_cast<std::uint32_t>(rng() % 0x680)) | (rng() % 2 ? 0x8000u : 0u);
              };
              std::vector<std::uint32_t> all_reduced(hidden), residual(hidden), gamma(hidden), normalized(hidden),
                  residual_out(hidden), pre(hidden);
              for (std::int64_t i = 0; i < hidden; ++i) {
                all_reduced[i] = value();
                residual[i] = value();
                gamma[i] = value();
              }
              fused_rms_norm_row(l, arith, all_reduced, residual, gamma, normalized, residual_out);
              // Each thread's pack, its squares from +0; each warp's butterfly (every lane exists).
              const int elements = elements_per_pack(t);
              std::vector<std::uint32_t> warp_sums(warps);
              for (int w = 0; w < warps; ++w) {
                std::uint32_t lanes[32];
                for (int lane = 0; lane < 32; ++lane) {
                  const int pack = w * 32 + lane;
                  std::uint32_t acc = 0;
                  for (int e = 0; pack < l.packs_per_row && e < elements; ++e) {
                    const std::int64_t i = std::int64_t{pack} * elements + e;
                    pre[i] = add_native(all_reduced[i], residual[i], t);
                    const std::uint32_t x = widen_to_fp32(pre[i], t);
                    acc = l.squares_in_t ? add_fp32(acc, widen_to_fp32(mul_native(pre[i], pre[i], t), t), ftz)
                                         : fma_fp32(x, x, acc, ftz);
                  }
                  lanes[lane] = acc;
                }
                for (int mask = 16; mask >= 1; mask /= 2) {
                  std::uint32_t next[32];
                  for (int lane = 0; lane < 32; ++lane) next[lane] = add_fp32(lanes[lane], lanes[lane ^ mask], ftz);
                  std::copy(next, next + 32, lanes);
                }
                warp_sums[w] = lanes[0];
              }
              // Lane b's second level without the +0 levels; the fold from +0 over all 8 lanes.
              int leaves = 1;
              while (leaves < their_warps) leaves *= 2;
              std::uint32_t block_sums[8] = {};
              for (int b = 0; b < l.cluster_size(); ++b) {
                std::uint32_t a[8] = {};
                for (int j = 0; j < their_warps; ++j) a[j] = warp_sums[b * their_warps + j];
                for (int mask = leaves / 2; mask >= 1; mask /= 2)
                  for (int i = 0; i < mask; ++i) a[i] = add_fp32(a[i], a[i + mask], ftz);
                block_sums[b] = a[0];
              }
              std::uint32_t sum = block_sums[0];
              if (l.cluster_launch && l.cluster_size() > 1) {
                sum = 0;
                for (std::uint32_t b : block_sums) sum = add_fp32(sum, b, ftz);
              }
              const std::uint32_t scale = row_scale(arith, hidden, sum);
              for (std::int64_t i = 0; i < hidden; ++i) {
                const std::uint32_t g = add_fp32(arith.weight_bias, widen_to_fp32(gamma[i], t), ftz);
                const std::uint32_t x = widen_to_fp32(pre[i], t);
                const std::uint32_t v = l.gamma_first ? mul_fp32(mul_fp32(g, x, ftz), scale, ftz)
                                                      : mul_fp32(mul_fp32(x, scale, ftz), g, ftz);
                if (narrow_from_fp32(v, t) != normalized[i] || pre[i] != residual_out[i])
                  FAIL(dtype_name(t) << " D " << hidden << " N " << n << " ftz " << ftz << " element " << i);
              }
              ++rows;
            }
          }
  CHECK(rows > 500);
}
