"""Our kernels behind FlashInfer's call signature, for machines where FlashInfer's workspace cannot be made (no
NVLink multicast): one process is one rank, tensors are torch CUDA tensors, calls run on the current stream.

    import torch.distributed as dist
    from mnnvl_ar import gpu
    dist.init_process_group("gloo")                        # or any group; torchrun sets the variables
    ws = gpu.Workspace()                                   # every rank of the group, together
    out = gpu.all_reduce(x, ws, launch_with_pdl=False)     # trtllm_mnnvl_allreduce(input, workspace, ...)
    y, res = gpu.fused_allreduce_add_rmsnorm(x, residual, gamma, ws)

Without a torch.distributed group the ranks meet through mnnvl_ar's own rendezvous (mnnvl_ar.Rendezvous):
under torchrun with the same secret token on every process, nothing else is needed,

    export MNNVL_AR_TOKEN=$(openssl rand -hex 16)
    torchrun --nproc_per_node 2 my_script.py               # ws = gpu.Workspace(), no init_process_group

or pass one: gpu.Workspace(rendezvous=mnnvl_ar.Rendezvous(port=29600)).

The calls are torch custom ops (torch.ops.mnnvl_ar.*): torch.compile traces them, CUDA graphs capture them,
torch.library.opcheck passes. No multicast is used; every wait is bounded (timeout_s), and a call after a
wait gave up raises RuntimeError naming the rank that waited and the rank that never came. Needs torch;
`import mnnvl_ar` does not load this module.
"""

import enum
import itertools

import torch
import torch.distributed as dist

from ._core import Rendezvous
from ._handles import DescriptorExchange
from ._peers import RendezvousPeers, TorchDistributedPeers

_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
_EPS = {dtype: torch.finfo(dtype).eps for dtype in _DTYPES}  # the fused call's default epsilon, FlashInfer's
_workspaces = {}
_ids = itertools.count(1)


def _native():
    from . import _cuda  # the CUDA layer loads here, on first use

    return _cuda


class Strategy(enum.IntEnum):
    """FlashInfer's MNNVLAllreduceFusionStrategy values."""

    ONESHOT = 0
    TWOSHOT = 1
    AUTO = 99


# Keyed by Strategy, so by its int value too (the ops take the value).
_STRATEGY_NAMES = {Strategy.ONESHOT: "oneshot", Strategy.TWOSHOT: "twoshot", Strategy.AUTO: "auto"}
_STRATEGY_CODES = {name: int(code) for code, name in _STRATEGY_NAMES.items()}
# Every spelling of a strategy found in one lookup: a Strategy, its value or its name.
_STRATEGY_LOOKUP = {**_STRATEGY_CODES, **{int(code): int(code) for code in Strategy}}


def _strategy_code(strategy):
    """A Strategy, its value, or its name ("oneshot") as the value the ops take."""
    code = _STRATEGY_LOOKUP.get(strategy) if isinstance(strategy, (str, int)) else None
    if code is not None:
        return code
    try:
        return _STRATEGY_CODES[strategy] if isinstance(strategy, str) else int(Strategy(int(strategy)))
    except (KeyError, ValueError):
        raise ValueError(f"unknown strategy {strategy!r} (choose Strategy.ONESHOT, TWOSHOT or AUTO)") from None


# Both ways a workspace's ranks can meet, for the refusal when neither is there.
_NO_PEERS = ("mnnvl_ar.gpu.Workspace needs to meet the other ranks: either through torch.distributed (call "
             "torch.distributed.init_process_group first), or through mnnvl_ar's own rendezvous (start the processes "
             "with torchrun, or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, and set the same MNNVL_AR_TOKEN on "
             "every process, e.g. export MNNVL_AR_TOKEN=$(openssl rand -hex 16); or pass "
             "rendezvous=mnnvl_ar.Rendezvous(...))")

# How long a rendezvous the workspace makes itself waits for the peers at least: processes that import torch
# and start CUDA arrive seconds apart.
_MIN_RENDEZVOUS_TIMEOUT_S = 30.0


