"""For other projects' test suites: bits instead of a tolerance.

    from mnnvl_ar.testing import assert_allreduce_exact, assert_quant_exact
    assert_allreduce_exact(inputs, outputs, strategy="oneshot")   # inputs, outputs: every rank's
    quant_out, scale_out, residual_out, _ = trtllm_mnnvl_fused_allreduce_add_rmsnorm_quant(...)
    assert_quant_exact(inputs, residual, gamma, quant_out, scale_out, quant="nvfp4")

replace `torch.testing.assert_close(out, ref, rtol=0.05, atol=0.05)` and upstream's mismatch ratios.
"""

from ._check import check
from ._quant import _codes, _fused_quant, compare_quant
from ._reference import DEFAULT_SM_COUNT


def assert_allreduce_exact(inputs, outputs, strategy="auto", profile="flashinfer", **fused):
    """Raises AssertionError with mnnvl_ar.check's report unless every rank's output has the reference's
    bits. Keyword arguments as check's (residual, gamma, residual_outs, eps, weight_bias, sm_count, dtype)."""
    report = check(inputs, outputs, strategy, profile, **fused)
    if not report.ok:
        raise AssertionError("\n" + str(report))
    return report


def assert_quant_exact(inputs, residual, gamma, quant_out, scale_out, *, quant, quant_scale=None,
                       scale_layout=None, strategy="auto", profile="flashinfer", eps=None, weight_bias=0.0,
                       sm_count=DEFAULT_SM_COUNT, dtype=None):
    """Raises AssertionError naming the first differing byte unless quant_out and scale_out (one rank's, from
    FlashInfer's *_quant op or any other implementation; NumPy or torch CPU, e4m3 dtypes as their bytes) are
    the bits mnnvl_ar.fused_quant_reference gives for the same call. scale_out: None for fp8; the bytes of a
    swizzled layout that belong to no block are not compared. Arguments as fused_quant_reference's (inputs:
    [W, N, D] or every rank's [N, D]). Returns the QuantDiff."""
    expected, resolved, described, _ = _fused_quant(
        inputs, residual, gamma, quant=quant, quant_scale=quant_scale, scale_layout=scale_layout, eps=eps,
        weight_bias=weight_bias, strategy=strategy, profile=profile, sm_count=sm_count, dtype=dtype)
    try:
        diff = compare_quant(quant_out, scale_out, expected.quant_out, expected.scale_out, quant=quant,
                             scale_layout=scale_layout)
    except ValueError as e:  # the outputs' shapes or dtypes are not the call's
        raise AssertionError(f"quantised output ({described}): {e}") from None
    if not diff.identical:
        message = (f"quantised output ({described}), expected {resolved}/{profile}: {diff.differing} of "
                   f"{diff.elements} codes and scales differ; the first: {diff.first}")
        if quant == "nvfp4" and not _any_nonzero(quant_out) and _any_nonzero(expected.quant_out):
            message += (" (quant_out is all zero: FlashInfer's NVFP4 writes zeros on GPUs below sm_100, "
                        "whose FP4 conversions it does not build; SPEC section 13)")
        raise AssertionError(message)
    return diff


def _any_nonzero(codes):
    return bool(_codes(codes, "quant_out")[0].any())
