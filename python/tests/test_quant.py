"""The quantised outputs in the CPU API: fused_quant_reference writes the bytes `mnnvl-ar reference --quant`
writes, dequantize decodes them as `mnnvl-ar dequant` does (and as an independent decoding with ml_dtypes
does), every refusal is the CLI's ValueError, and testing.assert_quant_exact names the first differing byte."""

import subprocess

import ml_dtypes
import numpy as np
import pytest

import mnnvl_ar
from mnnvl_ar.testing import assert_quant_exact
from conftest import DATA, load, manifest

QUANT = {c["name"]: c for c in manifest()["quant_cases"]}
EDGE = QUANT["quant_edge_bf16_w2"]
RANDOM = QUANT["quant_random_fp16_w2_n130_d128"]


def inputs(case):
    f = case["fused"]
    return load(case["input"]), load(f["residual"]), load(f["gamma"])


def call(case, **kw):
    """fused_quant_reference on a golden case's inputs, with the case's eps and dtype."""
    x, residual, gamma = inputs(case)
    f = case["fused"]
    return mnnvl_ar.fused_quant_reference(x, residual, gamma, eps=f["eps"], weight_bias=f["weight_bias"],
                                          sm_count=f["sm_count"], dtype=case["dtype"], **kw)


def settings(q):
    """A golden quantisation's keyword arguments."""
    kw = {"quant": q["mode"]}
    if "scale" in q:
        kw["quant_scale"] = q["scale"]
    if "layout" in q:
        kw["scale_layout"] = q["layout"]
    return kw


def same_bytes(got, want):
    return got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


def test_results_are_the_fused_outputs_and_the_codes():
    x, residual, gamma = inputs(RANDOM)
    f = RANDOM["fused"]
    r = call(RANDOM, quant="nvfp4", strategy="twoshot")
    normalized, residual_out = mnnvl_ar.fused_reference(x, residual, gamma, eps=f["eps"], strategy="twoshot",
                                                        dtype="fp16")
    assert np.array_equal(r.normalized, normalized) and np.array_equal(r.residual_out, residual_out)
    assert r.normalized.dtype == np.uint16  # raw words in, raw words out, as fused_reference
    assert r.quant_out.dtype == np.uint8 and r.quant_out.shape == (130, 64)
    assert r.scale_out.dtype == np.uint8 and r.scale_out.shape == (256, 8)  # N up to 128, D / 16 up to 4
    n, ro, q, s = r  # a NamedTuple
    assert q is r.quant_out and s is r.scale_out
    assert call(RANDOM, quant="fp8").scale_out is None
    dynamic = call(RANDOM, quant="fp8-dynamic")
    assert dynamic.quant_out.shape == (130, 128) and dynamic.scale_out.dtype == np.float32
    assert dynamic.scale_out.shape == (130, 1)
    linear = call(RANDOM, quant="nvfp4", scale_layout="linear")
    assert linear.scale_out.shape == (130, 8)
    typed = mnnvl_ar.fused_quant_reference(np.load(DATA / RANDOM["input"]["file"]), residual.view(np.float16),
                                           gamma.view(np.float16), eps=f["eps"], quant="nvfp4", strategy="twoshot")
    assert typed.normalized.dtype == np.float16 and same_bytes(typed.quant_out, r.quant_out)


