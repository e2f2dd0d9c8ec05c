"""The package gives the golden data's bits for every case, strategy and profile (data/manifest.json), read
here with NumPy alone: the Python path to the model is checked against files, not against itself."""

import numpy as np
import pytest

import mnnvl_ar
from conftest import DATA, load, manifest

CASES = manifest()["cases"]
FUSED = manifest()["fused_cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_plain_case(case):
    x = load(case["input"])
    assert x.shape == (case["world_size"], case["tokens"], case["hidden"])
    assert mnnvl_ar.resolve(x, "auto", dtype=case["dtype"]) == case["auto"]
    for label, entry in case["outputs"].items():
        strategy, profile = label.split("/")
        got = mnnvl_ar.reference(x, strategy, profile, dtype=case["dtype"])
        want = load(entry)
        assert got.dtype == want.dtype and got.shape == want.shape
        mismatches = np.flatnonzero(got != want)
        assert mismatches.size == 0, f"{label}: {mismatches.size} elements differ, first at flat {mismatches[:1]}"


@pytest.mark.parametrize("case", FUSED, ids=[c["name"] for c in FUSED])
def test_fused_case(case):
    f = case["fused"]
    x, residual, gamma = load(case["input"]), load(f["residual"]), load(f["gamma"])
    # The case's eps is the fp32 the kernel holds; the package narrows the Python float the same way.
    assert np.float32(f["eps"]).view(np.uint32) == f["eps_bits"]
    for label, entry in f["outputs"].items():
        strategy, profile = label.split("/")
        normalized, residual_out = mnnvl_ar.fused_reference(
            x, residual, gamma, eps=f["eps"], weight_bias=f["weight_bias"], strategy=strategy, profile=profile,
            sm_count=f["sm_count"], dtype=case["dtype"])
        for name, got in (("normalized", normalized), ("residual_out", residual_out)):
            want = load(entry[name])
            assert got.shape == want.shape
            assert np.array_equal(got, want), f"{label} {name}: {np.count_nonzero(got != want)} elements differ"


QUANT = manifest()["quant_cases"]


@pytest.mark.parametrize("case", QUANT, ids=[c["name"] for c in QUANT])
def test_quant_case(case):
    f = case["fused"]
    x, residual, gamma = load(case["input"]), load(f["residual"]), load(f["gamma"])
    for q in case["quant"]:
        kw = {"quant": q["mode"]}
        if "scale" in q:
            assert np.float32(q["scale"]).view(np.uint32) == q["scale_bits"]
            kw["quant_scale"] = q["scale"]
        if "layout" in q:
            kw["scale_layout"] = q["layout"]
        for label, entry in q["outputs"].items():
            strategy, profile = label.split("/")
            got = mnnvl_ar.fused_quant_reference(x, residual, gamma, eps=f["eps"], weight_bias=f["weight_bias"],
                                                 strategy=strategy, profile=profile, sm_count=f["sm_count"],
                                                 dtype=case["dtype"], **kw)
            # The files as `reference --quant` wrote them: uint8 codes, fp32 or uint8 scales, none for fp8.
            for name in ("quant_out", "scale_out"):
                value = getattr(got, name)
                if name not in entry:
                    assert value is None, f"{q['name']} {label}: {name} should be None"
                    continue
                want = np.load(DATA / entry[name]["file"])
                assert value.dtype == want.dtype and value.shape == want.shape, f"{q['name']} {label} {name}"
                assert value.tobytes() == want.tobytes(), (
                    f"{q['name']} {label} {name}: {np.count_nonzero(value.view(np.uint8) != want.view(np.uint8))} "
                    f"bytes differ")
