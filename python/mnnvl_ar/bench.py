"""python -m mnnvl_ar.bench: the GPU API's costs, under torchrun (one process per rank).

    torchrun --nproc_per_node 2 -m mnnvl_ar.bench --hidden 4096 --sizes 8K,64K,1M --json bench.json

For each size: the host time of one eager call (the torch op through the dispatcher, our wrapper and the
launch, measured while the GPU works through the queue), the same for the bare launch underneath (the
difference is what the package adds), and the time per call under CUDA-graph replay (cuda events around 10
replays of a graph of 20 calls; the slowest rank's). With every rank on its own GPU, or ranks sharing one GPU under MPS
(which runs their kernels at the same time), the replay time compares with `mnnvl-ar bench` for the same call
(`--spawn`, `--pdl`); ranks sharing one GPU without MPS take turns on it, so their replay times say nothing
about speed.
"""

import argparse
import json
import statistics
import time

import torch
import torch.distributed as dist

from . import gpu

_BYTES = {torch.bfloat16: 2, torch.float16: 2, torch.float32: 4}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def _host_us(call, iters):
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(iters):
            call()
        samples.append((time.perf_counter() - t0) / iters * 1e6)
        torch.cuda.synchronize()
    return statistics.median(samples)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mnnvl_ar.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--dtype", default="bf16", choices=sorted(_DTYPES))
    p.add_argument("--sizes", default="8K,64K,1M", help="bytes per rank, comma-separated (K, M, G suffixes)")
    p.add_argument("--strategy", default="auto", choices=["oneshot", "twoshot", "auto"])
    p.add_argument("--pdl", type=int, default=0, choices=[0, 1], help="launch_with_pdl, as `mnnvl-ar bench --pdl`")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--json", help="write the rows here (rank 0)")
    p.add_argument("--label", action="append", default=[], help="KEY=VALUE recorded in the JSON (commit=..., driver=...)")
    args = p.parse_args(argv)

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    torch.cuda.set_device(dist.get_rank() % torch.cuda.device_count())
    dtype = _DTYPES[args.dtype]
    ws = gpu.Workspace(buffer_size_in_bytes=max(_size(s) for s in args.sizes.split(",")) * 2 * dist.get_world_size()
                       + (1 << 20))
    rows = []
    for text in args.sizes.split(","):
        tokens = max(1, _size(text) // (args.hidden * _BYTES[dtype]))
        x = torch.randn((tokens, args.hidden), device="cuda").to(dtype)
        out = torch.empty_like(x)
        stream = torch.cuda.current_stream().cuda_stream
        code = gpu._strategy_code(args.strategy)
        pdl = bool(args.pdl)
        op = lambda: torch.ops.mnnvl_ar.all_reduce(x, out, ws.id, code, pdl)  # noqa: E731
        wrapper = lambda: gpu.all_reduce(x, ws, pdl, output=out, strategy=args.strategy)  # noqa: E731
        bare = lambda: ws._native.launch(x.data_ptr(), out.data_ptr(), tokens, args.hidden, args.dtype,  # noqa: E731
                                         args.strategy, pdl, stream)
        for _ in range(10):
            wrapper()
        torch.cuda.synchronize()
        dist.barrier()
        host = {"wrapper_us": _host_us(wrapper, args.iters), "op_us": _host_us(op, args.iters),
                "bare_launch_us": _host_us(bare, args.iters)}
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(20):
                torch.ops.mnnvl_ar.all_reduce(x, out, ws.id, code, pdl)
        dist.barrier()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        graph.replay()
        start.record()
        for _ in range(10):
            graph.replay()
        end.record()
        end.synchronize()
        ws.synchronize()
        # The slowest rank's time, as `mnnvl-ar bench` reports a job of several processes.
        graph_us = torch.tensor([start.elapsed_time(end) * 1e3 / 200], dtype=torch.float64)
        dist.all_reduce(graph_us, op=dist.ReduceOp.MAX)
        rows.append({"bytes": tokens * args.hidden * _BYTES[dtype], "tokens": tokens, "hidden": args.hidden,
                     "dtype": args.dtype, "strategy": args.strategy, "world_size": ws.world_size, "pdl": pdl,
                     "graph_us_per_call": graph_us.item(), **host,
                     "package_overhead_us": host["wrapper_us"] - host["bare_launch_us"]})
        dist.barrier()
    if dist.get_rank() == 0:
        gpus = torch.cuda.device_count()
        shared = gpus < ws.world_size
        print(f"mnnvl_ar.bench: W = {ws.world_size} on {torch.cuda.get_device_name()} ({gpus} GPU(s)"
              f"{', ranks share a GPU: replay times are speeds only under MPS' if shared else ''})")
        print(f"{'bytes':>10} {'N':>6} {'graph us/call':>14} {'eager host us':>14} {'op us':>8} {'bare launch us':>15} "
              f"{'package us':>11}")
        for r in rows:
            print(f"{r['bytes']:>10} {r['tokens']:>6} {r['graph_us_per_call']:>14.2f} {r['wrapper_us']:>14.2f} "
                  f"{r['op_us']:>8.2f} {r['bare_launch_us']:>15.2f} {r['package_overhead_us']:>11.2f}")
        if args.json:
            with open(args.json, "w") as f:
                labels = dict(item.split("=", 1) for item in args.label)
                json.dump({"device": torch.cuda.get_device_name(), "gpus": gpus, "torch": torch.__version__,
                           "cuda": torch.version.cuda, **labels, "ranks_share_a_gpu": shared, "rows": rows}, f,
                          indent=2)
    ws.close()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