def test_the_files_the_cli_writes(cli, tmp_path):
    """reference --quant's four files against the package's four arrays, for each mode, both strategies and a
    non-default scale and layout; then dequant's file against dequantize."""
    f = EDGE["fused"]
    x_file, r_file, g_file = (str(DATA / e["file"]) for e in (EDGE["input"], f["residual"], f["gamma"]))
    runs = [("fp8", ["--quant-scale", "0.37"], {"quant_scale": 0.37}),
            ("fp8-dynamic", [], {}),
            ("nvfp4", [], {}),
            ("nvfp4", ["--quant-scale", "2688", "--scale-layout", "linear"],
             {"quant_scale": 2688.0, "scale_layout": "linear"})]
    for mode, flags, kw in runs:
        for strategy in ("oneshot", "twoshot"):
            out = {k: str(tmp_path / f"{k}.npy") for k in ("y", "ro", "q", "s", "d")}
            args = [cli, "reference", "-i", x_file, "-d", "bf16", "--residual", r_file, "--gamma", g_file, "--eps",
                    repr(f["eps"]), "-s", strategy, "-o", out["y"], "--residual-out", out["ro"], "--quant", mode,
                    "--quant-out", out["q"], *flags]
            if mode != "fp8":
                args += ["--scale-out", out["s"]]
            subprocess.run(args, capture_output=True, text=True, check=True)
            got = call(EDGE, quant=mode, strategy=strategy, **kw)
            what = f"{mode} {flags} {strategy}"
            assert same_bytes(got.normalized, np.load(out["y"])), what
            assert same_bytes(got.residual_out, np.load(out["ro"])), what
            assert same_bytes(got.quant_out, np.load(out["q"])), what
            if mode == "fp8":
                assert got.scale_out is None
            else:
                assert same_bytes(got.scale_out, np.load(out["s"])), what
            dq = [cli, "dequant", "--quant", mode, "--quant-out", out["q"], "-o", out["d"], *flags]
            if mode != "fp8":
                dq += ["--scale-out", out["s"]]
            subprocess.run(dq, capture_output=True, text=True, check=True)
            decoded = mnnvl_ar.dequantize(got.quant_out, got.scale_out, quant=mode, **kw)
            assert same_bytes(decoded, np.load(out["d"])), what


