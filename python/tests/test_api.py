"""The CPU API: every array kind gives the same bits, results print what the CLI prints, and bad input is a
ValueError with the CLI's message, never a crash."""

import subprocess

import ml_dtypes
import numpy as np
import pytest

import mnnvl_ar
from conftest import DATA, load, manifest


def case(name):
    return next(c for c in manifest()["cases"] if c["name"] == name)


ADVERSARIAL = case("adversarial_bf16_w16")
RAW = load(ADVERSARIAL["input"])  # [16, 4, 32] bf16 as uint16 words
BF16 = RAW.view(ml_dtypes.bfloat16)


def test_kinds_give_the_same_bits():
    want = load(ADVERSARIAL["outputs"]["oneshot/flashinfer"])
    raw = mnnvl_ar.reference(RAW, "oneshot", dtype="bf16")
    assert raw.dtype == np.uint16 and np.array_equal(raw, want)
    typed = mnnvl_ar.reference(BF16, "oneshot")
    assert typed.dtype == ml_dtypes.bfloat16 and np.array_equal(typed.view(np.uint16), want)
    shards = mnnvl_ar.reference(list(BF16), "oneshot")
    assert np.array_equal(shards.view(np.uint16), want)
    strided = np.asfortranarray(BF16)  # not C-contiguous: copied, same bits
    assert np.array_equal(mnnvl_ar.reference(strided, "oneshot").view(np.uint16), want)


def test_fp16_and_fp32_arrays():
    for name in ("adversarial_fp16_w16", "adversarial_fp32_w16"):
        c = case(name)
        x = np.load(DATA / c["input"]["file"])  # float16 / float32 as stored
        got = mnnvl_ar.reference(x, "twoshot", "ieee")
        assert got.dtype == x.dtype
        assert np.array_equal(got.view(load(c["outputs"]["twoshot/ieee"]).dtype), load(c["outputs"]["twoshot/ieee"]))


def test_resolve_follows_the_1_mib_rule():
    assert mnnvl_ar.resolve(np.zeros((8, 64, 1024), np.uint16), dtype="bf16") == "oneshot"  # exactly 1 MiB
    assert mnnvl_ar.resolve(np.zeros((8, 65, 1024), np.uint16), dtype="bf16") == "twoshot"


class _FailingExporter:
    """An object whose DLPack export raises what no caller expects."""

    def __dlpack__(self, *args, **kwargs):
        raise AttributeError("boom")

    def __dlpack_device__(self):
        return (1, 0)


