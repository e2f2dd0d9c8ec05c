// Arrays across the boundary: the package's Python side hands the model raw bits (uint16 for bf16 and fp16,
// uint32 for fp32) with the dtype's name, and gets raw bits back in arrays that own a HostTensor. Every
// refusal is a UsageError with a message naming the argument, which the module raises as ValueError.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include "harness/io/npy.h"
#include "harness/io/rank_inputs.h"
#include "reference/tensor.h"

namespace ar::python {

namespace nb = nanobind;

/// A read-only, C-contiguous CPU array of any dtype (the dtype is checked here, with a message).
using BitsIn = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;
/// A NumPy array of uint8, uint16 or uint32 that owns what it holds.
using BitsOut = nb::ndarray<nb::numpy>;

/// `array` as a tensor of `t`: its elements must be unsigned words of T's width. `what` names the argument
/// in messages ("x", "residual").
HostTensor tensor_of(const BitsIn& array, DType t, const char* what);

/// `x` ([W, N, D] of `t`) as every rank's input, its shape validated: a refusal names "x", as the CLI names
/// the file.
RankInputs rank_inputs(const BitsIn& x, DType t);

/// The tensor's bits as a NumPy array, moved into the array's owner.
BitsOut array_of(HostTensor tensor);

/// `array` as bytes (the quantised outputs' codes and block scales): it must be uint8. `what` names it.
ByteArray bytes_of(const BitsIn& array, const char* what);

/// Bytes under `shape` (whose product is bytes.size()) as a NumPy uint8 array, moved into the array's owner.
BitsOut array_of_bytes(std::vector<std::uint8_t> bytes, const std::vector<std::int64_t>& shape);

}  // namespace ar::python
