"""torch tensors in and out of the CPU API (through DLPack, bf16 included); the GPU ops' refusal of CPU
tensors, which needs no GPU. Skipped without torch."""

import numpy as np
import pytest

import mnnvl_ar
from conftest import load, manifest

torch = pytest.importorskip("torch")

ADVERSARIAL = next(c for c in manifest()["cases"] if c["name"] == "adversarial_bf16_w16")
RAW = load(ADVERSARIAL["input"])


def test_a_gpu_tensor_is_refused_by_name():
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    with pytest.raises(ValueError, match=r"x is on cuda:0: the reference runs on the CPU"):
        mnnvl_ar.reference(torch.zeros((2, 1, 16), dtype=torch.bfloat16, device="cuda"))


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
