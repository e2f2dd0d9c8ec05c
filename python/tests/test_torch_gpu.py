"""The CPU API refuses a torch tensor on the GPU, naming it. Its own file: CTest runs a file as one test and
reports it skipped only when every test in it skipped, so a GPU test beside CPU ones would pass without a GPU.
Skipped without torch or a GPU."""

import pytest

import mnnvl_ar

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no GPU", allow_module_level=True)


def test_a_gpu_tensor_is_refused_by_name():
    with pytest.raises(ValueError, match=r"x is on cuda:0: the reference runs on the CPU"):
        mnnvl_ar.reference(torch.zeros((2, 1, 16), dtype=torch.bfloat16, device="cuda"))
