"""The fused call's quantised outputs (SPEC section 13, docs/quant.md): what FlashInfer's
trtllm_mnnvl_fused_allreduce_add_rmsnorm_quant writes as FP8 or NVFP4, bit for bit, the values those codes
stand for, and how another implementation's codes compare with them."""

import warnings
from typing import NamedTuple

import ml_dtypes
import numpy as np

from . import _core
from ._arguments import check_scalars
from ._reference import DEFAULT_SM_COUNT
from ._tensors import _is_torch, from_dlpack, operand, same_kind

QUANT_MODES = ("fp8", "fp8-dynamic", "nvfp4")
SCALE_LAYOUTS = ("swizzled", "linear")


class FusedQuantResult(NamedTuple):
    """fused_quant_reference's outputs. normalized and residual_out as fused_reference returns them;
    quant_out the codes (uint8 [N, D] for the FP8 modes, [N, D / 2] for NVFP4 with element 2i in the low
    nibble); scale_out dynamic FP8's float32 [N, 1] token scales, NVFP4's e4m3 block scales as uint8 in the
    layout's shape (what `mnnvl-ar reference --scale-out` writes), or None for static FP8."""

    normalized: object
    residual_out: object
    quant_out: object
    scale_out: object


class QuantDiff(NamedTuple):
    """compare_quant's answer: every code byte, token scale and NVFP4 block scale counts as one element (the
    bytes of a swizzled layout that belong to no block do not); `first` is the model's description of the first
    that differs ("quant_out[17]: 0x3c, expected 0x3d"), empty when none does."""

    elements: int
    differing: int
    first: str

    @property
    def identical(self):
        return self.differing == 0


def _byte_dtypes(torch):
    """torch's one-byte dtypes that hold e4m3 or e2m1 codes as FlashInfer returns them."""
    names = ("uint8", "int8", "float8_e4m3fn", "float4_e2m1fn_x2")
    return tuple(getattr(torch, n) for n in names if hasattr(torch, n))


def _torch_array(value, name):
    if value.device.type != "cpu":
        raise ValueError(f"{name} is on {value.device}: the reference runs on the CPU (pass {name}.cpu())")
    return value.detach().contiguous()


def _codes(value, name):
    """quant_out or NVFP4's scale_out as C-contiguous uint8, and its kind: uint8 or int8 arrays, and e4m3 /
    e2m1 arrays (ml_dtypes.float8_e4m3fn, torch.float8_e4m3fn, torch.float4_e2m1fn_x2) viewed as their bytes."""
    if _is_torch(value):
        import torch

        if value.dtype not in _byte_dtypes(torch):
            raise ValueError(f"{name} is a torch tensor of {value.dtype}; codes and block scales are bytes "
                             f"(uint8, or float8_e4m3fn viewed as its bytes)")
        return np.from_dlpack(_torch_array(value, name).view(torch.uint8)), "torch"
    array = np.asarray(from_dlpack(value, name))
    if array.dtype not in (np.uint8, np.int8, np.dtype(ml_dtypes.float8_e4m3fn)):
        raise ValueError(f"{name} has dtype {array.dtype}; codes and block scales are bytes (uint8, or "
                         f"ml_dtypes.float8_e4m3fn viewed as its bytes)")
    return np.ascontiguousarray(array.view(np.uint8)), "numpy"


def _token_scales(value, name):
    """Dynamic FP8's scale_out (float32, or its raw uint32 words) as C-contiguous uint32 words."""
    if _is_torch(value):
        import torch

        if value.dtype != torch.float32:
            raise ValueError(f"{name} is a torch tensor of {value.dtype}; fp8-dynamic's token scales are float32 "
                             f"[N, 1]")
        return np.from_dlpack(_torch_array(value, name).view(torch.int32)).view(np.uint32)
    array = np.asarray(from_dlpack(value, name))
    if array.dtype not in (np.float32, np.uint32):
        raise ValueError(f"{name} has dtype {array.dtype}; fp8-dynamic's token scales are float32 [N, 1]")
    return np.ascontiguousarray(array.view(np.uint32))


def _scales(value, name, quant):
    """scale_out in the form the model reads for `quant` (None stays None; the model says when it must not)."""
    if value is None:
        return None
    if quant not in ("fp8-dynamic", "nvfp4"):
        return np.zeros(0, np.uint8)  # the model refuses it for the mode, or the mode, in the CLI's words
    return _token_scales(value, name) if quant == "fp8-dynamic" else _codes(value, name)[0]


def _torch_of(array):
    import torch

    return torch.from_dlpack(array)