def _meet_peers(group, rendezvous, timeout_s):
    """Who this rank's peers are, and the Rendezvous the workspace made itself (None when it made none)."""
    if rendezvous is not None:
        if group is not None:
            raise ValueError("pass group= or rendezvous=, not both: the ranks meet through one of them")
        return RendezvousPeers(rendezvous), None
    if dist.is_available() and dist.is_initialized():
        return TorchDistributedPeers(group), None
    if group is not None:
        raise ValueError("group= was given, but torch.distributed is not initialised: call "
                         "torch.distributed.init_process_group first")
    try:
        own = Rendezvous(timeout_s=max(_MIN_RENDEZVOUS_TIMEOUT_S, timeout_s))
    except ValueError as e:
        raise ValueError(f"{_NO_PEERS}; the environment does not describe a rendezvous: {e}") from None
    if own.launcher == "single":
        own.close()
        raise ValueError(f"{_NO_PEERS}; no launcher variables (RANK and WORLD_SIZE...) are set")
    return RendezvousPeers(own), own


class Workspace:
    """This rank's Lamport buffers, with every peer's mapped. Every rank constructs it at the same time.

    The ranks meet (to exchange memory handles, and in reset()) through, in this order: `rendezvous` when
    given (a mnnvl_ar.Rendezvous); else torch.distributed when it is initialised, over `group` (default: the
    default process group); else a Rendezvous the workspace makes from the environment, as torchrun sets it
    (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) with the same MNNVL_AR_TOKEN (or MNNVL_AR_TOKEN_FILE) on every
    process, waiting up to max(30 s, timeout_s) for the peers. That rendezvous's rank 0 listens on MASTER_PORT,
    or on MASTER_PORT + 1 under torchrun, whose agent serves its own store on MASTER_PORT
    (TORCHELASTIC_USE_AGENT_STORE=True); to choose another port, pass
    rendezvous=mnnvl_ar.Rendezvous(port=P) with the same free P on every rank. Without any of these it raises
    ValueError saying both ways.

    buffer_size_in_bytes: per Lamport buffer (default: enough for 1 MiB ONESHOT calls and small TWOSHOT ones;
    larger calls are refused with the size they need). timeout_s bounds every wait of every call. sm_count: the
    SM count whose launch the fused call's summation tree follows (default the GPU's own: FlashInfer's bits on
    this GPU)."""

    def __init__(self, group=None, *, buffer_size_in_bytes=None, device=None, timeout_s=10.0, sm_count=None,
                 rendezvous=None):
        peers, self._own_rendezvous = _meet_peers(group, rendezvous, timeout_s)
        self.group = group
        self.rank = peers.rank
        self.world_size = peers.world_size
        self.device = torch.device("cuda", torch.cuda.current_device() if device is None else
                                   torch.device(device).index or 0)
        exchange = DescriptorExchange(peers, timeout_s)
        try:
            with torch.cuda.device(self.device):
                self._native = _native().RankWorkspace(self.world_size, self.rank, self.device.index,
                                                       buffer_size_in_bytes, timeout_s, exchange.exchange,
                                                       exchange.barrier)
        except BaseException as e:
            if self._own_rendezvous is not None:  # the peers learn why now, not at their timeout
                self._own_rendezvous.abort(f"rank {self.rank} could not build its workspace: {e}")
                self._own_rendezvous.close()
            raise
        finally:
            exchange.close()
        if sm_count is not None:
            self._native.set_sm_count(sm_count)
        self.id = next(_ids)
        _workspaces[self.id] = self

    @property
    def buffer_bytes(self):
        """Bytes per Lamport buffer (BPB), at least what was asked for."""
        return self._native.buffer_bytes

    def synchronize(self):
        """Waits for this rank's calls; raises RuntimeError naming the ranks if a wait gave up."""
        torch.cuda.synchronize(self.device)
        self._native.raise_timeout()

    def reset(self):
        """Lamport-initialises the buffers and flags again (every rank together): the way back after a timeout."""
        torch.cuda.synchronize(self.device)
        self._native.reset()

    def close(self):
        """Retires the workspace; a rendezvous it made itself is closed with it."""
        _workspaces.pop(self.id, None)
        if self._own_rendezvous is not None:
            self._own_rendezvous.close()


