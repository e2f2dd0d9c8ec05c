// What proves the job's token in the rendezvous, and where the token comes from. The token is the key of
// every HMAC-SHA256 here and never travels: in the handshake each side answers the other's fresh nonce
// with a proof, and the frames after it carry a tag under a key of that connection and direction, with a
// counter, so a frame cannot be injected, changed or replayed. The rendezvous (rendezvous.cpp) decides
// when to send and check these; this file only computes them (OpenSSL's libcrypto).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "harness/job/wire_format.h"

namespace ar::auth {

/// What the two ends of one connection agree on in the handshake. Every proof and key is an HMAC of these
/// under the token with a label naming its purpose and direction, so a proof made for one direction, one
/// purpose, another connection (other nonces) or another job shape is worth nothing in another.
struct Session {
  std::string root_nonce;  ///< rank 0's challenge
  std::string rank_nonce;  ///< the rank's challenge
  int rank = 0;
  int world_size = 0;
  std::string program_version;
};

/// What a rank's hello claims, and the proof it offers for the claim.
struct Hello {
  int rank = 0;
  int world_size = 0;
  std::string program_version;
  std::string nonce;  ///< the rank's challenge
  std::string proof;  ///< rank_proof over the claim and rank 0's nonce
};

/// The hello of the rank `s` describes (its rank, world size, version and nonce), with `proof`.
std::string encode_hello(const Session& s, const std::string& proof);
/// The hello in `payload`, or nothing when it is malformed (fields, numbers, nonce or proof sizes). Nothing
/// in it is to be believed before its proof has been checked.
std::optional<Hello> decode_hello(std::string_view payload);

/// wire::kNonceBytes fresh random bytes. Throws RendezvousError when libcrypto has none.
std::string fresh_nonce();

/// The rank's proof answers rank 0's challenge, rank 0's proof the rank's: each side's proof covers the
/// nonce it did not choose.
std::string rank_proof(const std::string& token, const Session& s);
std::string root_proof(const std::string& token, const Session& s);

/// The keys of the frames after the handshake, one per direction: never sent, new with every connection.
std::string rank_to_root_key(const std::string& token, const Session& s);
std::string root_to_rank_key(const std::string& token, const Session& s);

/// The tag of an authenticated frame: the HMAC under `key` of its content and its counter in its direction.
std::string frame_tag(std::string_view key, const wire::Frame& frame, std::uint64_t counter);

/// Constant-time comparison of two MACs, so a peer learns nothing from how long a refusal takes.
bool same_mac(std::string_view a, std::string_view b);

}  // namespace ar::auth

namespace ar {

/// The job's token: $MNNVL_AR_TOKEN when set and not empty, else the first line of the file
/// $MNNVL_AR_TOKEN_FILE (read_token_file). Empty when neither is set.
std::string token_from_environment();

/// The first line of a token file, without its line ending. Throws UsageError naming `source` ("--token-file
/// F", "$MNNVL_AR_TOKEN_FILE=F") when the file cannot be read, is not a regular file, is larger than a
/// token file can be, or its first line is empty.
std::string read_token_file(const std::string& path, const std::string& source);

/// Why a process of a job of several refuses to start without a token (rank `rank` of `world_size` under
/// `launcher`), ending with `other_ways`, how else this caller can give one ("--token-file FILE ...").
std::string missing_token_message(int rank, int world_size, const std::string& launcher,
                                  const std::string& other_ways);

}  // namespace ar