def _fused_quant(x, residual, gamma, *, quant, quant_scale, scale_layout, eps, weight_bias, strategy, profile,
                 sm_count, dtype):
    check_scalars(quant=quant, quant_scale=quant_scale, scale_layout=scale_layout, eps=eps, weight_bias=weight_bias,
                  strategy=strategy, profile=profile, sm_count=sm_count)
    x = operand(x, "x", dtype)
    r = operand(residual, "residual", x.dtype)
    g = operand(gamma, "gamma", x.dtype)
    normalized, residual_out, quant_out, scale_out, resolved, described, warning = _core.fused_quant(
        x.words, r.words, g.words, x.dtype, strategy, profile, sm_count, eps, weight_bias, quant, quant_scale,
        scale_layout)
    if scale_out is not None and scale_out.dtype == np.uint32:
        scale_out = scale_out.view(np.float32)
    if x.kind == "torch":
        quant_out = _torch_of(quant_out)
        scale_out = None if scale_out is None else _torch_of(scale_out)
    result = FusedQuantResult(same_kind(normalized, x.dtype, x.kind), same_kind(residual_out, x.dtype, x.kind),
                              quant_out, scale_out)
    return result, resolved, described, warning


def fused_quant_reference(x, residual, gamma, *, quant, quant_scale=None, scale_layout=None, eps=None,
                          weight_bias=0.0, strategy="auto", profile="flashinfer", sm_count=DEFAULT_SM_COUNT,
                          dtype=None):
    """FlashInfer's trtllm_mnnvl_fused_allreduce_add_rmsnorm_quant: the fused all-reduce + residual add +
    RMSNorm of fused_reference, and its normalised output quantised. Returns a FusedQuantResult
    (normalized, residual_out, quant_out, scale_out).

    quant: "fp8" (static e4m3: e4m3(y * rcp(quant_scale))), "fp8-dynamic" (a scale per token, returned in
    scale_out) or "nvfp4" (bf16 and fp16, D a multiple of 16: e2m1 codes in blocks of 16, each with an e4m3
    block scale). quant_scale: FlashInfer's output_scale (fp8) or NVFP4's global scale g; None is 1.0;
    refused for fp8-dynamic; narrowed to the fp32 the kernel holds. scale_layout: NVFP4's "swizzled"
    (SWIZZLED_128x4, the default) or "linear"; refused for the FP8 modes. The other arguments are
    fused_reference's. quant_out and scale_out are NumPy arrays, or torch CPU tensors when x is one.
    """
    result, _, _, warning = _fused_quant(x, residual, gamma, quant=quant, quant_scale=quant_scale,
                                         scale_layout=scale_layout, eps=eps, weight_bias=weight_bias,
                                         strategy=strategy, profile=profile, sm_count=sm_count, dtype=dtype)
    if warning is not None:
        warnings.warn(warning, stacklevel=2)
    return result


def dequantize(quant_out, scale_out, *, quant, quant_scale=None, scale_layout=None):
    """The float32 [N, D] values that quantised outputs stand for (`mnnvl-ar dequant`), each exact and rounded
    once: fp8 e4m3(q) * quant_scale, fp8-dynamic e4m3(q) * scale_out[token], nvfp4 e2m1(q) * e4m3(SF) /
    quant_scale with SF the block's byte of scale_out in the layout. Pass the quant, quant_scale and
    scale_layout the codes were made with; scale_out is None for fp8. N and D come from quant_out's shape.
    A torch quant_out gives a torch tensor."""
    check_scalars(quant=quant, quant_scale=quant_scale, scale_layout=scale_layout)
    codes, kind = _codes(quant_out, "quant_out")
    bits = _core.dequantize(codes, _scales(scale_out, "scale_out", quant), quant, quant_scale, scale_layout)
    values = bits.view(np.float32)
    return _torch_of(values) if kind == "torch" else values


def compare_quant(quant_out, scale_out, expected_quant_out, expected_scale_out, *, quant, scale_layout=None):
    """How quant_out and scale_out (another implementation's: FlashInfer's, ours on a GPU) compare with the
    expected ones (fused_quant_reference's) byte for byte: a QuantDiff. NumPy arrays or torch CPU tensors;
    e4m3 dtypes are compared as their bytes. scale_out is None for fp8."""
    check_scalars(quant=quant, scale_layout=scale_layout)
    codes, _ = _codes(quant_out, "quant_out")
    expected_codes, _ = _codes(expected_quant_out, "expected quant_out")
    elements, differing, first = _core.compare_quant(
        codes, _scales(scale_out, "scale_out", quant), expected_codes,
        _scales(expected_scale_out, "expected scale_out", quant), quant, scale_layout)
    return QuantDiff(elements, differing, first)
