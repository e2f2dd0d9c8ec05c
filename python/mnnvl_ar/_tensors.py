"""Operands in and results out: NumPy arrays (bf16 as ml_dtypes.bfloat16, or raw uint16 words with
dtype="bf16"), torch CPU tensors (through DLPack, bf16 included), and lists of per-rank shards. The model
takes raw bits; every value goes back in the kind it came in."""

import numpy as np
import ml_dtypes

DTYPES = ("bf16", "fp16", "fp32")

_WORDS = {"bf16": np.uint16, "fp16": np.uint16, "fp32": np.uint32}
_FLOATS = {"bf16": np.dtype(ml_dtypes.bfloat16), "fp16": np.dtype(np.float16), "fp32": np.dtype(np.float32)}
_RAW = {np.dtype(np.uint16): ("bf16", "fp16"), np.dtype(np.int16): ("bf16", "fp16"),
        np.dtype(np.uint32): ("fp32",), np.dtype(np.int32): ("fp32",)}


def _is_torch(value):
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "device")


def _torch_words(value, name):
    import torch

    if value.device.type != "cpu":
        raise ValueError(f"{name} is on {value.device}: the reference runs on the CPU (pass {name}.cpu())")
    by_dtype = {torch.bfloat16: ("bf16", torch.int16), torch.float16: ("fp16", torch.int16),
                torch.float32: ("fp32", torch.int32)}
    if value.dtype not in by_dtype:
        raise ValueError(f"{name} is a torch tensor of {value.dtype}; the model takes bfloat16, float16 or float32")
    t, word = by_dtype[value.dtype]
    words = np.from_dlpack(value.detach().contiguous().view(word))
    return words.view(_WORDS[t]), t


def from_dlpack(value, name):
    """An array from an object that offers __dlpack__ (not a NumPy array, which needs none), or value as it
    is. Whatever the object's exporter raises becomes a ValueError naming the argument."""
    if not hasattr(value, "__dlpack__") or isinstance(value, np.ndarray):
        return value
    try:
        return np.from_dlpack(value)
    except Exception as e:  # noqa: BLE001 (an exporter may raise anything; the caller needs to know which argument)
        raise ValueError(f"{name}: cannot read it through DLPack ({type(e).__name__}: {e})") from None


class Operand:
    """One operand as the model takes it: C-contiguous raw words, the dtype's name, and how it came in."""

    __slots__ = ("words", "dtype", "kind")

    def __init__(self, words, dtype, kind):
        self.words, self.dtype, self.kind = words, dtype, kind


def _one(value, name, dtype):
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"unknown dtype '{dtype}' (choose bf16, fp16 or fp32)")
    if _is_torch(value):
        words, t = _torch_words(value, name)
        kind = "torch"
    else:
        array = np.asarray(from_dlpack(value, name))
        if array.dtype in _RAW:
            choices = _RAW[array.dtype]
            if dtype is None and len(choices) > 1:
                raise ValueError(f"{name} holds raw {array.dtype} words: say which dtype they are "
                                 f"(dtype='bf16' or 'fp16')")
            t = dtype or choices[0]
            if t not in choices:
                raise ValueError(f"{name} holds raw {array.dtype} words, which cannot be {t}")
            words, kind = array.view(_WORDS[t]), "raw"
        else:
            matches = [k for k, v in _FLOATS.items() if v == array.dtype]
            if not matches:
                raise ValueError(f"{name} has dtype {array.dtype}; the model takes bf16 (ml_dtypes.bfloat16, or "
                                 f"raw uint16 with dtype='bf16'), fp16 (float16) or fp32 (float32)")
            t, kind = matches[0], "numpy"
            words = array.view(_WORDS[t])
    if dtype is not None and t != dtype:
        raise ValueError(f"{name} holds {t}, not the dtype given ({dtype})")
    return Operand(np.ascontiguousarray(words), t, kind)


def operand(value, name, dtype=None):
    """`value` (an array, a tensor, or a list or tuple of per-rank shards, stacked) as an Operand."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name} is an empty list: give every rank's shard")
        parts = [_one(v, f"{name}[{r}]", dtype) for r, v in enumerate(value)]
        t = parts[0].dtype
        for r, p in enumerate(parts):
            if p.dtype != t:
                raise ValueError(f"{name}[{r}] holds {p.dtype} but {name}[0] holds {t}")
            if p.words.shape != parts[0].words.shape:
                raise ValueError(f"{name}[{r}] has shape {p.words.shape} but {name}[0] has {parts[0].words.shape}")
        return Operand(np.stack([p.words for p in parts]), t, parts[0].kind)
    return _one(value, name, dtype)


def same_kind(words, dtype, kind):
    """Raw words from the model as a value of `kind`: raw words stay raw, NumPy gets its float dtype (bf16 as
    ml_dtypes.bfloat16), torch gets a CPU tensor."""
    if kind == "raw":
        return words
    if kind == "torch":
        import torch

        signed = words.view(np.int16 if words.dtype == np.uint16 else np.int32)
        float_of = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
        return torch.from_dlpack(signed).view(float_of)
    return words.view(_FLOATS[dtype])
