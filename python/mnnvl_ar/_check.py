"""check: every rank's output from any implementation (FlashInfer, TensorRT-LLM, vLLM, ours) against the
reference, bit for bit, with the first difference explained and, when the outputs are not the expected
ones, which strategy and profile they are."""

import numpy as np

from . import _core
from ._arguments import check_scalars
from ._reference import DEFAULT_SM_COUNT
from ._reports import Result, _refuse_fused_only, explain
from ._tensors import operand


class CheckReport(Result):
    """ok; expected ("oneshot/flashinfer": what was checked against); ranks (per rank: rank, elements,
    differing, max_ulp, first_index or None); ranks_disagreeing (ranks whose output differs from rank 0's);
    matches (the strategy/profile pairs every rank's output equals, looked for only when something
    differs); first (the Explanation of the first difference, or None). str() is the report."""

    def __bool__(self):
        return self.ok


def _labels(fused):
    profiles = ("flashinfer", "ieee", "invariant") if fused else ("flashinfer", "ieee", "trtllm", "invariant")
    return [(s, p) for s in ("oneshot", "twoshot") for p in profiles]


def check(inputs, outputs, strategy="auto", profile="flashinfer", *, residual=None, gamma=None, residual_outs=None,
          eps=None, weight_bias=0.0, sm_count=DEFAULT_SM_COUNT, dtype=None):
    """Checks every rank's output of one all-reduce call.

    inputs: [W, N, D], or a list of each rank's [N, D] input. outputs: the same for each rank's output. With
    residual ([N, D]) and gamma ([D]), the call is the fused residual-add + RMSNorm: outputs are the
    normalised outputs, and residual_outs (optional, per rank) the residual outputs. Returns a CheckReport
    (true when every rank has the expected bits).
    """
    check_scalars(strategy=strategy, profile=profile, eps=eps, weight_bias=weight_bias, sm_count=sm_count)
    x = operand(inputs, "inputs", dtype)
    out = operand(outputs, "outputs", x.dtype)
    if x.words.ndim != 3:
        raise ValueError(f"inputs must be [W, N, D] or a list of W [N, D] shards, not {x.words.ndim}-D")
    if out.words.shape != x.words.shape:
        raise ValueError(f"outputs have shape {tuple(out.words.shape)}; every rank's [N, D] output of inputs "
                         f"{tuple(x.words.shape)} makes {tuple(x.words.shape)}")
    fused = residual is not None or gamma is not None
    if fused and (residual is None or gamma is None):
        raise ValueError("the fused call takes both residual and gamma")
    if residual_outs is not None and not fused:
        raise ValueError("residual_outs belong to the fused call: give residual and gamma too")
    if not fused:
        _refuse_fused_only(eps, weight_bias, sm_count)
    world, tokens, hidden = x.words.shape
    r = operand(residual, "residual", x.dtype) if fused else None
    g = operand(gamma, "gamma", x.dtype) if fused else None
    ro = operand(residual_outs, "residual_outs", x.dtype) if residual_outs is not None else None
    if ro is not None and ro.words.shape != x.words.shape:
        raise ValueError(f"residual_outs have shape {tuple(ro.words.shape)}, not {tuple(x.words.shape)}")

    def expected(s, p):
        if fused:
            normalized, res_out, resolved, _ = _core.fused(x.words, r.words, g.words, x.dtype, s, p, sm_count, eps,
                                                           weight_bias)
            return normalized, res_out, resolved
        sum_, resolved = _core.all_reduce(x.words, x.dtype, s, p)
        return sum_, None, resolved

    want, want_residual, resolved = expected(strategy, profile)
    label = f"{resolved}/{profile}"
    ranks, first = [], None
    lines = [f"check: W = {world}, {x.dtype}, N = {tokens}, D = {hidden}, {'fused call, ' if fused else ''}"
             f"expected {label}{' (auto -> ' + resolved + ')' if strategy == 'auto' else ''}"]
    compared = [("output", out.words, want)] + ([("residual_out", ro.words, want_residual)] if ro is not None else [])
    for rank in range(world):
        row = {"rank": rank, "elements": tokens * hidden, "differing": 0, "max_ulp": 0, "first_index": None}
        for what, got, exp in compared:
            _, d = _core.diff(got[rank], exp, x.dtype, f"rank {rank} {what}", "reference")
            if d["differing"]:
                if row["first_index"] is None:
                    row["first_index"] = d["first_index"]
                row["differing"] += d["differing"]
                row["max_ulp"] = max(row["max_ulp"], d["max_ulp"])
                index = d["first_index"]
                lines.append(f"rank {rank}: {what}: {d['differing']} of {tokens * hidden} elements differ, first "
                             f"at [{index // hidden}, {index % hidden}]: 0x{d['first'][0]:X} where the reference "
                             f"has 0x{d['first'][1]:X}; max ULP {d['max_ulp']}")
                if first is None:
                    first = (rank, what, index)
        if row["differing"] == 0:
            lines.append(f"rank {rank}: identical ({tokens * hidden} elements{' x 2' if ro is not None else ''})")
        ranks.append(row)
    disagreeing = sum(1 for rank in range(1, world) if not np.array_equal(out.words[rank], out.words[0]))
    lines.append(f"ranks whose output differs from rank 0's: {disagreeing}")
    ok = first is None

    matches, explanation = [], None
    if not ok:
        for s, p in _labels(fused):
            got, _, _ = expected(s, p)
            if all(np.array_equal(out.words[rank], got) for rank in range(world)):
                matches.append(f"{s}/{p}")
        lines.append("every rank's output equals " + " and ".join(matches) if matches else
                     "no strategy and profile gives every rank's output")
        rank, what, index = first
        token, col = divmod(index, hidden)
        explanation = explain(x.words, token, col, resolved, profile, residual=r.words if fused else None,
                              gamma=g.words if fused else None, eps=eps, weight_bias=weight_bias, sm_count=sm_count,
                              dtype=x.dtype, name="inputs")
        lines += ["", f"the first difference, rank {rank} {what} [{token}, {col}], as the reference computes it:",
                  str(explanation)]
    lines.append("PASSED: every rank has the reference's bits" if ok else "FAILED")
    return CheckReport("\n".join(lines), {"ok": ok, "expected": label, "ranks": ranks,
                                          "ranks_disagreeing": disagreeing, "matches": matches,
                                          "first": explanation})
