// The quantised outputs of the fused call (reference/fused_quant.h) as .npy files, the way FlashInfer returns
// them: `quant_out` uint8 [N, D] (FP8 e4m3 codes) or [N, D / 2] (NVFP4, element 2i in the low nibble), and
// `scale_out` fp32 [N, 1] (dynamic FP8's token scales) or the NVFP4 block scales as uint8 [R, C], the layout's
// bytes: swizzled R = N rounded up to 128, C = D / 16 rounded up to 4 (the bytes of 128 x 4 tiles, in the
// tiles' order, not row-major); linear [N, D / 16]. Static FP8 has no scale_out. `reference --quant` writes
// them, `dequant` and the golden manifest read them back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/io/npy.h"
#include "reference/fused_quant.h"

namespace ar {

/// quant_out's shape for N tokens of D elements.
std::vector<std::int64_t> quant_out_shape(QuantMode mode, std::int64_t tokens, std::int64_t hidden);

/// scale_out's shape, empty for a mode without one (static FP8).
std::vector<std::int64_t> scale_out_shape(QuantMode mode, ScaleLayout layout, std::int64_t tokens, std::int64_t hidden);

/// Whether the mode has a scale_out (dynamic FP8, NVFP4).
constexpr bool has_scale_out(QuantMode mode) { return mode == QuantMode::kFp8Dynamic || mode == QuantMode::kNvfp4; }

/// "uint8 [N, D / 2] = [5, 32]", what a file of quant_out / scale_out must be, for messages and --help.
std::string quant_out_description(QuantMode mode, std::int64_t tokens, std::int64_t hidden);
std::string scale_out_description(QuantMode mode, ScaleLayout layout, std::int64_t tokens, std::int64_t hidden);

/// The .npy bytes of `q`'s quant_out and scale_out (empty string for static FP8's).
std::string encode_quant_out(const QuantizedOutput& q);
std::string encode_scale_out(const QuantizedOutput& q);

/// Refuses (UsageError naming `scale_name`) a scale_out missing for the modes that have one, or given for
/// static FP8.
void check_scale_out_given(QuantMode mode, bool given, const std::string& scale_name);

/// The codes of quant_out (`codes`: its shape and bytes) as a QuantizedOutput of `mode` and `layout` whose
/// scales are still to be set: N and D come from the shape (NVFP4: D = 2 x its columns, a multiple of 16).
/// `what` names the codes in messages: "--quant-out 'q.npy'" for a file, an argument's name for an array.
QuantizedOutput quant_codes(QuantMode mode, ScaleLayout layout, ByteArray codes, const std::string& what);

/// Dynamic FP8's token scales (fp32 [N, 1], or [N]) into `q`, whose codes gave N. `what` names the scales
/// in messages as quant_codes' names the codes; `codes_name` names the codes (the flag or argument) as
/// where N and D came from.
void set_token_scales(QuantizedOutput& q, const HostTensor& scales, const std::string& what,
                      const std::string& codes_name);

/// NVFP4's block scales into `q`: uint8 in the layout's shape (scale_out_shape), or the same bytes
/// flattened (a caller that keeps scale_out as one vector). Names as set_token_scales'.
void set_block_scales(QuantizedOutput& q, ByteArray scales, const std::string& what, const std::string& codes_name);

/// Reads a quant_out file (and the scale_out file for the modes that have one: required then, refused
/// otherwise) into a QuantizedOutput of `mode` and `layout`. N and D come from quant_out's shape (NVFP4:
/// D = 2 x its columns, a multiple of 16); scale_out must have the shape those give (dynamic FP8 also takes
/// [N]). `quant_flag` and `scale_flag` name the files in messages. Throws UsageError naming the file and
/// what its shape should be.
QuantizedOutput read_quant_files(QuantMode mode, ScaleLayout layout, const std::string& quant_path,
                                 const std::optional<std::string>& scale_path,
                                 const std::string& quant_flag = "--quant-out",
                                 const std::string& scale_flag = "--scale-out");

}  // namespace ar
