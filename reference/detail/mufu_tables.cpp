// The measured MUFU tables of data/mufu/, built into the library as read-only data. The assembler copies
// the files in (.incbin) so the compiler never parses 6 MiB of array literals; CMake passes their paths
// and makes this object depend on them, so a new capture rebuilds it.
#include <cstdint>
#include <span>

#include "reference/mufu.h"

#if !defined(AR_MUFU_RSQRT_TABLE) || !defined(AR_MUFU_RCP_TABLE) || !defined(AR_MUFU_RSQRT_SHA256) || \
    !defined(AR_MUFU_RCP_SHA256)
#error "reference/CMakeLists.txt passes the paths and sha256 of data/mufu/'s tables"
#endif

// Hidden symbols with explicit ends, so the spans' sizes are the files' sizes whatever they are (a test
// checks them against the formats).
#define AR_MUFU_EMBED(name, path)                                                                     \
  ".globl " name "\n.hidden " name "\n.type " name ",@object\n.balign 64\n" name ":\n.incbin \"" path \
  "\"\n.globl " name "_end\n.hidden " name "_end\n" name "_end:\n.size " name ", " name "_end - " name "\n"

asm(".pushsection .rodata.ar_mufu_tables,\"a\",@progbits\n" AR_MUFU_EMBED("ar_mufu_rsqrt_delta", AR_MUFU_RSQRT_TABLE)
        AR_MUFU_EMBED("ar_mufu_rcp_delta", AR_MUFU_RCP_TABLE) ".popsection\n");

extern "C" {
extern const std::uint8_t ar_mufu_rsqrt_delta[];
extern const std::uint8_t ar_mufu_rsqrt_delta_end[];
extern const std::uint8_t ar_mufu_rcp_delta[];
extern const std::uint8_t ar_mufu_rcp_delta_end[];
}

namespace ar {

std::span<const std::uint8_t> rsqrt_delta_table() { return {ar_mufu_rsqrt_delta, ar_mufu_rsqrt_delta_end}; }
std::span<const std::uint8_t> rcp_delta_table() { return {ar_mufu_rcp_delta, ar_mufu_rcp_delta_end}; }
const char* rsqrt_delta_table_sha256() { return AR_MUFU_RSQRT_SHA256; }
const char* rcp_delta_table_sha256() { return AR_MUFU_RCP_SHA256; }

}  // namespace ar
