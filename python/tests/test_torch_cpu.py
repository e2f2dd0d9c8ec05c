"""torch tensors in and out of the CPU API (through DLPack, bf16 included); the GPU ops' refusal of CPU
tensors, which needs no GPU. Skipped without torch. (The CPU API's refusal of a GPU tensor needs a GPU:
test_torch_gpu.py.)"""

import numpy as np
import pytest

import mnnvl_ar
from conftest import load, manifest

torch = pytest.importorskip("torch")

ADVERSARIAL = next(c for c in manifest()["cases"] if c["name"] == "adversarial_bf16_w16")
RAW = load(ADVERSARIAL["input"])


def test_torch_cpu_tensors_give_the_same_bits():
    want = load(ADVERSARIAL["outputs"]["twoshot/flashinfer"])
    x = torch.from_numpy(RAW.view(np.int16)).view(torch.bfloat16)
    got = mnnvl_ar.reference(x, "twoshot")
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16
    assert np.array_equal(got.view(torch.int16).numpy().view(np.uint16), want)


def test_the_gpu_ops_refuse_a_cpu_tensor_by_name():
    from mnnvl_ar import gpu  # loads no CUDA until a workspace is made

    x = torch.zeros((2, 64), dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"input is on cpu; the kernels need a CUDA tensor"):
        torch.ops.mnnvl_ar.all_reduce(x, torch.empty_like(x), 0, int(gpu.Strategy.AUTO), False)
    with pytest.raises(ValueError, match=r"input is on cpu; the kernels need a CUDA tensor"):
        torch.ops.mnnvl_ar.fused_allreduce_add_rmsnorm(x, x, x[0], torch.empty_like(x), torch.empty_like(x), 0, 1e-6,
                                                       int(gpu.Strategy.AUTO), False, 0.0)
    with pytest.raises(ValueError, match=r"input is on cpu; the kernels need a CUDA tensor"):
        gpu.all_reduce(x, None, strategy="threeshot")  # the tensor's problem first, as before any launch


def test_quantised_outputs_from_torch_tensors():
    """FlashInfer's *_quant op returns torch tensors: FP8 codes as float8_e4m3fn, dynamic scales float32 [N, 1],
    NVFP4 codes and block scales as bytes. They compare as their bytes; torch inputs give torch outputs."""
    from mnnvl_ar.testing import assert_quant_exact

    case = next(c for c in manifest()["quant_cases"] if c["name"] == "quant_edge_bf16_w2")
    f = case["fused"]
    x, residual, gamma = (torch.from_numpy(load(e).view(np.int16)).view(torch.bfloat16)
                          for e in (case["input"], f["residual"], f["gamma"]))
    for mode in ("fp8", "fp8-dynamic", "nvfp4"):
        r = mnnvl_ar.fused_quant_reference(x, residual, gamma, quant=mode, eps=f["eps"])
        assert isinstance(r.normalized, torch.Tensor) and r.normalized.dtype == torch.bfloat16
        assert isinstance(r.quant_out, torch.Tensor) and r.quant_out.dtype == torch.uint8
        raw = mnnvl_ar.fused_quant_reference(load(case["input"]), load(f["residual"]), load(f["gamma"]), quant=mode,
                                             eps=f["eps"], dtype="bf16")
        assert np.array_equal(r.quant_out.numpy(), raw.quant_out)
        quant_out, scale_out = r.quant_out, r.scale_out
        if mode == "fp8":
            quant_out = quant_out.view(torch.float8_e4m3fn)  # FlashInfer's dtype
            assert scale_out is None
        elif mode == "fp8-dynamic":
            assert scale_out.dtype == torch.float32 and tuple(scale_out.shape) == (9, 1)
        assert_quant_exact(x, residual, gamma, quant_out, scale_out, quant=mode, eps=f["eps"])
        decoded = mnnvl_ar.dequantize(quant_out, scale_out, quant=mode)
        assert isinstance(decoded, torch.Tensor) and decoded.dtype == torch.float32
        assert np.array_equal(decoded.numpy().view(np.uint32),
                              mnnvl_ar.dequantize(raw.quant_out, raw.scale_out, quant=mode).view(np.uint32))
        planted = r.quant_out.clone()
        planted.view(-1)[17] ^= 1
        with pytest.raises(AssertionError, match=r"quant_out\[17\]: 0x"):
            assert_quant_exact(x, residual, gamma, planted, scale_out, quant=mode, eps=f["eps"])