def _check(name, t, like=None, shape=None):
    """Raises ValueError saying what is wrong with one tensor of a call, if anything."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor")
    if t.device.type != "cuda":
        raise ValueError(f"{name} is on {t.device}; the kernels need a CUDA tensor")
    if t.dtype not in _DTYPES:
        raise ValueError(f"{name} is {t.dtype}; the kernels take bfloat16, float16 or float32")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous")
    if like is not None and (t.dtype != like.dtype or t.device != like.device):
        raise ValueError(f"{name} is {t.dtype} on {t.device}; it must match input ({like.dtype} on {like.device})")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(t.shape)}; it must be {tuple(shape)}")


def _refuse(input, output, residual_in=None, gamma=None, residual_out=None):
    """Raises ValueError for the first thing wrong with a call's tensors, in the order of the call's arguments
    (the fused call's when gamma is given); returns when nothing is."""
    _check("input", input)
    if input.dim() != 2:
        raise ValueError(f"input must be [N, D], not {input.dim()}-D")
    if gamma is not None:
        _check("residual_in", residual_in, input, input.shape)
        _check("gamma", gamma, input, (input.shape[1],))
    _check("output", output, input, input.shape)
    if gamma is not None:
        _check("residual_out", residual_out, input, input.shape)


def _like(t, input, shape):
    """Whether t is a contiguous CUDA tensor of input's dtype, on input's GPU, of this shape."""
    return (t.is_cuda and t.dtype == input.dtype and t.get_device() == input.get_device() and t.shape == shape
            and t.is_contiguous())


def _check_call(input, output, residual_in=None, gamma=None, residual_out=None):
    """The ops' argument checks: a call the kernels can take costs a few attribute reads; anything else goes
    through _refuse, which says what is wrong. (Alignment is the launch's own check.)"""
    if (input.is_cuda and input.dtype in _DTYPES and input.dim() == 2 and input.is_contiguous()
            and _like(output, input, input.shape)
            and (gamma is None or (_like(residual_in, input, input.shape) and _like(gamma, input, input.shape[1:])
                                   and _like(residual_out, input, input.shape)))):
        return
    _refuse(input, output, residual_in, gamma, residual_out)


try:  # the raw handle of the current stream, without building a torch.cuda.Stream (a few microseconds a call)
    _current_stream = torch._C._cuda_getCurrentRawStream
except AttributeError:  # pragma: no cover
    def _current_stream(index):
        return torch.cuda.current_stream(index).cuda_stream


def _launch(workspace, input, output, strategy, launch_with_pdl, residual=None, residual_out=None, gamma=None,
            epsilon=None, weight_bias=0.0):
    """The ops' implementation: checks the call, then this rank's kernel on the current stream. The native
    launch refuses a tensor that is not 16-byte aligned, and raises when a wait of an earlier call gave up."""
    _check_call(input, output, residual, gamma, residual_out)
    ws = _workspaces.get(workspace)
    if ws is None:
        raise ValueError(f"workspace {workspace} does not exist (closed, or made in another process)")
    native = ws._native
    tokens, hidden = input.shape
    stream = _current_stream(input.get_device())
    if gamma is None:
        native.launch(input.data_ptr(), output.data_ptr(), tokens, hidden, _DTYPES[input.dtype],
                      _STRATEGY_NAMES[strategy], launch_with_pdl, stream)
    else:
        native.launch(input.data_ptr(), output.data_ptr(), tokens, hidden, _DTYPES[input.dtype],
                      _STRATEGY_NAMES[strategy], launch_with_pdl, stream, residual.data_ptr(),
                      residual_out.data_ptr(), gamma.data_ptr(), epsilon, weight_bias)


# The ops, defined by schema (less per-call overhead than torch.library.custom_op's wrappers): each writes its
# outputs in place and returns nothing; the fake kernels tell torch.compile so.
_library = torch.library.Library("mnnvl_ar", "DEF")
_library.define("all_reduce(Tensor input, Tensor(a!) output, int workspace, int strategy, bool launch_with_pdl) -> ()")
_library.define("fused_allreduce_add_rmsnorm(Tensor input, Tensor residual_in, Tensor gamma, Tensor(a!) output, "
                "Tensor(b!) residual_out, int workspace, float epsilon, int strategy, bool launch_with_pdl, "
                "float weight_bias) -> ()")


def _all_reduce_impl(input, output, workspace, strategy, launch_with_pdl):
    _launch(workspace, input, output, strategy, launch_with_pdl)


def _fused_impl(input, residual_in, gamma, output, residual_out, workspace, epsilon, strategy, launch_with_pdl,
                weight_bias):
    _launch(workspace, input, output, strategy, launch_with_pdl, residual_in, residual_out, gamma, epsilon,
            weight_bias)


# On CPU too, where the checks refuse every call: a CPU tensor gets their message, not the dispatcher's.
for _key in ("CUDA", "CPU"):
    _library.impl("all_reduce", _all_reduce_impl, _key)
    _library.impl("fused_allreduce_add_rmsnorm", _fused_impl, _key)


@torch.library.register_fake("mnnvl_ar::all_reduce")
def _(input, output, workspace, strategy, launch_with_pdl):
    return None


@torch.library.register_fake("mnnvl_ar::fused_allreduce_add_rmsnorm")
def _(input, residual_in, gamma, output, residual_out, workspace, epsilon, strategy, launch_with_pdl, weight_bias):
    return None


def all_reduce(input, workspace, launch_with_pdl=False, output=None, strategy=Strategy.AUTO):
    """FlashInfer's trtllm_mnnvl_allreduce: the sum over ranks of every rank's [N, D] `input`, into `output`
    (allocated when None), which it returns. The op checks the tensors."""
    if not isinstance(input, torch.Tensor):
        _refuse(input, output)
    if output is None:
        output = torch.empty_like(input)
    elif not isinstance(output, torch.Tensor):
        _refuse(input, output)
    try:
        workspace_id, code = workspace.id, _strategy_code(strategy)
    except (AttributeError, TypeError, ValueError):
        _refuse(input, output)  # the tensors' problems first, in the order of the arguments
        raise
    torch.ops.mnnvl_ar.all_reduce(input, output, workspace_id, code, launch_with_pdl)
    return output


def fused_allreduce_add_rmsnorm(input, residual_in, gamma, workspace, epsilon=None, output=None, residual_out=None,
                                launch_with_pdl=False, strategy=Strategy.AUTO, weight_bias=0.0):
    """FlashInfer's trtllm_mnnvl_fused_allreduce_add_rmsnorm: returns (output, residual_out), the RMSNorm of
    all-reduce + residual_in and all-reduce + residual_in itself. epsilon None: torch.finfo(dtype).eps, as
    FlashInfer's Python. The op checks the tensors."""
    if not (isinstance(input, torch.Tensor) and isinstance(residual_in, torch.Tensor)
            and isinstance(gamma, torch.Tensor)):
        _refuse(input, output, residual_in, gamma, residual_out)
    output = torch.empty_like(input) if output is None else output
    residual_out = torch.empty_like(input) if residual_out is None else residual_out
    if not (isinstance(output, torch.Tensor) and isinstance(residual_out, torch.Tensor)):
        _refuse(input, output, residual_in, gamma, residual_out)
    try:
        eps = _EPS.get(input.dtype, 0.0) if epsilon is None else float(epsilon)  # another dtype: the op refuses it
        workspace_id, code, bias = workspace.id, _strategy_code(strategy), float(weight_bias)
    except (AttributeError, TypeError, ValueError):
        _refuse(input, output, residual_in, gamma, residual_out)  # the tensors' problems first
        raise
    torch.ops.mnnvl_ar.fused_allreduce_add_rmsnorm(input, residual_in, gamma, output, residual_out, workspace_id,
                                                   eps, code, launch_with_pdl, bias)
    return output, residual_out
