#include "gpu_test_support.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "harness/io/golden_cases.h"
#include "reference/all_reduce.h"
#include "reference/fused_quant.h"
#include "reference/fused_rms_norm.h"

namespace ar::test {

FlagsModel::FlagsModel(const cuda::VirtualGroup& g)
    : ranks(g.world_size(), initial_flags(static_cast<std::uint32_t>(g.workspace().buffer_bytes()))) {}

std::string CallCheck::describe() const {
  std::string s = fmt::format("{} of {} elements differ", mismatches, elements);
  if (first_rank >= 0)
    s += fmt::format("; rank {} first at flat index {}: GPU {:#x}, reference {:#x}", first_rank, first.first_index,
                     first.first_a, first.first_b);
  if (!flags_match) s += "; flags: " + flags_detail;
  if (wait) s += "; " + cuda::describe_wait_error(*wait);
  if (!quant_detail.empty()) s += "; " + quant_detail;
  return s;
}

namespace {

void count(CallCheck& check, int rank, const BitDiff& d) {
  check.elements += d.elements;
  check.mismatches += d.differing;
  if (d.differing && check.first_rank < 0) {
    check.first_rank = rank;
    check.first = d;
  }
}

void check_flags(cuda::VirtualGroup& g, const cuda::VirtualGroup::Call& call, FlagsModel* model, CallCheck& check) {
  if (model) {
    const ClearRecord record = clear_record(call.strategy, call.shape, g.plan(call).direct);
    for (int r = 0; r < g.world_size(); ++r) {
      model->ranks[r] = advance_flags(model->ranks[r], record);
      const LamportFlags seen = g.workspace().flags(r);
      if (!(seen == model->ranks[r]) && check.flags_match) {
        check.flags_match = false;
        check.flags_detail = fmt::format("rank {} has [{}], the reference model [{}]", r, fmt::join(seen.words, " "),
                                         fmt::join(model->ranks[r].words, " "));
      }
    }
  }
}

// Counts every quantised byte and scale of one rank against the model's (compare_quant).
void count_quant(CallCheck& check, int rank, const QuantizedOutput& gpu, const QuantizedOutput& model) {
  const QuantDiff d = compare_quant(gpu, model);
  check.elements += d.elements;
  check.mismatches += d.differing;
  if (d.differing && check.quant_detail.empty()) check.quant_detail = fmt::format("rank {} {}", rank, d.first);
}

}  // namespace

CallCheck run_and_check(cuda::VirtualGroup& g, const HostTensor& input, const cuda::VirtualGroup::Call& call,
                        FlagsModel* model) {
  CallCheck check;
  g.upload(input);
  g.poison_outputs();
  check.wait = g.run(call);
  if (check.wait) return check;
  const HostTensor expected = reference_all_reduce(input, call.strategy, call.profile);
  for (int r = 0; r < g.world_size(); ++r) count(check, r, compare_bits(g.download(r, call.shape), expected));
  check_flags(g, call, model, check);
  return check;
}

NormInputs random_norm_inputs(const ProblemShape& shape, std::uint64_t seed, int spread, std::uint32_t weight_bias,
                              int sm_count) {
  NormInputs n;
  const DType t = shape.dtype;
  n.residual = random_input(t, 1, shape.tokens, shape.hidden, seed, spread).reshaped({shape.tokens, shape.hidden});
  n.gamma = random_input(t, 1, 1, shape.hidden, seed + 0x9E3779B9u, 1).reshaped({shape.hidden});
  n.arguments = cuda::NormArguments{default_epsilon(t), weight_bias, sm_count};
  return n;
}

CallCheck run_and_check_fused(cuda::VirtualGroup& g, const HostTensor& input, const NormInputs& norm,
                              cuda::VirtualGroup::Call call, FlagsModel* model) {
  CallCheck check;
  call.norm = norm.arguments;
  g.upload(input);
  g.upload_norm_inputs(norm.residual, norm.gamma);
  const QuantOptions quant{norm.arguments.quant, norm.quant_scale, norm.arguments.scale_layout};
  if (quant.mode != QuantMode::kNone) g.upload_quant_scale(quant.scale);
  g.poison_outputs();
  check.wait = g.run(call);
  if (check.wait) return check;
  const FusedOptions options{.strategy = call.strategy,
                             .profile = call.profile,
                             .sm_count = norm.arguments.sm_count,
                             .epsilon = norm.arguments.epsilon,
                             .weight_bias = norm.arguments.weight_bias};
  const FusedResult expected = reference_fused_rms_norm(input, norm.residual, norm.gamma, options);
  for (int r = 0; r < g.world_size(); ++r) {
    count(check, r, compare_bits(g.download(r, call.shape), expected.normalized));
    const HostTensor residual_out =
        call.residual_in_place ? g.download_residual(r, call.shape) : g.download_residual_out(r, call.shape);
    count(check, r, compare_bits(residual_out, expected.residual_out));
  }
  if (quant.mode != QuantMode::kNone) {
    const QuantizedOutput expected_quant = quantize_fused(expected, norm.gamma, options, quant);
    for (int r = 0; r < g.world_size(); ++r)
      count_quant(check, r, g.download_quant(r, call.shape, quant.mode, quant.layout), expected_quant);
  }
  check_flags(g, call, model, check);
  return check;
}

cuda::VirtualGroup::Options group_options(int world, const std::vector<ProblemShape>& shapes) {
  std::int64_t buffer = 32, io = 16;
  for (ProblemShape s : shapes) {
    s.world_size = world;
    for (Strategy st : {Strategy::kOneShot, Strategy::kTwoShot})
      buffer = std::max(buffer, required_buffer_bytes(st, s));
    io = std::max(io, s.bytes_per_rank());
  }
  cuda::VirtualGroup::Options o;
  o.world_size = world;
  o.buffer_bytes_request = buffer;
  o.io_bytes_per_rank = io;
  return o;
}

int run_every_golden_case(const GroupOptionsFor& options) {
  const std::vector<GoldenCase> cases = golden_cases();
  std::map<int, std::vector<const GoldenCase*>> by_world;
  for (const auto& c : cases) by_world[static_cast<int>(c.input.dim(0))].push_back(&c);
  int runs = 0;
  for (const auto& [world, group_cases] : by_world) {
    std::vector<ProblemShape> shapes;
    for (const auto* c : group_cases) shapes.push_back(shape_of_input(c->input));
    cuda::VirtualGroup group(options(world, shapes));
    FlagsModel model(group);
    for (const auto* c : group_cases)
      for (Strategy s : {Strategy::kOneShot, Strategy::kTwoShot, Strategy::kAuto})
        for (Profile p : {Profile::kFlashInfer, Profile::kIeee, Profile::kInvariant})
          for (bool pdl : {false, true}) {
            const cuda::VirtualGroup::Call call{shape_of_input(c->input), s, p, pdl};
            const CallCheck check = run_and_check(group, c->input, call, &model);
            INFO(c->name << " (seed " << c->seed << "): " << label(call) << ": " << check.describe());
            REQUIRE(!check.wait);
            REQUIRE(check.mismatches == 0);
            REQUIRE(check.flags_match);
            ++runs;
          }
  }
  return runs;
}

cuda::LaunchPlan LaunchSweep::plan(cuda::VirtualGroup& g, cuda::VirtualGroup::Call call, const NormInputs& norm) {
  call.norm = norm.arguments;
  const cuda::LaunchPlan p = g.plan(call);
  const bool registers = cuda::in_registers(p.row_blocks);
  register_calls += registers ? 1 : 0;
  replicated_calls += registers && p.row_replicas > 1 ? 1 : 0;
  return p;
}

std::string label(const cuda::VirtualGroup::Call& c) {
  std::string s =
      fmt::format("W={} {} N={} D={} {}/{} pdl={}", c.shape.world_size, dtype_name(c.shape.dtype), c.shape.tokens,
                  c.shape.hidden, strategy_name(c.strategy), profile_name(c.profile), c.pdl ? "on" : "off");
  if (c.norm) s += fmt::format(" fused (tree of {} SMs, weight bias {:#x})", c.norm->sm_count, c.norm->weight_bias);
  if (c.norm && c.norm->quant != QuantMode::kNone)
    s += fmt::format(" {} ({} scales)", quant_mode_name(c.norm->quant), scale_layout_name(c.norm->scale_layout));
  return s;
}

}  // namespace ar::test
