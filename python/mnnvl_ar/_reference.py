"""The reference: what every rank of FlashInfer's MNNVL all-reduce (and its fused residual-add + RMSNorm)
returns, bit for bit, for a strategy and an arithmetic profile."""

import warnings

from . import _core
from ._arguments import check_scalars
from ._tensors import operand, same_kind

STRATEGIES = ("oneshot", "twoshot", "auto")
PROFILES = ("flashinfer", "ieee", "trtllm", "invariant")
DEFAULT_SM_COUNT = 132


def reference(x, strategy="auto", profile="flashinfer", *, dtype=None):
    """The [N, D] output every rank gets from the all-reduce of `x`.

    x: [W, N, D] (rank r's shard is x[r]) or a list of W [N, D] shards; bf16 (ml_dtypes.bfloat16, or raw
    uint16 words with dtype="bf16"), float16 or float32, NumPy or torch (CPU). strategy: "oneshot",
    "twoshot" or "auto" (FlashInfer's 1 MiB rule). profile: "flashinfer" (as FlashInfer is built),
    "ieee" (without fast-math), "trtllm" (TensorRT-LLM's order) or "invariant" (this project's
    batch-invariant arithmetic: one order for both strategies, FlashInfer's with IEEE adds below W = 16 and
    the exact sum rounded once from there). Returns the same kind of array as x.
    """
    check_scalars(strategy=strategy, profile=profile)
    x = operand(x, "x", dtype)
    out, _ = _core.all_reduce(x.words, x.dtype, strategy, profile)
    return same_kind(out, x.dtype, x.kind)


def correctly_rounded(x, *, dtype=None):
    """The exact per-element sum of x ([W, N, D]) rounded once to its dtype: the best any order could give."""
    x = operand(x, "x", dtype)
    return same_kind(_core.correctly_rounded(x.words, x.dtype), x.dtype, x.kind)


def resolve(x, strategy="auto", *, dtype=None):
    """The strategy `strategy` runs as for x: AUTO resolved by FlashInfer's 1 MiB rule."""
    check_scalars(strategy=strategy)
    x = operand(x, "x", dtype)
    if x.words.ndim != 3:
        raise ValueError(f"x must be [W, N, D] (every rank's shard), not {x.words.ndim}-D")
    return _core.resolve_strategy(*x.words.shape, x.dtype, strategy)


def fused_reference(x, residual, gamma, *, eps=None, weight_bias=0.0, strategy="auto", profile="flashinfer",
                    sm_count=DEFAULT_SM_COUNT, dtype=None):
    """FlashInfer's fused all-reduce + residual add + RMSNorm (trtllm_mnnvl_fused_allreduce_add_rmsnorm):
    returns (normalized, residual_out), each [N, D].

    residual: [N, D]; gamma: [D]; both of x's dtype. eps: default torch.finfo(dtype).eps, as FlashInfer's
    Python. weight_bias: 1 for Gemma-style (1 + gamma) norms. sm_count: the GPU's SM count, which decides
    the launch shape and so the sum-of-squares tree (profiles flashinfer and ieee; invariant ignores it).
    """
    check_scalars(eps=eps, weight_bias=weight_bias, strategy=strategy, profile=profile, sm_count=sm_count)
    x = operand(x, "x", dtype)
    r = operand(residual, "residual", x.dtype)
    g = operand(gamma, "gamma", x.dtype)
    normalized, residual_out, _, warning = _core.fused(x.words, r.words, g.words, x.dtype, strategy, profile,
                                                       sm_count, eps, weight_bias)
    if warning is not None:
        warnings.warn(warning, stacklevel=2)
    return same_kind(normalized, x.dtype, x.kind), same_kind(residual_out, x.dtype, x.kind)