@pytest.mark.parametrize("call, message", [
    (lambda: mnnvl_ar.reference(BF16[:3]), "world size 3 is not supported"),
    (lambda: mnnvl_ar.reference(BF16[0]), "3"),
    (lambda: mnnvl_ar.reference(BF16, "threeshot"), "unknown strategy 'threeshot' (choose oneshot, twoshot or auto)"),
    (lambda: mnnvl_ar.reference(BF16, profile="fast"), "unknown profile 'fast'"),
    (lambda: mnnvl_ar.reference(RAW), "say which dtype they are"),
    (lambda: mnnvl_ar.reference(RAW, dtype="fp32"), "cannot be fp32"),
    (lambda: mnnvl_ar.reference(RAW, dtype="bf8"), "unknown dtype 'bf8'"),
    (lambda: mnnvl_ar.reference(BF16, dtype="fp16"), "holds bf16, not the dtype given (fp16)"),
    (lambda: mnnvl_ar.reference(np.zeros((2, 4, 32), np.int64)), "has dtype int64"),
    (lambda: mnnvl_ar.reference(np.array([[["a"]]] * 2, dtype=object)), "has dtype object"),
    (lambda: mnnvl_ar.reference([]), "empty list"),
    (lambda: mnnvl_ar.reference([BF16[0], BF16[1][:2]]), "x[1] has shape"),
    (lambda: mnnvl_ar.reference([BF16[0], BF16[1].astype(np.float32)]), "x[1] holds fp32 but x[0] holds bf16"),
    (lambda: mnnvl_ar.reference(np.zeros((2, 4, 12), ml_dtypes.bfloat16)), "multiple of"),
    (lambda: mnnvl_ar.reference(np.zeros((2, 0, 32), ml_dtypes.bfloat16)), "N"),
    (lambda: mnnvl_ar.explain(BF16, 4, 0), "token 4 is outside [0, 4)"),
    (lambda: mnnvl_ar.explain(BF16, 0, -1), "col -1 is outside [0, 32)"),
    (lambda: mnnvl_ar.diff(BF16[0], BF16[:2]), "has shape"),
    (lambda: mnnvl_ar.fused_reference(BF16, BF16[0], BF16[0, 0], sm_count=0), "sm_count 0 is outside [1, 1024]"),
    (lambda: mnnvl_ar.fused_reference(BF16, BF16[0], BF16[0, 0], eps=1e300), "--eps 1e+300 is not a finite number"),
    (lambda: mnnvl_ar.fused_reference(BF16, BF16[0, :2], BF16[0, 0]), "the residual must be [N, D] = [4, 32]"),
    (lambda: mnnvl_ar.fused_reference(BF16, BF16[0], BF16[0, 0, :8]), "gamma must be [D] = [32]"),
    (lambda: mnnvl_ar.fused_reference(BF16, BF16[0], BF16[0, 0], profile="trtllm"), "not trtllm"),
    (lambda: mnnvl_ar.fused_reference(BF16[:3], BF16[0], BF16[0, 0]), "x: world size 3 is not supported"),
    (lambda: mnnvl_ar.check(BF16, BF16[:, :2]), "outputs have shape"),
    (lambda: mnnvl_ar.accuracy(BF16, residual=BF16[0]), "both residual and gamma"),
    (lambda: mnnvl_ar.accuracy(BF16, residual=BF16[0], gamma=BF16[0, 0], sm_count=2000), "sm_count 2000 is outside"),
    (lambda: mnnvl_ar.check(BF16, BF16, residual=BF16[0]), "both residual and gamma"),
    # The fused call's own arguments without residual and gamma: refused, not ignored.
    (lambda: mnnvl_ar.check(BF16, BF16, eps=float("nan")), "eps belongs to the fused call"),
    (lambda: mnnvl_ar.check(BF16, BF16, sm_count=0), "sm_count belongs to the fused call"),
    (lambda: mnnvl_ar.explain(BF16, 0, 0, eps=1e-6, weight_bias=1.0), "eps, weight_bias belong to the fused call"),
    (lambda: mnnvl_ar.accuracy(BF16, weight_bias=float("inf")), "weight_bias belongs to the fused call"),
    # Scalars of the wrong type, named (the binding's own TypeError shows only its internal signature).
    (lambda: mnnvl_ar.explain(BF16, 2**70, 2), "token 1180591620717411303424 is out of range"),
    # Nothing to compare is not "identical".
    (lambda: mnnvl_ar.diff(BF16[0, :0], BF16[1, :0]), "holds no element"),
    (lambda: mnnvl_ar.diff(BF16[0], BF16[1], names=("a",)), "names must be two strings"),
    (lambda: mnnvl_ar.dequantize(np.zeros((0, 32), np.uint8), None, quant="fp8"), "at least one token"),
    # An exporter that fails: a ValueError naming the argument, whatever it raised.
    (lambda: mnnvl_ar.reference(_FailingExporter()), "x: cannot read it through DLPack (AttributeError: boom)"),
    (lambda: mnnvl_ar.dequantize(_FailingExporter(), None, quant="fp8"), "quant_out: cannot read it through DLPack"),
    (lambda: mnnvl_ar.compare_quant(np.zeros((8, 0), np.uint8), None, np.zeros((8, 0), np.uint8), None, quant="fp8"),
     "at least one token"),
])
def test_bad_input_is_a_value_error_naming_it(call, message):
    with pytest.raises(ValueError) as e:
        call()
    assert message in str(e.value)