def swizzled_offset(m, k, hidden):
    """FlashInfer's SWIZZLED_128x4 offset of token m's block k (SPEC section 13), written out again here."""
    return ((m // 128) * ((hidden + 63) // 64) * 512 + (k // 4) * 512 + (m % 32) * 16 + ((m % 128) // 32) * 4
            + k % 4)


def decode_e2m1(quant_out):
    """[N, D / 2] bytes, element 2i in the low nibble, as float64 [N, D]."""
    nibbles = np.stack([quant_out & 0xF, quant_out >> 4], axis=-1).reshape(quant_out.shape[0], -1)
    return nibbles.view(ml_dtypes.float4_e2m1fn).astype(np.float64)


def e4m3(codes):
    return codes.view(ml_dtypes.float8_e4m3fn).astype(np.float64)


@pytest.mark.parametrize("layout", ["swizzled", "linear"])
def test_dequantize_decodes_nvfp4_as_the_spec_says(layout):
    g = 2688.0
    r = call(RANDOM, quant="nvfp4", quant_scale=g, scale_layout=layout)
    n, d = 130, 128
    flat = r.scale_out.reshape(-1)
    sf = np.empty((n, d // 16), np.uint8)
    for m in range(n):
        for k in range(d // 16):
            sf[m, k] = flat[swizzled_offset(m, k, d) if layout == "swizzled" else m * (d // 16) + k]
    want = (decode_e2m1(r.quant_out) * np.repeat(e4m3(sf), 16, axis=1) / g).astype(np.float32)
    got = mnnvl_ar.dequantize(r.quant_out, r.scale_out, quant="nvfp4", quant_scale=g, scale_layout=layout)
    assert got.dtype == np.float32 and got.shape == (n, d)
    assert same_bytes(got, want)
    # The same bytes flattened (a caller keeping scale_out as one vector) decode the same.
    assert same_bytes(mnnvl_ar.dequantize(r.quant_out, flat, quant="nvfp4", quant_scale=g, scale_layout=layout),
                      want)


def test_dequantize_decodes_fp8():
    static = call(RANDOM, quant="fp8", quant_scale=0.37)
    got = mnnvl_ar.dequantize(static.quant_out, None, quant="fp8", quant_scale=0.37)
    assert same_bytes(got, (e4m3(static.quant_out) * float(np.float32(0.37))).astype(np.float32))
    dynamic = call(RANDOM, quant="fp8-dynamic", strategy="twoshot")
    got = mnnvl_ar.dequantize(dynamic.quant_out, dynamic.scale_out, quant="fp8-dynamic")
    want = (e4m3(dynamic.quant_out) * dynamic.scale_out.astype(np.float64)).astype(np.float32)
    assert same_bytes(got, want)
    # The token scales also come as raw uint32 words, or as [N].
    assert same_bytes(mnnvl_ar.dequantize(dynamic.quant_out, dynamic.scale_out.view(np.uint32).reshape(-1),
                                          quant="fp8-dynamic"), want)


@pytest.mark.parametrize("profile", ["flashinfer", "ieee", "invariant"])
def test_static_fp8_at_scale_1_round_trips_to_the_nearest_e4m3(profile):
    """At output_scale 1 the code is the T output rounded to e4m3 (RN-even), so decoding it gives that rounding:
    ml_dtypes' cast, for the values inside e4m3's range (beyond it ml_dtypes gives NaN where the kernel
    saturates)."""
    r = call(RANDOM, quant="fp8", profile=profile)
    y = r.normalized.view(np.float16).astype(np.float32)
    decoded = mnnvl_ar.dequantize(r.quant_out, None, quant="fp8")
    inside = np.abs(y) <= 448
    assert inside.mean() > 0.9
    bits = lambda a: np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)  # noqa: E731 (signed zeros count)
    assert np.array_equal(bits(decoded[inside]), bits(y[inside].astype(ml_dtypes.float8_e4m3fn).astype(np.float32)))
    assert np.array_equal(bits(decoded[~inside]), bits(np.copysign(np.float32(448), y[~inside])))


EDGE_X, EDGE_R, EDGE_G = inputs(EDGE)
FP32 = QUANT["quant_edge_fp32_w2"]
ODD = np.zeros((2, 3, 40), np.uint16)  # bf16, D = 40: not a multiple of 16
Q = call(EDGE, quant="nvfp4")
DYN = call(EDGE, quant="fp8-dynamic")


def fused_quant(**kw):
    return lambda: mnnvl_ar.fused_quant_reference(EDGE_X, EDGE_R, EDGE_G, dtype="bf16", **kw)


@pytest.mark.parametrize("run, message", [
    (fused_quant(quant="fp4"), "unknown quant 'fp4' (choose fp8, fp8-dynamic or nvfp4)"),
    (fused_quant(quant="none"), "unknown quant 'none'"),
    (fused_quant(quant="nvfp4", scale_layout="8x4"), "unknown scale_layout '8x4' (choose swizzled or linear)"),
    (fused_quant(quant="fp8", scale_layout="linear"), "scale_layout is for nvfp4's block scales; fp8 has none"),
    (fused_quant(quant="fp8-dynamic", scale_layout="swizzled"), "scale_layout is for nvfp4's block scales"),
    (fused_quant(quant="fp8-dynamic", quant_scale=1.0),
     "quant_scale is for fp8 and nvfp4: fp8-dynamic computes each token's scale from its values"),
    (fused_quant(quant="nvfp4", quant_scale=float("nan")), "quant_scale nan is not a finite number as the fp32"),
    (fused_quant(quant="fp8", quant_scale=float("inf")), "quant_scale inf is not a finite number"),
    (fused_quant(quant="fp8", quant_scale=1e300), "quant_scale 1e+300 is not a finite number as the fp32"),
    (fused_quant(quant="fp8", profile="trtllm"), "not trtllm"),
    (fused_quant(quant="fp8", sm_count=0), "sm_count 0 is outside [1, 1024]"),
    (lambda: mnnvl_ar.fused_quant_reference(*inputs(FP32), quant="nvfp4", dtype="fp32"),
     "([2, 9, 64] fp32): --quant nvfp4 cannot run: NVFP4 quantisation takes bf16 or fp16 input, not fp32"),
    (lambda: mnnvl_ar.fused_quant_reference(ODD, ODD[0], ODD[0, 0], quant="nvfp4", dtype="bf16"),
     "NVFP4 quantisation needs D divisible by 16; D = 40"),
    (lambda: mnnvl_ar.dequantize(Q.quant_out, None, quant="nvfp4"),
     "nvfp4 needs scale_out: its codes mean nothing without their scales"),
    (lambda: mnnvl_ar.dequantize(DYN.quant_out, None, quant="fp8-dynamic"), "fp8-dynamic needs scale_out"),
    (lambda: mnnvl_ar.dequantize(Q.quant_out, Q.scale_out, quant="fp8"),
     "fp8 has no scale output (scale_out is for fp8-dynamic and nvfp4)"),
    (lambda: mnnvl_ar.dequantize(Q.quant_out, Q.scale_out, quant="nvfp5"), "unknown quant 'nvfp5'"),
    (lambda: mnnvl_ar.dequantize(DYN.quant_out, DYN.scale_out, quant="fp8-dynamic", quant_scale=2.0),
     "quant_scale is for fp8 and nvfp4"),
    (lambda: mnnvl_ar.dequantize(Q.quant_out, Q.scale_out, quant="nvfp4", scale_layout="linear"),
     "scale_out is [128, 4] (512 bytes); for N = 9, D = 64 (from quant_out) the linear layout takes uint8 "
     "[N, D / 16] = [9, 4], 36 bytes"),
    (lambda: mnnvl_ar.dequantize(DYN.quant_out, DYN.scale_out[:4], quant="fp8-dynamic"),
     "scale_out is [4, 1]; for N = 9, D = 64 (from quant_out) it must be fp32 [N, 1] = [9, 1]"),
    (lambda: mnnvl_ar.dequantize(DYN.quant_out, DYN.scale_out.astype(np.float64), quant="fp8-dynamic"),
     "scale_out has dtype float64; fp8-dynamic's token scales are float32 [N, 1]"),
    (lambda: mnnvl_ar.dequantize(Q.quant_out[:, :5], Q.scale_out, quant="nvfp4"),
     "quant_out is [9, 5]: NVFP4 codes are [N, D / 2], so D = 10, which is not a multiple of 16"),
    (lambda: mnnvl_ar.dequantize(Q.quant_out.reshape(-1), Q.scale_out, quant="nvfp4"),
     "quant_out is [288]; nvfp4 codes are [N, D / 2]"),
    (lambda: mnnvl_ar.dequantize(Q.quant_out.astype(np.uint16), Q.scale_out, quant="nvfp4"),
     "quant_out has dtype uint16; codes and block scales are bytes"),
    (lambda: mnnvl_ar.compare_quant(Q.quant_out[:4], Q.scale_out, Q.quant_out, Q.scale_out, quant="nvfp4"),
     "quant_out holds N = 4, D = 64 (nvfp4 codes); the expected output has N = 9, D = 64"),
])
def test_refusals_are_value_errors_with_the_cli_message(run, message):
    with pytest.raises(ValueError) as e:
        run()
    assert message in str(e.value)


def test_assert_quant_exact_passes_on_the_reference_bits():
    for mode, kw in (("fp8", {"quant_scale": 0.37}), ("fp8-dynamic", {}), ("nvfp4", {"scale_layout": "linear"})):
        for strategy in ("oneshot", "twoshot"):
            r = call(EDGE, quant=mode, strategy=strategy, **kw)
            d = assert_quant_exact(EDGE_X, EDGE_R, EDGE_G, r.quant_out, r.scale_out, quant=mode, strategy=strategy,
                                   eps=EDGE["fused"]["eps"], dtype="bf16", **kw)
            assert d.identical and d.elements > 0


def assert_fails(quant_out, scale_out, message, **kw):
    with pytest.raises(AssertionError) as e:
        assert_quant_exact(EDGE_X, EDGE_R, EDGE_G, quant_out, scale_out, eps=EDGE["fused"]["eps"], dtype="bf16",
                           **kw)
    assert message in str(e.value)
    return str(e.value)


def test_assert_quant_exact_names_the_first_differing_byte():
    r = call(EDGE, quant="fp8")
    planted = r.quant_out.copy()
    planted.reshape(-1)[17] ^= 1
    planted.reshape(-1)[40] ^= 1
    want = r.quant_out.reshape(-1)[17]
    text = assert_fails(planted, None, f"quant_out[17]: 0x{want ^ 1:02x}, expected 0x{want:02x}", quant="fp8")
    assert "2 of 576 codes and scales differ" in text and "fp8, output_scale 0x3F800000 (1)" in text
    # The other strategy's codes are not these: the edge case's rows part between them.
    twoshot = call(EDGE, quant="fp8-dynamic", strategy="twoshot")
    assert_fails(twoshot.quant_out, twoshot.scale_out, "expected oneshot/flashinfer", quant="fp8-dynamic")
    scales = DYN.scale_out.copy()
    scales[2, 0] = np.float32(1.0)
    want = DYN.scale_out.view(np.uint32)[2, 0]
    assert_fails(DYN.quant_out, scales, f"scale_out[2]: 0x3f800000, expected 0x{want:08x}", quant="fp8-dynamic")


def test_assert_quant_exact_on_nvfp4_block_scales():
    s = Q.scale_out.copy()
    # A byte of the swizzled tiles that belongs to no block (row 9 of the 128 is no token) is not compared.
    s.reshape(-1)[swizzled_offset(9, 0, 64)] = 0x55
    assert_quant_exact(EDGE_X, EDGE_R, EDGE_G, Q.quant_out, s, quant="nvfp4", eps=EDGE["fused"]["eps"], dtype="bf16")
    at = swizzled_offset(1, 2, 64)
    s.reshape(-1)[at] ^= 0x01
    assert_fails(Q.quant_out, s, f"scale_out[{at}]: ", quant="nvfp4")
    # FlashInfer's NVFP4 on sm_90: all-zero codes, said so.
    assert_fails(np.zeros_like(Q.quant_out), Q.scale_out, "quant_out is all zero: FlashInfer's NVFP4 writes zeros",
                 quant="nvfp4")
    # Outputs of another shape fail the assertion, naming what they hold.
    assert_fails(Q.quant_out[:3], Q.scale_out, "quant_out holds N = 3, D = 64", quant="nvfp4")
    # e4m3 arrays (ml_dtypes) compare as their bytes.
    fp8 = call(EDGE, quant="fp8")
    assert_quant_exact(EDGE_X, EDGE_R, EDGE_G, fp8.quant_out.view(ml_dtypes.float8_e4m3fn), None, quant="fp8",
                       eps=EDGE["fused"]["eps"], dtype="bf16")


def test_explain_with_quant_prints_what_the_cli_prints(cli):
    f = EDGE["fused"]
    path, residual, gamma = (str(DATA / e["file"]) for e in (EDGE["input"], f["residual"], f["gamma"]))
    for quant, extra in (("nvfp4", ["--scale-layout", "linear"]), ("fp8-dynamic", []), ("fp8", ["--quant-scale", "0.5"])):
        kw = {"scale_layout": "linear"} if quant == "nvfp4" else {"quant_scale": 0.5} if quant == "fp8" else {}
        e = mnnvl_ar.explain(np.load(path), 0, 21, "oneshot", residual=np.load(residual), gamma=np.load(gamma),
                             eps=f["eps"], weight_bias=f["weight_bias"], sm_count=f["sm_count"], dtype=EDGE["dtype"],
                             name=path, quant=quant, **kw)
        cli_text = subprocess.run([cli, "explain", "-i", path, "-d", EDGE["dtype"], "-t", "0", "-c", "21", "-s",
                                   "oneshot", "--residual", residual, "--gamma", gamma, "--eps", repr(f["eps"]),
                                   "--weight-bias", repr(f["weight_bias"]), "--sms", str(f["sm_count"]),
                                   "--quant", quant] + extra, capture_output=True, text=True, check=True).stdout
        assert str(e) == cli_text
        assert e.quant == quant
    x, r, g = inputs(EDGE)
    with pytest.raises(ValueError, match="quant belongs to the fused call"):
        mnnvl_ar.explain(x, 0, 0, quant="fp8", dtype=EDGE["dtype"])
    with pytest.raises(ValueError, match="quant_scale"):
        mnnvl_ar.explain(x, 0, 0, residual=r, gamma=g, dtype=EDGE["dtype"], quant="fp8-dynamic", quant_scale=2.0)
