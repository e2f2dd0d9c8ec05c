"""mnnvl_ar: what FlashInfer's MNNVL (Lamport-buffer) all-reduce returns, bit for bit, and why.

    import mnnvl_ar
    out = mnnvl_ar.reference(x, strategy="auto")        # x: [W, N, D], every rank's shard
    print(mnnvl_ar.check(inputs, outputs))               # every rank's input and output of your run
    print(mnnvl_ar.explain(x, token=0, col=5))           # why element [0, 5] has its bits
    q = mnnvl_ar.fused_quant_reference(x, residual, gamma, quant="nvfp4")   # FlashInfer's *_quant outputs

Arrays are NumPy (bf16 as ml_dtypes.bfloat16, or raw uint16 with dtype="bf16"), or torch CPU tensors.
Everything here runs on the CPU without a GPU, CUDA or torch. Rendezvous joins the processes of a job
without torch.distributed (all_gather, barrier), as mnnvl_ar.gpu.Workspace does when there is no group.
"""

from ._check import CheckReport, check
from ._quant import (QUANT_MODES, SCALE_LAYOUTS, FusedQuantResult, QuantDiff, compare_quant, dequantize,
                     fused_quant_reference)
from ._core import Rendezvous
from ._reference import (DEFAULT_SM_COUNT, PROFILES, STRATEGIES, correctly_rounded, fused_reference, reference,
                         resolve)
from ._reports import Accuracy, Diff, Explanation, accuracy, diff, explain
from ._tensors import DTYPES
from . import testing

__all__ = [
    "Accuracy", "CheckReport", "DEFAULT_SM_COUNT", "DTYPES", "Diff", "Explanation", "FusedQuantResult", "PROFILES",
    "QUANT_MODES", "QuantDiff", "Rendezvous", "SCALE_LAYOUTS", "STRATEGIES", "accuracy", "check", "compare_quant",
    "correctly_rounded", "dequantize", "diff", "explain", "fused_quant_reference", "fused_reference", "reference",
    "resolve", "testing",
]
