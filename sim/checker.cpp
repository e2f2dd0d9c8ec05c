#include "sim/checker.h"

#include <fmt/format.h>

#include "sim/call_context.h"
#include "sim/inputs.h"
#include "sim/word_description.h"

namespace ar::sim {

Checker::Checker(const SimConfig& config, bool record_outputs)
    : config_(config),
      flags_seen_(config.calls.size()),
      rank_flags_seen_(config.calls.size() * static_cast<std::size_t>(config.world_size)) {
  if (record_outputs) {
    outputs_.resize(config.calls.size());
    for (std::size_t k = 0; k < config.calls.size(); ++k)
      for (int r = 0; r < config.world_size; ++r)
        outputs_[k].emplace_back(config.calls[k].shape.dtype,
                                 std::vector<std::int64_t>{config.calls[k].shape.tokens, config.calls[k].shape.hidden});
  }
}

void Checker::fail(Failure f) {
  if (failure_) return;
  f.step = step_;
  failure_ = std::move(f);
}

void Checker::add_detail(const std::string& text) {
  if (failure_) failure_->message += "; " + text;
}

void Checker::on_flags_read(int rank, int cta, int call, const std::array<std::uint32_t, 8>& words) {
  // Within the rank first (the CTAs of one launch), then across ranks.
  std::optional<FlagsSeen>& mine =
      rank_flags_seen_[static_cast<std::size_t>(call) * static_cast<std::size_t>(config_.world_size) + rank];
  std::optional<FlagsSeen>& any = flags_seen_[static_cast<std::size_t>(call)];
  const std::optional<FlagsSeen>& seen = mine ? mine : any;
  if (!mine) mine = FlagsSeen{words, rank, cta};
  if (!any) any = FlagsSeen{words, rank, cta};
  if (!seen || seen->words == words) return;
  const auto show = [](const std::array<std::uint32_t, 8>& w) {
    return fmt::format("{{cur {}, dirty {}, BPB {}, dirty stages {}, bytes {} {} {} {}}}", w[0], w[1], w[2], w[3], w[4],
                       w[5], w[6], w[7]);
  };
  Failure f{.kind = FailureKind::kFlagsMismatch, .rank = rank, .cta = cta, .call = call};
  const ResolvedCall& rc = config_.calls[static_cast<std::size_t>(call)];
  const bool two_kernels = config_.protocol == Protocol::kFlashInfer && rc.fused && rc.strategy() == Strategy::kTwoShot;
  f.message = fmt::format(
      "flags inconsistent in call {}: r{} CTA {} read {} but r{} CTA {} read {}. Every CTA of every rank must "
      "start a call from the same flags{}; {}",
      call, rank, cta, show(words), seen->rank, seen->cta, show(seen->words),
      two_kernels ? fmt::format(" (in this fused TWOSHOT call, CTAs {} and up are rmsNormLamport's, which reads them "
                                "while the all-reduce kernel runs: only rmsNormLamport may rotate them)",
                                flashinfer_grids(rc, config_.packs_per_cta, config_.sm_count).at(0).ctas)
                  : std::string(),
      rank != seen->rank ? "the ranks' rotations have diverged"
      : config_.protocol == Protocol::kOurs
          ? "this block read them after another block of its rank had already rotated them (only the last block "
            "to arrive may advance the flags: every block must have read them first)"
          : "this CTA read them after its own rank's CTA 0 had rotated them (the arrival counter must hold the "
            "rotation back until every CTA has read the flags)");
  fail(std::move(f));
}

void Checker::on_call_counter_read(int rank, int cta, int call, std::uint32_t value) {
  if (value == static_cast<std::uint32_t>(call)) return;
  Failure f{.kind = FailureKind::kFlagsMismatch, .rank = rank, .cta = cta, .call = call};
  f.message = fmt::format(
      "flags inconsistent in call {}: r{} block {} read the call counter (flag word 12) as {}, but the rank has "
      "completed {} calls: {}",
      call, rank, cta, value, call,
      value < static_cast<std::uint32_t>(call) ? "a launch ended without any block advancing the flags"
                                               : "the flags were advanced more than once in a launch, or early");
  fail(std::move(f));
}

void Checker::on_pack_accepted(const AcceptedPack& p) {
  for (int k = 0; k < 4; ++k) {
    const Ghost g = p.ghosts[static_cast<std::size_t>(k)];
    if (g.kind == WriteKind::kData && g.writer == p.writer && g.call == p.call) continue;
    std::string words;
    for (int j = 0; j < 4; ++j)
      words += fmt::format("{}{:08x} ({})", j ? ", " : "", p.words[static_cast<std::size_t>(j)],
                           describe_ghost(p.ghosts[static_cast<std::size_t>(j)]));
    Failure f{.kind = FailureKind::kStaleRead, .rank = p.rank, .cta = p.cta, .call = p.call};
    f.message = fmt::format(
        "stale read: r{} CTA {} in call {} {} {} ({}) at {}{}, but word {} is {} instead of data from r{} in call "
        "{}. Words read: [{}]. {}",
        p.rank, p.cta, p.call, p.after_flag ? "read" : "accepted", p.slot, p.slot_detail,
        describe_word(config_, p.rank, p.word), p.after_flag ? "" : " as full", k, describe_ghost(g),
        p.writer, p.call, words,
        p.after_flag ? "A row may be read only once its flag says every word of it is this call's data"
                     : "A poll may accept a pack only when every word is this call's data");
    fail(std::move(f));
    return;
  }
}

bool Checker::on_output(int rank, int cta, int call, std::int64_t element, std::uint32_t got,
                        const HostTensor& expected, const char* how) {
  if (!outputs_.empty())
    outputs_[static_cast<std::size_t>(call)][static_cast<std::size_t>(rank)].set_bits(element, got);
  const std::uint32_t want = expected.bits(element);
  if (got == want) return true;
  const std::int64_t hidden = config_.calls[static_cast<std::size_t>(call)].shape.hidden;
  const DType t = config_.calls[static_cast<std::size_t>(call)].shape.dtype;
  Failure f{.kind = FailureKind::kWrongBits,
            .rank = rank,
            .cta = cta,
            .call = call,
            .element = element,
            .token = element / hidden,
            .column = element % hidden,
            .got = got,
            .expected = want};
  const int digits = dtype_bytes(t) * 2;
  f.message =
      fmt::format("wrong bits: r{} (CTA {}) call {} element [{}, {}] ({}) is 0x{:0{}x}, the reference says 0x{:0{}x}",
                  rank, cta, call, f.token, f.column, how, got, digits, want, digits);
  fail(std::move(f));
  return false;
}

namespace {
std::uint64_t word_key(int rank, std::uint32_t word) { return (static_cast<std::uint64_t>(rank) << 32) | word; }
}  // namespace

void Checker::on_direct_read(int rank, std::uint32_t word, int call) {
  for (std::uint32_t k = 0; k < 4; ++k) direct_taken_[word_key(rank, word + k)] = static_cast<std::uint16_t>(call);
}

void Checker::on_delivery(const PendingUnit& u, const std::array<Ghost, 2>& before, std::uint32_t lamport_words,
                          std::uint32_t direct_word, int dest_call, int dest_oldest_call) {
  if (u.word >= direct_word) {
    if (u.ghost.kind != WriteKind::kData) return;  // the flags are overwritten by design
    for (int k = 0; k < 2; ++k) {
      const Ghost old = before[static_cast<std::size_t>(k)];
      const std::uint32_t word = u.word + static_cast<std::uint32_t>(k);
      if (!(u.mask & (1u << k)) || old.kind != WriteKind::kData) continue;
      const auto taken = direct_taken_.find(word_key(u.dest, word));
      if (taken != direct_taken_.end() && taken->second == old.call) continue;
      Failure f{.kind = FailureKind::kOverwriteUnread, .rank = u.dest, .call = u.ghost.call};
      f.message = fmt::format(
          "overwrite of unread data: r{}'s store of call {} lands on {}, which holds {} that r{} has not taken yet "
          "(r{} is in call {}). The direct path has no clears: a writer may reuse a row only once its reader's "
          "flags say the reader is done with it",
          u.issuer, u.ghost.call, describe_word(config_, u.dest, word), describe_ghost(old), u.dest, u.dest,
          dest_call);
      fail(std::move(f));
      return;
    }
    return;
  }
  if (u.word >= lamport_words) return;
  // A grid of an earlier call still running on the destination rank while the rank is in a later call: its
  // clears are late, not missing.
  const auto outlived = [&](int call) {
    return dest_oldest_call <= call && call < dest_call
               ? fmt::format(" (r{}'s call {} has a kernel that has not completed, though r{} is already in call {})",
                             u.dest, call, u.dest, dest_call)
               : std::string();
  };
  for (int k = 0; k < 2; ++k) {
    if (!(u.mask & (1u << k))) continue;
    const Ghost old = before[static_cast<std::size_t>(k)];
    if (old.kind != WriteKind::kData) continue;
    const std::uint32_t word = u.word + static_cast<std::uint32_t>(k);
    Failure f;
    f.rank = u.dest;
    f.call = u.ghost.call;
    if (u.ghost.kind == WriteKind::kData) {
      f.kind = FailureKind::kOverwriteUncleared;
      const int due = old.call + 1;  // a buffer is cleared one launch after its use
      f.message = fmt::format(
          "overwrite of uncleared data: r{}'s store of call {} lands on {}, which still holds {}; {}. Data may only "
          "land on empty (cleared) words",
          u.issuer, u.ghost.call, describe_word(config_, u.dest, word), describe_ghost(old),
          dest_call <= due ? fmt::format("r{} clears it in call {}, which has not done so yet: the buffer is reused "
                                         "before its one-launch-late clear",
                                         u.dest, due)
                           : fmt::format("r{} should have cleared it in call {} and is now in call {}{}", u.dest, due,
                                         dest_call, outlived(due)));
    } else if (u.ghost.kind == WriteKind::kClear && old.call >= u.ghost.call) {
      f.kind = FailureKind::kClearUnread;
      f.message = fmt::format(
          "clear of unread data: r{}'s clear in call {} (of the buffer its call {} used) lands on {}, which holds "
          "{}: a buffer was cleared while a rank could still write or read it{}",
          u.issuer, u.ghost.call, u.ghost.call == 0 ? 0 : u.ghost.call - 1, describe_word(config_, u.dest, word),
          describe_ghost(old), outlived(u.ghost.call));
    } else {
      continue;
    }
    fail(std::move(f));
    return;
  }
}

void Checker::on_out_of_bounds(int rank, int cta, int call, std::string_view op, std::string_view what, int dest,
                               std::int64_t byte, std::string_view bounds) {
  Failure f{.kind = FailureKind::kOutOfBounds, .rank = rank, .cta = cta, .call = call};
  if (bounds.empty())
    f.message = fmt::format(
        "out of bounds: r{} CTA {} in call {} issued {} ({}) to byte {} of r{}'s Lamport buffers, which end at byte "
        "{} ({} x BPB {})",
        rank, cta, call, op, what, byte, dest, kLamportBufferCount * config_.buffer_bytes, kLamportBufferCount,
        config_.buffer_bytes);
  else
    f.message = fmt::format("out of bounds: r{} CTA {} in call {} issued {} ({}) to byte {} of r{}'s memory, outside {}",
                            rank, cta, call, op, what, byte, dest, bounds);
  fail(std::move(f));
}

std::uint64_t Checker::hash() const {
  std::uint64_t h = 0xC4EC4E5ull;
  for (const auto& seen : flags_seen_) {
    if (!seen) {
      h = mix64(h ^ 0x1);
      continue;
    }
    for (std::uint32_t w : seen->words) h = mix64(h ^ w);  // who read them first changes only the wording
  }
  for (const auto& seen : rank_flags_seen_)
    h = mix64(h ^ (seen ? mix64(seen->words[0] + 2) ^ seen->words[1] ^ (std::uint64_t(seen->words[3]) << 32) ^
                              (std::uint64_t(seen->words[4]) << 8) ^ seen->words[5]
                        : 1));
  std::uint64_t taken = 0;  // order-independent: the map's iteration order is not the state's
  for (const auto& [key, call] : direct_taken_) taken += mix64(key ^ (std::uint64_t(call) << 48));
  return mix64(h ^ taken);
}

}  // namespace ar::sim
