"""Results that print like the CLI: explain, diff and accuracy return objects whose fields are attributes and
whose str() is the text `mnnvl-ar` prints for the same question."""

import json

from . import _core
from ._arguments import check_scalars
from ._reference import DEFAULT_SM_COUNT
from ._tensors import operand


class Result:
    """Fields as attributes; str() is the CLI's text."""

    def __init__(self, text, fields):
        self._text = text
        self.__dict__.update(fields)

    def fields(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __str__(self):
        return self._text

    def __repr__(self):
        shown = ", ".join(f"{k}={v!r}" for k, v in self.fields().items() if not isinstance(v, (dict, list)))
        return f"{type(self).__name__}({shown})"


class Explanation(Result):
    """How one output element is computed (`mnnvl-ar explain`). Plain: strategy, profile, result (bits),
    correctly_rounded (bits), results ({"oneshot/flashinfer": bits, ...}) and differences ({label: why}).
    Fused: strategy, profile, normalized, residual_out, sum_of_squares, rsqrt_input, scale (bits) and the
    launch's block_size, cluster_size and loads_per_thread."""


class Diff(Result):
    """A bitwise comparison (`mnnvl-ar diff`): elements, differing, zero_sign_only, nan_mismatches, max_ulp,
    histogram; first_index (flat) and first (bits of a, bits of b) when something differs."""

    @property
    def identical(self):
        return self.differing == 0


class Accuracy(Result):
    """Every strategy and profile against the exact sum rounded once (`mnnvl-ar accuracy`): rows, each a dict
    with strategy, profile, elements, correctly_rounded, max_ulp, mean_ulp, max_abs_error, nan_outputs and
    ulp_histogram (buckets in histogram_buckets). For the fused call, rows hold strategy, profile, launch and
    the normalized and residual_out statistics against the correctly rounded fused outputs, and `fused` the
    call's eps, weight bias and SM count."""


def _refuse_fused_only(eps, weight_bias, sm_count):
    """The fused call's own arguments, given without residual and gamma: refused rather than ignored (a caller
    who forgot residual= would otherwise get the plain all-reduce's answer, whatever eps said)."""
    given = [name for name, unset in (("eps", eps is None), ("weight_bias", weight_bias == 0.0),
                                      ("sm_count", sm_count == DEFAULT_SM_COUNT)) if not unset]
    if given:
        raise ValueError(f"{', '.join(given)} belong{'s' if len(given) == 1 else ''} to the fused call: give residual "
                         "and gamma too")


def explain(x, token, col, strategy="auto", profile="flashinfer", *, residual=None, gamma=None, eps=None,
            weight_bias=0.0, sm_count=DEFAULT_SM_COUNT, dtype=None, name="x", quant=None, quant_scale=None,
            scale_layout=None):
    """Why output element [token, col] has its bits: the fold step by step and every strategy and profile's
    result. With residual and gamma, the fused call's element instead (sum-of-squares tree, scale, products);
    with quant ("fp8", "fp8-dynamic", "nvfp4"; quant_scale, scale_layout as fused_quant_reference takes them)
    also its path through the quantisation, as `mnnvl-ar explain --quant`."""
    check_scalars(token=token, col=col, strategy=strategy, profile=profile, eps=eps, weight_bias=weight_bias,
                  sm_count=sm_count, name=name, quant=quant, quant_scale=quant_scale, scale_layout=scale_layout)
    x = operand(x, "x", dtype)
    if (residual is None) != (gamma is None):
        raise ValueError("the fused call takes both residual and gamma")
    if residual is None:
        if quant is not None or quant_scale is not None or scale_layout is not None:
            raise ValueError("quant belongs to the fused call: give residual and gamma too")
        _refuse_fused_only(eps, weight_bias, sm_count)
        text, fields = _core.explain(x.words, x.dtype, token, col, strategy, profile, name)
    else:
        r = operand(residual, "residual", x.dtype)
        g = operand(gamma, "gamma", x.dtype)
        text, fields = _core.explain_fused(x.words, r.words, g.words, x.dtype, token, col, strategy, profile,
                                           sm_count, eps, weight_bias, name, quant, quant_scale, scale_layout)
    return Explanation(text, fields)


def diff(a, b, *, dtype=None, names=("A", "B")):
    """a and b compared bit for bit: +0 and -0 differ, NaN payloads differ, no tolerance."""
    if not (isinstance(names, (tuple, list)) and len(names) == 2 and all(isinstance(n, str) for n in names)):
        raise ValueError(f"names must be two strings, as ('A', 'B'), not {names!r}")
    oa = operand(a, names[0], dtype)
    ob = operand(b, names[1], dtype or oa.dtype)
    if oa.words.size == 0 or ob.words.size == 0:
        raise ValueError(f"{names[0] if oa.words.size == 0 else names[1]} holds no element: nothing to compare")
    text, fields = _core.diff(oa.words, ob.words, oa.dtype, names[0], names[1])
    return Diff(text, fields)


def accuracy(x, *, residual=None, gamma=None, eps=None, weight_bias=0.0, sm_count=DEFAULT_SM_COUNT, dtype=None,
             name="x"):
    """What each strategy's and profile's reduction order costs on x ([W, N, D]), in ULPs; with residual and
    gamma, the fused call's outputs against the correctly rounded fused outputs."""
    check_scalars(eps=eps, weight_bias=weight_bias, sm_count=sm_count, name=name)
    x = operand(x, "x", dtype)
    if (residual is None) != (gamma is None):
        raise ValueError("the fused call takes both residual and gamma")
    if residual is None:
        _refuse_fused_only(eps, weight_bias, sm_count)
        text, report = _core.accuracy(x.words, x.dtype, name)
        return Accuracy(text, json.loads(report))
    r = operand(residual, "residual", x.dtype)
    g = operand(gamma, "gamma", x.dtype)
    text, report, warning = _core.accuracy_fused(x.words, r.words, g.words, x.dtype, sm_count, eps, weight_bias,
                                                 name)
    if warning:
        import warnings

        warnings.warn(warning.strip(), stacklevel=2)
    return Accuracy(text, json.loads(report))
