#include "harness/job/rendezvous_auth.h"

#include <cstdlib>
#include <vector>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "harness/io/exit_codes.h"
#include "harness/io/input_file.h"
#include "harness/job/rendezvous.h"

namespace ar::auth {
namespace {

std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::string mac(EVP_MAX_MD_SIZE, '\0');
  unsigned int length = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), reinterpret_cast<unsigned char*>(mac.data()), &length))
    throw RendezvousError("HMAC-SHA256 failed in libcrypto");
  mac.resize(length);
  return mac;
}

// The MAC input: encode_list's length prefixes keep the fields apart, so no two sessions give one input.
std::string transcript(std::string_view label, std::string_view first_nonce, std::string_view second_nonce,
                       const Session& s) {
  return wire::encode_list({std::string(label), std::string(first_nonce), std::string(second_nonce),
                            std::to_string(s.rank), std::to_string(s.world_size), s.program_version,
                            std::to_string(wire::kVersion)});
}

// The fields of a hello, in order.
enum HelloField : std::size_t { kHelloRank, kHelloWorld, kHelloVersion, kHelloNonce, kHelloProof, kHelloFields };

// A whole decimal number from a peer, or nothing (atoi would take "1x" for 1).
std::optional<int> parse_count(const std::string& text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

}  // namespace

std::string encode_hello(const Session& s, const std::string& proof) {
  std::vector<std::string> hello(kHelloFields);
  hello[kHelloRank] = std::to_string(s.rank);
  hello[kHelloWorld] = std::to_string(s.world_size);
  hello[kHelloVersion] = s.program_version;
  hello[kHelloNonce] = s.rank_nonce;
  hello[kHelloProof] = proof;
  return wire::encode_list(hello);
}

std::optional<Hello> decode_hello(std::string_view payload) {
  const auto fields = wire::decode_list(payload, kHelloFields);
  if (!fields || fields->size() != kHelloFields) return std::nullopt;
  const std::optional<int> rank = parse_count((*fields)[kHelloRank]);
  const std::optional<int> world = parse_count((*fields)[kHelloWorld]);
  if (!rank || !world || (*fields)[kHelloNonce].size() != wire::kNonceBytes ||
      (*fields)[kHelloProof].size() != wire::kTagBytes)
    return std::nullopt;
  return Hello{*rank, *world, (*fields)[kHelloVersion], (*fields)[kHelloNonce], (*fields)[kHelloProof]};
}

std::string fresh_nonce() {
  std::string bytes(wire::kNonceBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size())) != 1)
    throw RendezvousError("libcrypto has no random bytes for the rendezvous nonce");
  return bytes;
}

std::string rank_proof(const std::string& token, const Session& s) {
  return hmac_sha256(token, transcript("mnnvl-ar rank->0", s.root_nonce, s.rank_nonce, s));
}
std::string root_proof(const std::string& token, const Session& s) {
  return hmac_sha256(token, transcript("mnnvl-ar 0->rank", s.rank_nonce, s.root_nonce, s));
}
std::string rank_to_root_key(const std::string& token, const Session& s) {
  return hmac_sha256(token, transcript("mnnvl-ar frames rank->0", s.root_nonce, s.rank_nonce, s));
}
std::string root_to_rank_key(const std::string& token, const Session& s) {
  return hmac_sha256(token, transcript("mnnvl-ar frames 0->rank", s.root_nonce, s.rank_nonce, s));
}

std::string frame_tag(std::string_view key, const wire::Frame& frame, std::uint64_t counter) {
  return hmac_sha256(key, wire::authenticated_content(frame, counter));
}

// The sizes are public (wire::kTagBytes), so comparing them first reveals nothing.
bool same_mac(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace ar::auth

namespace ar {

// A token is a line of text; a file larger than this is not a token file (and /dev/zero is not read forever).
constexpr std::int64_t kMaxTokenFileBytes = 64 << 10;

std::string read_token_file(const std::string& path, const std::string& source) {
  std::string text;
  try {
    text = read_regular_file(path, "token file", kMaxTokenFileBytes);
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("{}: {}", source, e.what()));
  }
  std::string token = text.substr(0, text.find('\n'));
  if (!token.empty() && token.back() == '\r') token.pop_back();  // a file written with CRLF line endings
  if (token.empty()) throw UsageError(fmt::format("{}: its first line is empty, so it holds no token", source));
  return token;
}

std::string missing_token_message(int rank, int world_size, const std::string& launcher,
                                  const std::string& other_ways) {
  return fmt::format(
      "this process is rank {} of {} ({}), but no token is set: the processes of a job prove to each other that "
      "they know one secret token before any of them is trusted. Set the same token on every process, e.g. "
      "export MNNVL_AR_TOKEN=$(openssl rand -hex 16) before starting them, or name a file holding it with "
      "$MNNVL_AR_TOKEN_FILE, or {}",
      rank, world_size, launcher, other_ways);
}

std::string token_from_environment() {
  if (const char* t = std::getenv("MNNVL_AR_TOKEN"); t && *t) return t;
  if (const char* path = std::getenv("MNNVL_AR_TOKEN_FILE"); path && *path)
    return read_token_file(path, fmt::format("$MNNVL_AR_TOKEN_FILE={}", path));
  return {};
}

}  // namespace ar
