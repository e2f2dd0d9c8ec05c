"""check and assert_allreduce_exact: right outputs pass, one wrong bit anywhere is found and explained, and
outputs of another strategy or profile are named."""

import ml_dtypes
import numpy as np
import pytest

import mnnvl_ar
from mnnvl_ar.testing import assert_allreduce_exact
from conftest import load, manifest

ADVERSARIAL = next(c for c in manifest()["cases"] if c["name"] == "adversarial_bf16_w16")
X = load(ADVERSARIAL["input"]).view(ml_dtypes.bfloat16)  # [16, 4, 32]


def every_rank(out, world=16):
    return np.stack([out] * world)


def test_right_outputs_pass():
    outputs = every_rank(mnnvl_ar.reference(X, "twoshot"))
    report = mnnvl_ar.check(X, outputs, "twoshot")
    assert report.ok and bool(report) and report.first is None and report.ranks_disagreeing == 0
    assert all(r["differing"] == 0 for r in report.ranks)
    assert "PASSED" in str(report)
    assert_allreduce_exact(list(X), list(outputs), "twoshot")  # lists of per-rank shards too


@pytest.mark.parametrize("rank, token, col", [(0, 0, 0), (7, 2, 17), (15, 3, 31)])
def test_one_flipped_bit_is_found_and_explained(rank, token, col):
    outputs = every_rank(mnnvl_ar.reference(X, "oneshot")).copy()
    outputs.view(np.uint16)[rank, token, col] ^= 0x0001
    report = mnnvl_ar.check(X, outputs, "oneshot")
    assert not report.ok
    bad = [r for r in report.ranks if r["differing"]]
    assert [r["rank"] for r in bad] == [rank] and bad[0]["differing"] == 1
    assert bad[0]["first_index"] == token * 32 + col
    assert report.ranks_disagreeing == (15 if rank == 0 else 1)  # ranks against rank 0
    assert report.matches == []  # no strategy and profile gives a flipped bit
    assert report.first is not None and f"element [{token}, {col}]" in str(report.first)
    with pytest.raises(AssertionError, match=f"rank {rank}: output: 1 of 128 elements differ"):
        assert_allreduce_exact(X, outputs, "oneshot")


def test_outputs_of_another_strategy_are_named():
    outputs = every_rank(mnnvl_ar.reference(X, "twoshot"))
    report = mnnvl_ar.check(X, outputs, "oneshot")
    assert not report.ok
    assert "twoshot/flashinfer" in report.matches and "oneshot/flashinfer" not in report.matches
    assert "every rank's output equals" in str(report)


def test_fused_check_with_residual_outputs():
    c = next(c for c in manifest()["fused_cases"] if c["name"] == "fused_random_fp16_w8")
    f = c["fused"]
    x, residual, gamma = (np.load(__import__("conftest").DATA / e["file"]) for e in (c["input"], f["residual"],
                                                                                       f["gamma"]))
    kw = dict(residual=residual, gamma=gamma, eps=f["eps"], weight_bias=f["weight_bias"])
    normalized, residual_out = mnnvl_ar.fused_reference(x, strategy="oneshot", **kw)
    world = x.shape[0]
    outputs, residual_outs = np.stack([normalized] * world), np.stack([residual_out] * world)
    assert mnnvl_ar.check(x, outputs, "oneshot", residual_outs=residual_outs, **kw).ok
    residual_outs = residual_outs.copy()
    residual_outs.view(np.uint16)[3, 1, 5] ^= 0x8000  # a sign
    report = mnnvl_ar.check(x, outputs, "oneshot", residual_outs=residual_outs, **kw)
    assert not report.ok and report.ranks[3]["differing"] == 1
    assert "rank 3: residual_out: 1 of" in str(report)
    assert "fused element [1, 5]" in str(report.first)
