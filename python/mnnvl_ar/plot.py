"""python -m mnnvl_ar.plot: the package's figures from the command line, each as SVG and PNG.

    python -m mnnvl_ar.plot bench bench/results/a.json [b.json ...] -o figs/bench [--world 2]
    python -m mnnvl_ar.plot diff out_gpu.npy out_ref.npy [--dtype bf16] [--input x.npy] -o figs/diff
    python -m mnnvl_ar.plot compare x.npy [--dtype bf16] [--pairs oneshot/flashinfer,twoshot/flashinfer] -o figs/cmp
    python -m mnnvl_ar.plot accuracy x.npy [--dtype bf16] [--strategy auto] [--profile flashinfer] -o figs/acc
    python -m mnnvl_ar.plot invariance inv.json -o figs/inv      (from `mnnvl-ar invariance --json inv.json`)

Exit codes: 0 written, 2 bad usage or input (a message names it; matplotlib missing is one).
"""

import argparse
import sys

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mnnvl_ar.plot", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="figure", required=True)
    b = sub.add_parser("bench", help="time and bus bandwidth against size, from bench JSON files")
    b.add_argument("files", nargs="+")
    b.add_argument("--world", type=int, help="only this world size")
    b.add_argument("--type", help="only this dtype (bf16, fp16, fp32)")
    b.add_argument("--strategies", help="only these strategies, comma-separated (oneshot,twoshot,auto)")
    d = sub.add_parser("diff", help="where two [N, D] outputs differ, in ULPs")
    d.add_argument("a")
    d.add_argument("b")
    d.add_argument("--input", help="the [W, N, D] input file, to print explain commands for the worst elements")
    d.add_argument("--names", help="what to call A and B in the figure, comma-separated (default: the files)")
    c = sub.add_parser("compare", help="where two strategy/profile pairs' outputs of one input differ, in ULPs")
    c.add_argument("input")
    c.add_argument("--pairs", default="oneshot/flashinfer,twoshot/flashinfer", help="two strategy/profile pairs")
    a = sub.add_parser("accuracy", help="one strategy's output against the exact sum, in ULPs")
    a.add_argument("input")
    a.add_argument("--strategy", default="auto")
    a.add_argument("--profile", default="flashinfer")
    i = sub.add_parser("invariance", help="the N axis of an `mnnvl-ar invariance --json` answer")
    i.add_argument("file")
    for s in (b, d, c, a, i):
        s.add_argument("-o", "--output", required=True, help="path without suffix: writes OUTPUT.svg and OUTPUT.png")
    for s in (d, c, a):
        s.add_argument("--dtype", help="bf16 (or fp16) to read raw uint16 words")
    args = p.parse_args(argv)

    from . import plots

    def load(path):
        """One .npy array, or a ValueError naming the file (an empty file, an .npz archive, a pickle)."""
        try:
            array = np.load(path, allow_pickle=False)
        except EOFError:
            raise ValueError(f"'{path}' is empty: not a .npy file") from None
        if not isinstance(array, np.ndarray):
            raise ValueError(f"'{path}' is an .npz archive: give one .npy array")
        return array

    try:
        if args.figure == "bench":
            paths = plots.bench_figure(args.files, args.output, world_size=args.world, dtype=args.type,
                                       strategies=args.strategies.split(",") if args.strategies else None)
        elif args.figure == "diff":
            names = tuple(args.names.split(",", 1)) if args.names else (args.a, args.b)
            if len(names) != 2:
                raise ValueError(f"--names takes two names, A,B, not {args.names!r}")
            paths, lines = plots.difference_map(load(args.a), load(args.b), args.output, dtype=args.dtype,
                                                names=names, input_path=args.input)
            print("\n".join(lines))
        elif args.figure == "compare":
            pairs = args.pairs.split(",")
            if len(pairs) != 2:
                raise ValueError(f"--pairs takes two strategy/profile pairs, not {args.pairs!r}")
            paths, lines = plots.compare_map(load(args.input), args.output, pairs[0], pairs[1], dtype=args.dtype,
                                             input_path=args.input)
            print("\n".join(lines))
        elif args.figure == "accuracy":
            paths, lines = plots.accuracy_map(load(args.input), args.output, args.strategy, args.profile,
                                              dtype=args.dtype, input_path=args.input)
            print("\n".join(lines))
        else:
            paths = plots.invariance_figure(args.file, args.output)
    except (plots.PlotError, ValueError, OSError) as e:
        print(f"mnnvl_ar.plot: {e}", file=sys.stderr)
        return 2
    print("wrote " + " and ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
