"""The GPU API (mnnvl_ar.gpu) under torchrun, one process per rank (several processes may share one GPU):
bit-exact against the reference, plain and fused, through CUDA-graph capture and replay and torch.compile;
torch.library.opcheck; a wait that gives up raises naming the ranks, and reset() recovers; a workspace whose
processes have no torch.distributed group meets through the environment. Skipped without torch, a GPU or
torchrun's variables; on the GPU machine:

    torchrun --nproc_per_node 2 -m pytest python/tests/test_gpu.py
"""

import json
import os
import secrets
import socket
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no GPU", allow_module_level=True)
if "WORLD_SIZE" not in os.environ:
    pytest.skip("not under torchrun (WORLD_SIZE is not set)", allow_module_level=True)

import torch.distributed as dist  # noqa: E402

import mnnvl_ar  # noqa: E402
from mnnvl_ar import gpu  # noqa: E402

WORDS = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32}


@pytest.fixture(scope="module")
def ws():
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    workspace = gpu.Workspace(buffer_size_in_bytes=64 << 20, timeout_s=20.0)
    yield workspace
    workspace.close()


def every_rank_input(world, shape, dtype, seed):
    """Every rank's input, made alike in every process: rank r's is [r]."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn((world, *shape), generator=g) * 8).to(dtype)


def bits(t):
    return t.detach().cpu().contiguous().view(WORDS[t.dtype]).numpy()


def assert_same_bits(got, want, what):
    g, w = bits(got), bits(want)
    differ = np.flatnonzero(g.reshape(-1) != w.reshape(-1))
    assert differ.size == 0, f"{what}: {differ.size} of {g.size} elements differ, first at flat {differ[0]}"


SHAPES = [(1, 4096, torch.bfloat16, "oneshot"), (8, 8192, torch.bfloat16, "auto"), (300, 2880, torch.float16, "twoshot"),
          (64, 4096, torch.float32, "auto"), (512, 1024, torch.bfloat16, "auto"), (5, 7168, torch.bfloat16, "twoshot")]


@pytest.mark.parametrize("tokens, hidden, dtype, strategy", SHAPES)
def test_all_reduce_is_bit_exact(ws, tokens, hidden, dtype, strategy):
    x = every_rank_input(ws.world_size, (tokens, hidden), dtype, seed=tokens * hidden)
    out = gpu.all_reduce(x[ws.rank].cuda(), ws, launch_with_pdl=tokens % 2 == 0, strategy=strategy)
    torch.cuda.synchronize()
    ws.synchronize()
    assert_same_bits(out, mnnvl_ar.reference(x, strategy), f"rank {ws.rank} {strategy} [{tokens}, {hidden}]")


@pytest.mark.parametrize("tokens, hidden, dtype, strategy", SHAPES)
def test_fused_is_bit_exact(ws, tokens, hidden, dtype, strategy):
    x = every_rank_input(ws.world_size, (tokens, hidden), dtype, seed=7 + tokens)
    g = torch.Generator().manual_seed(hidden)
    residual = torch.randn((tokens, hidden), generator=g).to(dtype)
    gamma = (torch.rand((hidden,), generator=g) + 0.5).to(dtype)
    out, res = gpu.fused_allreduce_add_rmsnorm(x[ws.rank].cuda(), residual.cuda(), gamma.cuda(), ws,
                                               epsilon=1e-6, strategy=strategy)
    ws.synchronize()
    sms = torch.cuda.get_device_properties(ws.device).multi_processor_count
    want, want_res = mnnvl_ar.fused_reference(x, residual, gamma, eps=1e-6, strategy=strategy, sm_count=sms)
    assert_same_bits(res, want_res, f"rank {ws.rank} residual_out")
    assert_same_bits(out, want, f"rank {ws.rank} normalized")


@pytest.mark.parametrize("strategy", ["oneshot", "twoshot"])
def test_fused_updates_the_residual_in_place(ws, strategy):
    """An engine's in-place residual add passes residual_in as residual_out: the decode rows' kernels then keep
    one block a row (several would read a residual that another has already overwritten)."""
    x = every_rank_input(ws.world_size, (2, 4096), torch.bfloat16, seed=41)
    g = torch.Generator().manual_seed(43)
    residual = torch.randn((2, 4096), generator=g).to(torch.bfloat16)
    gamma = (torch.rand((4096,), generator=g) + 0.5).to(torch.bfloat16)
    in_place = residual.cuda()
    out, res = gpu.fused_allreduce_add_rmsnorm(x[ws.rank].cuda(), in_place, gamma.cuda(), ws, epsilon=1e-6,
                                               residual_out=in_place, strategy=strategy)
    ws.synchronize()
    assert res.data_ptr() == in_place.data_ptr()
    sms = torch.cuda.get_device_properties(ws.device).multi_processor_count
    want, want_res = mnnvl_ar.fused_reference(x, residual, gamma, eps=1e-6, strategy=strategy, sm_count=sms)
    assert_same_bits(in_place, want_res, f"rank {ws.rank} residual updated in place")
    assert_same_bits(out, want, f"rank {ws.rank} normalized")


def test_graph_capture_and_replay(ws):
    shape, dtype = (16, 4096), torch.bfloat16
    static_in = torch.zeros(shape, dtype=dtype, device="cuda")
    static_out = torch.empty_like(static_in)
    gpu.all_reduce(static_in, ws, False, output=static_out)  # warm-up outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        gpu.all_reduce(static_in, ws, True, output=static_out, strategy="twoshot")
    for seed in range(3):
        x = every_rank_input(ws.world_size, shape, dtype, seed=100 + seed)
        static_in.copy_(x[ws.rank])
        graph.replay()
        torch.cuda.synchronize()
        ws.synchronize()
        assert_same_bits(static_out, mnnvl_ar.reference(x, "twoshot"), f"replay {seed}")


def test_torch_compile_traces_the_op(ws):
    x = every_rank_input(ws.world_size, (4, 2048), torch.bfloat16, seed=5)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def step(t):
        return gpu.all_reduce(t * 1, ws, False, strategy="oneshot")

    out = step(x[ws.rank].cuda())
    ws.synchronize()
    assert_same_bits(out, mnnvl_ar.reference(x, "oneshot"), "compiled")


def test_opcheck(ws):
    x = every_rank_input(ws.world_size, (8, 1024), torch.float16, seed=9)
    inp = x[ws.rank].cuda()
    torch.library.opcheck(torch.ops.mnnvl_ar.all_reduce.default,
                          (inp, torch.empty_like(inp), ws.id, int(gpu.Strategy.AUTO), False))
    ws.synchronize()


# A rank process without torch.distributed: gpu.Workspace() meets its peers through mnnvl_ar's own
# rendezvous, from torchrun's variables and MNNVL_AR_TOKEN alone, then runs one all-reduce and prints how many
# elements differ from the reference.
NO_GROUP_RANK = """
import json, os, torch, torch.distributed as dist
import mnnvl_ar
from mnnvl_ar import gpu
torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
ws = gpu.Workspace(timeout_s=20.0)
g = torch.Generator().manual_seed(2024)
x = (torch.randn((ws.world_size, 8, 4096), generator=g) * 8).to(torch.bfloat16)
out = gpu.all_reduce(x[ws.rank].cuda(), ws, launch_with_pdl=False, strategy="oneshot")
ws.synchronize()
want = mnnvl_ar.reference(x, "oneshot")
differ = int((out.cpu().view(torch.int16) != want.view(torch.int16)).sum())
print(json.dumps({"group": dist.is_initialized(), "rank": ws.rank, "world": ws.world_size, "differ": differ,
                  "elements": want.numel()}))
