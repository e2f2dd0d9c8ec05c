"""For other projects' test suites: bits instead of a tolerance.

    from mnnvl_ar.testing import assert_allreduce_exact
    assert_allreduce_exact(inputs, outputs, strategy="oneshot")   # inputs, outputs: every rank's

replaces `torch.testing.assert_close(out, ref, rtol=0.05, atol=0.05)`.
"""

from ._check import check


def assert_allreduce_exact(inputs, outputs, strategy="auto", profile="flashinfer", **fused):
    """Raises AssertionError with mnnvl_ar.check's report unless every rank's output has the reference's
    bits. Keyword arguments as check's (residual, gamma, residual_outs, eps, weight_bias, sm_count, dtype)."""
    report = check(inputs, outputs, strategy, profile, **fused)
    if not report.ok:
        raise AssertionError("\n" + str(report))
    return report