@pytest.mark.parametrize("call, message", [
    (lambda: mnnvl_ar.reference(BF16, None), "strategy takes a string, not NoneType"),
    (lambda: mnnvl_ar.reference(BF16, profile=3), "profile takes a string, not int"),
    (lambda: mnnvl_ar.fused_reference(BF16, BF16[0], BF16[0, 0], sm_count=132.0), "sm_count takes a whole number"),
    (lambda: mnnvl_ar.fused_reference(BF16, BF16[0], BF16[0, 0], eps="1e-6"), "eps takes a number, not str"),
    (lambda: mnnvl_ar.fused_reference(BF16, BF16[0], BF16[0, 0], weight_bias=None), "weight_bias takes a number"),
    (lambda: mnnvl_ar.fused_quant_reference(BF16, BF16[0], BF16[0, 0], quant=8), "quant takes a string"),
    (lambda: mnnvl_ar.explain(BF16, 1.0, 2), "token takes a whole number, not float"),
    (lambda: mnnvl_ar.check(BF16, BF16, sm_count=True), "sm_count takes a whole number, not bool"),
])
def test_a_scalar_of_the_wrong_type_is_a_type_error_naming_it(call, message):
    with pytest.raises(TypeError) as e:
        call()
    assert message in str(e.value)


def test_results_print_what_the_cli_prints(cli):
    path = str(DATA / ADVERSARIAL["input"]["file"])
    def run(*args):
        return subprocess.run([cli, *args], capture_output=True, text=True, check=True).stdout

    explanation = mnnvl_ar.explain(BF16, 1, 7, "auto", "flashinfer", name=path)
    assert str(explanation) == run("explain", "-i", path, "--dtype", "bf16", "-t", "1", "-c", "7")
    assert mnnvl_ar.accuracy(BF16, name=path).__str__() == run("accuracy", "-i", path, "--dtype", "bf16")


def test_fused_explanation_prints_what_the_cli_prints(cli, tmp_path):
    c = next(c for c in manifest()["fused_cases"] if c["name"] == "fused_random_fp16_w8")
    f = c["fused"]
    path, residual, gamma = (str(DATA / e["file"]) for e in (c["input"], f["residual"], f["gamma"]))
    e = mnnvl_ar.explain(np.load(path), 2, 100, "twoshot", residual=np.load(residual), gamma=np.load(gamma),
                         eps=f["eps"], weight_bias=f["weight_bias"], name=path)
    cli_text = subprocess.run([cli, "explain", "-i", path, "-t", "2", "-c", "100", "-s", "twoshot", "--residual",
                               residual, "--gamma", gamma, "--eps", repr(f["eps"]), "--weight-bias",
                               repr(f["weight_bias"])], capture_output=True, text=True, check=True).stdout
    assert str(e) == cli_text
    assert e.strategy == "twoshot" and e.cluster_size >= 1


def test_fused_accuracy_prints_what_the_cli_prints(cli):
    c = next(c for c in manifest()["fused_cases"] if c["name"] == "fused_random_fp16_w8")
    f = c["fused"]
    path, residual, gamma = (str(DATA / e["file"]) for e in (c["input"], f["residual"], f["gamma"]))
    a = mnnvl_ar.accuracy(np.load(path), residual=np.load(residual), gamma=np.load(gamma), eps=f["eps"],
                          weight_bias=f["weight_bias"], name=path)
    cli_text = subprocess.run([cli, "accuracy", "-i", path, "--residual", residual, "--gamma", gamma, "--eps",
                               repr(f["eps"]), "--weight-bias", repr(f["weight_bias"])], capture_output=True,
                              text=True, check=True).stdout
    assert str(a) == cli_text
    assert {(r["strategy"], r["profile"]) for r in a.rows} >= {("oneshot", "flashinfer"), ("twoshot", "invariant")}
    assert all(r["normalized"]["elements"] == 3 * 512 for r in a.rows)


def test_explanation_fields():
    e = mnnvl_ar.explain(BF16, 0, 22, "oneshot")
    assert e.strategy == "oneshot" and e.profile == "flashinfer"
    assert e.results["oneshot/flashinfer"] == e.result
    want = load(ADVERSARIAL["outputs"]["oneshot/flashinfer"])
    assert e.result == want[0, 22]
    assert set(e.differences) == {k for k, v in e.results.items() if v != e.result}


def test_diff_counts_bits():
    a = BF16.copy()
    b = a.copy()
    assert mnnvl_ar.diff(a, b).identical
    words = b.view(np.uint16)
    words[1, 2, 3] ^= 1
    words[0, 0, 0] = 0x8000 if words[0, 0, 0] == 0 else words[0, 0, 0]  # unchanged unless +0
    d = mnnvl_ar.diff(a, b)
    assert d.differing >= 1 and d.first_index <= np.ravel_multi_index((1, 2, 3), a.shape)
    assert d.max_ulp >= 1 and "differ" in str(d)