ws.close()
"""


def test_a_workspace_without_torch_distributed_meets_through_the_environment():
    # This process agrees with its peers on a free port and a token; the rank processes it starts have no group
    # and get nothing but variables: torchrun's, with that port as MASTER_PORT (torchrun's own store may hold
    # its MASTER_PORT, as may this process's group), and the token as MNNVL_AR_TOKEN.
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    agreed = [None, None]
    if dist.get_rank() == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            agreed = [s.getsockname()[1], secrets.token_hex(16)]
    dist.broadcast_object_list(agreed, src=0)
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHELASTIC_USE_AGENT_STORE", "MNNVL_AR_TOKEN_FILE")}
    env.update(MASTER_PORT=str(agreed[0]), MNNVL_AR_TOKEN=agreed[1])
    try:
        done = subprocess.run([sys.executable, "-c", NO_GROUP_RANK], env=env, capture_output=True, text=True,
                              timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"rank {dist.get_rank()}: the rank process without a group still runs after 180 s")
    assert done.returncode == 0, f"rank {dist.get_rank()}: the rank process failed:\n{done.stderr}"
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert not got["group"]
    assert (got["rank"], got["world"]) == (dist.get_rank(), dist.get_world_size())
    assert got["differ"] == 0, f"rank {got['rank']}: {got['differ']} of {got['elements']} elements differ"


def test_bad_input_is_refused_before_any_launch(ws):
    good = torch.zeros((2, 64), dtype=torch.bfloat16, device="cuda")
    with pytest.raises(ValueError, match="is on cpu"):
        gpu.all_reduce(good.cpu(), ws)
    with pytest.raises(ValueError, match="torch.int32"):
        gpu.all_reduce(good.view(torch.int32), ws)
    with pytest.raises(ValueError, match="must be \\[N, D\\]"):
        gpu.all_reduce(good[0], ws)
    with pytest.raises(ValueError, match="output has shape"):
        gpu.all_reduce(good, ws, output=torch.empty((4, 64), dtype=torch.bfloat16, device="cuda"))
    with pytest.raises(ValueError, match="unknown strategy"):
        gpu.all_reduce(good, ws, strategy=3)
    with pytest.raises(ValueError, match="multiple of"):  # the kernels' own check, same on every rank
        gpu.all_reduce(torch.zeros((2, 12), dtype=torch.bfloat16, device="cuda"), ws)
    with pytest.raises(ValueError, match="16-byte aligned"):  # the launch's own check, before the kernel
        gpu.all_reduce(torch.zeros(2 * 64 + 1, dtype=torch.bfloat16, device="cuda")[1:].view(2, 64), ws)
    with pytest.raises(ValueError, match="gamma has shape"):
        gpu.fused_allreduce_add_rmsnorm(good, good, good[0, :32], ws)
    # The ops check as much as the wrappers do: a CPU tensor gets the same message, not the dispatcher's.
    with pytest.raises(ValueError, match="input is on cpu"):
        torch.ops.mnnvl_ar.all_reduce(good.cpu(), good.cpu(), ws.id, int(gpu.Strategy.AUTO), False)
    with pytest.raises(ValueError, match="output has shape"):
        torch.ops.mnnvl_ar.all_reduce(good, good[:1], ws.id, int(gpu.Strategy.AUTO), False)
    with pytest.raises(ValueError, match="residual_out must be contiguous"):
        torch.ops.mnnvl_ar.fused_allreduce_add_rmsnorm(good, good, good[0], torch.empty_like(good),
                                                       torch.empty((64, 2), dtype=good.dtype, device="cuda").t(),
                                                       ws.id, 1e-6, int(gpu.Strategy.AUTO), False, 0.0)


def test_a_missing_rank_times_out_naming_it_and_reset_recovers():
    small = gpu.Workspace(timeout_s=0.5)
    rank, world = small.rank, small.world_size
    if world < 2:  # the last rank is the one that stays away: with one there is no rank left to wait
        small.close()
        pytest.skip("needs 2 or more ranks")
    x = every_rank_input(world, (4, 1024), torch.bfloat16, seed=11)
    if rank != world - 1:  # the last rank skips this call
        gpu.all_reduce(x[rank].cuda(), small, False, strategy="oneshot")
        with pytest.raises(RuntimeError, match=f"rank {rank} timed out .* waiting for rank {world - 1}"):
            small.synchronize()
    dist.barrier()
    small.reset()
    out = gpu.all_reduce(x[rank].cuda(), small, False, strategy="oneshot")
    small.synchronize()
    assert_same_bits(out, mnnvl_ar.reference(x, "oneshot"), "after reset")
    small.close()
