#include "sim/detail/kernel_support.h"

#include <fmt/format.h>

#include <algorithm>

#include "reference/float_bits.h"
#include "reference/fold.h"
#include "sim/inputs.h"

namespace ar::sim::detail {

Pack input_pack(const KernelEnv& env, int rank, std::uint32_t token, std::uint32_t pack) {
  const ProblemShape& s = env.call.shape;
  const int epp = env.call.elements_per_pack;
  Pack p{};
  for (int e = 0; e < epp; ++e) {
    const std::int64_t index =
        (static_cast<std::int64_t>(rank) * s.tokens + token) * s.hidden + static_cast<std::int64_t>(pack) * epp + e;
    std::uint32_t bits = env.call.input.bits(index);
    const bool even_half = dtype_bytes(s.dtype) == 2 && e % 2 == 0;
    if (env.config.mutation != Mutation::kNoInputSanitize && (env.config.sanitize_even_elements || !even_half))
      bits = sanitize_negative_zero(bits, s.dtype);
    set_element_bits(p, e, s.dtype, bits);
  }
  return p;
}

std::uint32_t oneshot_slot(const CtaState& c, const KernelEnv& env, Item it, std::uint32_t src) {
  const std::int64_t element = (static_cast<std::int64_t>(it.token) * world(env) + src) * hidden(env) +
                               static_cast<std::int64_t>(it.pack) * env.call.elements_per_pack;
  return static_cast<std::uint32_t>(stage_word(c.current_buffer(), 0, 1, c.buffer_bytes(), element, elem_bytes(env)));
}

std::uint32_t scatter_slot(const CtaState& c, const KernelEnv& env, Item it, std::uint32_t src) {
  const std::int64_t row = it.token / static_cast<std::uint32_t>(world(env));
  const std::int64_t element =
      (row * world(env) + src) * hidden(env) + static_cast<std::int64_t>(it.pack) * env.call.elements_per_pack;
  return static_cast<std::uint32_t>(stage_word(c.current_buffer(), 0, 2, c.buffer_bytes(), element, elem_bytes(env)));
}

std::uint32_t broadcast_slot(const CtaState& c, const KernelEnv& env, Item it) {
  const std::int64_t element = static_cast<std::int64_t>(it.token) * hidden(env) +
                               static_cast<std::int64_t>(it.pack) * env.call.elements_per_pack;
  return static_cast<std::uint32_t>(stage_word(c.current_buffer(), 1, 2, c.buffer_bytes(), element, elem_bytes(env)));
}

std::uint32_t polled_slot(const CtaState& c, const KernelEnv& env, Item it) {
  switch (c.phase(env)) {
    case Phase::kPoll: return oneshot_slot(c, env, it, c.i);
    case Phase::kReduce: return scatter_slot(c, env, it, c.i);
    default: return broadcast_slot(c, env, it);
  }
}

SlotDescription describe_polled_slot(const CtaState& c, const KernelEnv& env, Item it) {
  const auto w = static_cast<std::uint32_t>(world(env));
  switch (c.phase(env)) {
    case Phase::kPoll:
      return {fmt::format("ONESHOT slot [t={}][src={}] pack {}", it.token, c.i, it.pack), static_cast<int>(c.i)};
    case Phase::kReduce:
      return {fmt::format("SCATTER row {} [src={}] pack {} (token {})", it.token / w, c.i, it.pack, it.token),
              static_cast<int>(c.i)};
    default: return {fmt::format("BROADCAST token {} pack {}", it.token, it.pack), static_cast<int>(it.token % w)};
  }
}

void next_pc(CtaState& c) {
  ++c.pc;
  c.lane = 0;
  c.i = 0;
  c.pass_begin = 0;
  c.clear_stage = 0;
  c.broadcasting = false;
  c.read_mask = 0;
  c.item = 0;
  c.sub = 0;
  c.peer = 0;
}

void accept_polled(const CtaState& c, const KernelEnv& env, Item it, std::uint32_t src, std::uint32_t word,
                   const char* slot_name) {
  AcceptedPack a;
  a.rank = c.rank;
  a.cta = cta_number(c, env);
  a.call = env.call.index;
  a.writer = static_cast<int>(src);
  a.word = word;
  a.slot = slot_name;
  a.slot_detail = fmt::format("token {} pack {} source r{} in buffer {}", it.token, it.pack, src, c.current_buffer());
  std::copy_n(c.polled.begin() + src * 4, 4, a.words.begin());
  std::copy_n(c.polled_ghosts.begin() + src * 4, 4, a.ghosts.begin());
  env.checker.on_pack_accepted(a);
}

void accept_broadcast(const CtaState& c, const KernelEnv& env, Item it, std::uint32_t word, const char* how) {
  AcceptedPack a;
  a.rank = c.rank;
  a.cta = cta_number(c, env);
  a.call = env.call.index;
  a.writer = static_cast<int>(it.token % static_cast<std::uint32_t>(world(env)));
  a.word = word;
  a.slot =
      env.grid.kernel == Kernel::kNorm ? "TWOSHOT BROADCAST slot (rmsNormLamport's load)" : "TWOSHOT BROADCAST slot";
  a.slot_detail = fmt::format("token {} pack {} in buffer {}", it.token, it.pack, c.current_buffer());
  a.words = c.read_words;
  a.ghosts = c.read_ghosts;
  env.checker.on_pack_accepted(a);
  emit_outputs(c, env, it.token, it.pack, c.read_words, how, [&](int) {
    return fmt::format("read verbatim from BROADCAST token {} written by owner r{}", it.token, a.writer);
  });
}

Pack fold_pack(const CtaState& c, const KernelEnv& env, const Pack* own, int folding_rank,
               std::vector<std::uint32_t>& operands) {
  const int w = world(env);
  const DType t = env.call.shape.dtype;
  Pack out{};
  operands.resize(static_cast<std::size_t>(w));
  for (int e = 0; e < env.call.elements_per_pack; ++e) {
    for (int s = 0; s < w; ++s) {
      Pack p;
      if (own && s == c.rank)
        p = *own;
      else
        std::copy_n(c.polled.begin() + s * 4, 4, p.begin());
      // rank-order: the folding rank's own value first, then the others in ascending order.
      int slot = s;
      if (env.config.mutation == Mutation::kRankOrder) slot = s == folding_rank ? 0 : (s < folding_rank ? s + 1 : s);
      operands[static_cast<std::size_t>(slot)] = element_bits(p, e, t);
    }
    set_element_bits(out, e, t, reduce_element(operands, t, env.call.order));
  }
  return out;
}

std::string fold_detail(const CtaState& c, const KernelEnv& env, std::uint32_t token, std::uint32_t pack,
                        const Pack* own, int folding_rank, int e) {
  const int w = world(env);
  const DType t = env.call.shape.dtype;
  std::vector<int> order(static_cast<std::size_t>(w));
  for (int s = 0; s < w; ++s) order[static_cast<std::size_t>(s)] = s;
  if (env.config.mutation == Mutation::kRankOrder) {
    order.erase(order.begin() + folding_rank);
    order.insert(order.begin(), folding_rank);
  }
  std::string text = fmt::format("r{} folded, in this order ({}):", folding_rank, describe(env.call.order));
  for (int s : order) {
    Pack p;
    if (own && s == c.rank)
      p = *own;
    else
      std::copy_n(c.polled.begin() + s * 4, 4, p.begin());
    text += fmt::format(" r{}=0x{:0{}x}", s, element_bits(p, e, t), dtype_bytes(t) * 2);
  }
  const ProblemShape& sh = env.call.shape;
  std::string inputs;
  for (int s = 0; s < w; ++s)
    inputs += fmt::format(" r{}=0x{:0{}x}", s,
                          env.call.input.bits((static_cast<std::int64_t>(s) * sh.tokens + token) * sh.hidden +
                                              static_cast<std::int64_t>(pack) * env.call.elements_per_pack + e),
                          dtype_bytes(t) * 2);
  return text + fmt::format("; the reference folds the inputs{} in ascending rank order", inputs);
}

Pack fold_and_check(CtaState& c, const KernelEnv& env, Item it, const Pack* own, const char* how) {
  std::vector<std::uint32_t> operands;
  const Pack sum = fold_pack(c, env, own, c.rank, operands);
  emit_outputs(c, env, it.token, it.pack, sum, how,
               [&](int e) { return fold_detail(c, env, it.token, it.pack, own, c.rank, e); });
  clear_registers(c);
  return sum;
}

void read_flags_half(CtaState& c, KernelEnv& env, bool high) {
  const std::uint32_t first = high ? 4 : 0;
  const Pack p = env.ops.ld_v4({c.rank, env.flags_word + first});
  std::copy(p.begin(), p.end(), c.flags.begin() + first);
  if (high) {
    env.checker.on_flags_read(c.rank, cta_number(c, env), env.call.index, c.flags);
    const auto words = static_cast<std::size_t>(world(env)) * 4;
    c.polled.assign(words, 0);
    c.polled_ghosts.assign(words, Ghost{});
  }
  next_pc(c);
}

void clear_registers(CtaState& c) {
  std::fill(c.polled.begin(), c.polled.end(), 0u);
  std::fill(c.polled_ghosts.begin(), c.polled_ghosts.end(), Ghost{});
}

void store_clear(const CtaState& c, const KernelEnv& env, std::int64_t byte) {
  const Pack empty{kLamportEmptyWord, kLamportEmptyWord, kLamportEmptyWord, kLamportEmptyWord};
  // (An address past 2^32 words is clamped; the operation reports it out of bounds either way.)
  env.ops.st_v4({c.rank, static_cast<std::uint32_t>(std::min<std::int64_t>(byte / 4, 0xFFFFFFF0))}, empty,
                {WriteKind::kClear, static_cast<std::uint8_t>(c.rank), call_tag(env)});
}

LamportFlags next_flags(const CtaState& c, const KernelEnv& env) {
  LamportFlags read;
  std::copy(c.flags.begin(), c.flags.end(), read.words.begin());
  LamportFlags next = advance_flags(read, env.call.record);
  if (env.config.mutation == Mutation::kTwoBuffers) next.words[0] = (read.current_buffer() + 1) % 2;
  return next;
}

void store_flags_half(const CtaState& c, const KernelEnv& env, bool high) {
  const LamportFlags next = next_flags(c, env);
  const std::size_t first = high ? 4 : 0;
  env.ops.st_v4({c.rank, env.flags_word + static_cast<std::uint32_t>(first)},
                Pack{next.words[first], next.words[first + 1], next.words[first + 2], next.words[first + 3]},
                flags_ghost(c, env));
}

void reset_arrival_counter(const CtaState& c, const KernelEnv& env) {
  env.ops.st_u32({c.rank, env.flags_word + kArrivalWord}, 0, flags_ghost(c, env));
}

}  // namespace ar::sim::detail
