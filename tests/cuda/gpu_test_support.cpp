#include "gpu_test_support.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "harness/io/golden_cases.h"
#include "reference/all_reduce.h"

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
  return s;
}

CallCheck run_and_check(cuda::VirtualGroup& g, const HostTensor& input, const cuda::VirtualGroup::Call& call,
                        FlagsModel* model) {
  CallCheck check;
  g.upload(input);
  g.poison_outputs();
  check.wait = g.run(call);
  if (check.wait) return check;
  const HostTensor expected = reference_all_reduce(input, call.strategy, call.profile);
  for (int r = 0; r < g.world_size(); ++r) {
    const BitDiff d = compare_bits(g.download(r, call.shape), expected);
    check.elements += d.elements;
    check.mismatches += d.differing;
    if (d.differing && check.first_rank < 0) {
      check.first_rank = r;
      check.first = d;
    }
  }
  if (model) {
    const ClearRecord record = clear_record(call.strategy, call.shape);
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
        for (Profile p : {Profile::kFlashInfer, Profile::kIeee})
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

std::string label(const cuda::VirtualGroup::Call& c) {
  return fmt::format("W={} {} N={} D={} {}/{} pdl={}", c.shape.world_size, dtype_name(c.shape.dtype), c.shape.tokens,
                     c.shape.hidden, strategy_name(c.strategy), profile_name(c.profile), c.pdl ? "on" : "off");
}

}  // namespace ar::test
