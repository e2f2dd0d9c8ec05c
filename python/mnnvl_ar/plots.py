"""Pictures of what the tables say: bench curves (time and bus bandwidth against size, with NCCL and the
run's own limits), maps of where two [N, D] outputs differ (or one output and the exact sum), and the N axis
of an `invariance` answer. matplotlib is needed only here, and its absence is a clear error.

Every figure is written twice, as `<stem>.svg` and `<stem>.png`; each function returns the paths written.
`python -m mnnvl_ar.plot` is the command line over these functions.
"""

import json
import pathlib

import numpy as np

from ._tensors import operand


class PlotError(Exception):
    """A figure that cannot be made: matplotlib missing, or an input that holds nothing to draw."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotError("the figures need matplotlib, which is not installed here: pip install matplotlib "
                        "(scripts/install-deps.sh puts it into .venv)") from None
    matplotlib.use("Agg")  # files only, no display
    matplotlib.rcParams["svg.hashsalt"] = "mnnvl-ar"  # the same SVG for the same data
    import matplotlib.pyplot as plt

    return plt


def _save(fig, stem):
    stem = pathlib.Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("svg", "png"):
        path = stem.with_suffix(f".{ext}")
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None)
        paths.append(str(path))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def _size_label(b):
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if b >= 1 << shift:
            return f"{b >> shift}{unit}"
    return str(b)


def _run_title(d, path):
    dev = d.get("device", {})
    commit = d.get("labels", {}).get("commit", d.get("commit", "?"))
    return (f"{dev.get('name', '?')}, driver {dev.get('driver', '?')}, commit {commit}, "
            f"{d.get('date', '?')[:10]} ({pathlib.Path(path).name})")


def bench_figure(paths, stem, world_size=None, dtype=None, strategies=None):
    """Time and bus bandwidth against size from `mnnvl-ar bench` JSON files (one or several on one figure):
    a line per strategy (and per W, dtype or profile when a file holds several), NCCL where the run measured
    it, the fused call and the all-reduce + separate norm where the run timed them (`--fused`), and the run's
    copy bandwidth and graph launch overhead as limits. world_size, dtype and strategies select rows."""
    plt = _pyplot()
    runs = []
    for path in paths:
        try:
            d = json.loads(pathlib.Path(path).read_text())
        except (OSError, ValueError) as e:
            raise PlotError(f"'{path}': not a bench JSON file ({e})") from None
        if not isinstance(d, dict) or d.get("command") != "bench" or not isinstance(d.get("rows"), list) or not d["rows"]:
            raise PlotError(f"'{path}': not the JSON of `mnnvl-ar bench` (no bench rows)")
        needed = ("world_size", "type", "strategy", "size", "time_us", "busbw_gbps")
        for r in d["rows"]:
            if not isinstance(r, dict) or any(k not in r for k in needed):
                raise PlotError(f"'{path}': a row is not a bench row (each has {', '.join(needed)})")
        runs.append((path, d))
    fig, (ax_t, ax_b) = plt.subplots(1, 2, figsize=(13, 5))
    styles = ["-", "--", ":", "-."]
    for i, (path, d) in enumerate(runs):
        tag = f"{d.get('device', {}).get('name', '?')} {d.get('labels', {}).get('commit', '')}".strip()
        lines = {}
        for r in d["rows"]:
            if world_size is not None and r["world_size"] != world_size:
                continue
            if (dtype is not None and r["type"] != dtype) or (strategies and r["strategy"] not in strategies):
                continue
            key = (r["world_size"], r["type"], r["strategy"], r.get("profile", ""))
            lines.setdefault(key, []).append(r)
        if not lines:
            raise PlotError(f"'{path}': no rows selected (W {world_size}, dtype {dtype}, strategies {strategies})")
        several_w = len({k[0] for k in lines}) > 1
        several_t = len({k[1] for k in lines}) > 1
        for (w, t, strategy, profile), rows in sorted(lines.items()):
            rows.sort(key=lambda r: r["size"])
            sizes = [r["size"] for r in rows]
            name = (f"{strategy}{' ' + profile if profile and profile != 'flashinfer' else ''}"
                    f"{' ' + t if several_t else ''}{f' W={w}' if several_w else ''}")
            label = f"{tag}: {name}" if len(runs) > 1 else name
            ax_t.plot(sizes, [r["time_us"] for r in rows], styles[i % 4], marker=".", label=label)
            ax_b.plot(sizes, [r["busbw_gbps"] for r in rows], styles[i % 4], marker=".", label=label)
            if "fused_us" in rows[0]:  # the fused call's time, and the all-reduce + separate norm kernel's
                ax_t.plot(sizes, [r["fused_us"] for r in rows], styles[i % 4], marker="^", label=f"{label} fused")
                if profile in ("", "flashinfer"):
                    ax_t.plot(sizes, [r["ar_then_norm_us"] for r in rows], styles[i % 4], marker="v",
                              label=f"{label} all-reduce + norm kernel")
        # NCCL, timed once per size in the same run (the same on every strategy's row): one line per W.
        prefix = tag + ": " if len(runs) > 1 else ""
        for w in sorted({k[0] for k in lines}):
            nccl = {}
            for rows in (v for k, v in lines.items() if k[0] == w):
                for r in rows:
                    if r.get("nccl_us"):
                        nccl[r["size"]] = (r["nccl_us"], r["busbw_gbps"] * r["time_us"] / r["nccl_us"])
            if nccl:
                sizes = sorted(nccl)
                label = f"{prefix}NCCL{f' W={w}' if several_w else ''}"
                ax_t.plot(sizes, [nccl[z][0] for z in sizes], styles[i % 4], color="black", marker="x", label=label)
                ax_b.plot(sizes, [nccl[z][1] for z in sizes], styles[i % 4], color="black", marker="x", label=label)
        limits = d.get("limits", {})
        if limits.get("launch_graph_us"):
            ax_t.axhline(limits["launch_graph_us"], color="grey", linestyle=styles[i % 4], linewidth=0.8,
                         label=f"{tag + ': ' if len(runs) > 1 else ''}graph launch overhead")
        if limits.get("copy_gbps"):
            ax_b.axhline(limits["copy_gbps"], color="grey", linestyle=styles[i % 4], linewidth=0.8,
                         label=f"{tag + ': ' if len(runs) > 1 else ''}copy bandwidth (one GPU)")
    ax_t.set(xscale="log", yscale="log", xlabel="bytes per rank", ylabel="time per call (µs)")
    ax_b.set(xscale="log", yscale="log", xlabel="bytes per rank", ylabel="bus bandwidth (GB/s)")
    for ax in (ax_t, ax_b):
        ax.grid(True, which="both", alpha=0.3)
        ticks = sorted({r["size"] for _, d in runs for r in d["rows"]})
        ax.set_xticks(ticks)
        ax.set_xticklabels([_size_label(t) for t in ticks], rotation=45)
        ax.minorticks_off()
    ax_t.legend(fontsize=7, loc="upper left")
    ax_b.legend(fontsize=7, loc="lower right")
    fig.suptitle("\n".join(_run_title(d, p) for p, d in runs), fontsize=9)
    return _save(fig, stem)


def _ordered(bits, dtype):
    """Bits as integers in the order of their values (+0 and -0 both 0), for ULP distances."""
    width = 16 if dtype in ("bf16", "fp16") else 32
    bits = bits.astype(np.int64)
    sign = bits >> (width - 1)
    magnitude = bits & ((1 << (width - 1)) - 1)
    return np.where(sign == 1, -magnitude, magnitude)


def _is_nan(bits, dtype):
    exp_mask, man_mask = {"bf16": (0x7F80, 0x7F), "fp16": (0x7C00, 0x3FF), "fp32": (0x7F800000, 0x7FFFFF)}[dtype]
    return ((bits & exp_mask) == exp_mask) & ((bits & man_mask) != 0)


def ulp_distances(a, b, *, dtype=None):
    """Per element, how many representable values lie between a and b (0 where the bits agree or only the
    sign of zero differs; a NaN against anything else, or two NaNs with other bits, counts as the largest)."""
    oa, ob = operand(a, "a", dtype), operand(b, "b", dtype)
    if oa.dtype != ob.dtype or oa.words.shape != ob.words.shape:
        raise ValueError(f"a and b must be alike: {oa.dtype} {oa.words.shape} against {ob.dtype} {ob.words.shape}")
    ua, ub = oa.words.astype(np.int64), ob.words.astype(np.int64)
    d = np.abs(_ordered(ua, oa.dtype) - _ordered(ub, oa.dtype))
    nan = (_is_nan(ua, oa.dtype) | _is_nan(ub, oa.dtype)) & (ua != ub)
    return np.where(nan, np.iinfo(np.int64).max // 2, d), oa.dtype


def difference_map(a, b, stem, *, dtype=None, names=("A", "B"), worst=5, input_path=None):
    """An image of the [N, D] tensors' ULP distances (log colour scale), the `worst` elements marked, and
    beside it how to explain each: the `mnnvl-ar explain` command when `input_path` names the input file,
    else the Python call. Returns (paths, lines) with the lines printed beside the figure."""
    plt = _pyplot()
    d, t = ulp_distances(a, b, dtype=dtype)
    if d.ndim != 2:
        raise PlotError(f"the map needs [N, D] tensors, not {d.ndim}-D")
    if d.size == 0:
        raise PlotError(f"the tensors are {tuple(d.shape)}: no element to map")
    finite = np.minimum(d, np.iinfo(np.int64).max // 4).astype(np.float64)
    order = np.argsort(-finite, axis=None, kind="stable")[:worst]
    marks = [np.unravel_index(i, d.shape) for i in order if finite.flat[i] > 0]
    lines = [f"{np.count_nonzero(d)} of {d.size} elements differ; the largest distances:"]
    for tok, col in marks:
        how = (f"mnnvl-ar explain -i {input_path} -d {t} -t {tok} -c {col}" if input_path else
               f"mnnvl_ar.explain(x, {tok}, {col})")
        dist = "NaN" if d[tok, col] >= np.iinfo(np.int64).max // 4 else int(d[tok, col])
        lines.append(f"[{tok}, {col}]: {dist} ULP  ->  {how}")
    fig, (ax, text) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    from matplotlib.colors import LogNorm

    shown = np.ma.masked_equal(finite, 0)
    image = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="viridis",
                      norm=LogNorm(vmin=1, vmax=max(1.0, float(finite.max()))) if finite.max() > 0 else None)
    fig.colorbar(image, ax=ax, label="ULP distance (blank: same value)")
    for tok, col in marks:
        ax.plot(col, tok, "o", markerfacecolor="none", markeredgecolor="red", markersize=9)
    ax.set(xlabel="D (column)", ylabel="N (token)", title=f"{names[0]} against {names[1]} ({t})")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    text.axis("off")
    text.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=7)
    return _save(fig, stem), lines


def accuracy_map(x, stem, strategy="auto", profile="flashinfer", *, dtype=None, worst=5, input_path=None):
    """difference_map of one strategy's and profile's output against the exact sum rounded once."""
    from ._reference import correctly_rounded, reference

    op = operand(x, "x", dtype)
    got = reference(op.words, strategy, profile, dtype=op.dtype)
    exact = correctly_rounded(op.words, dtype=op.dtype)
    return difference_map(got, exact, stem, dtype=op.dtype, names=(f"{strategy}/{profile}", "the exact sum"),
                          worst=worst, input_path=input_path)


def compare_map(x, stem, first="oneshot/flashinfer", second="twoshot/flashinfer", *, dtype=None, worst=5,
                input_path=None):
    """difference_map of two strategy/profile pairs' outputs on the same input (`mnnvl-ar compare`'s question:
    where do they disagree?)."""
    from ._reference import reference

    op = operand(x, "x", dtype)
    outputs = []
    for pair in (first, second):
        strategy, _, profile = pair.partition("/")
        outputs.append(reference(op.words, strategy, profile or "flashinfer", dtype=op.dtype))
    return difference_map(outputs[0], outputs[1], stem, dtype=op.dtype, names=(first, second), worst=worst,
                          input_path=input_path)


def invariance_figure(path, stem):
    """The N axis of an `mnnvl-ar invariance --json` answer: the ranges inside which a token's bits cannot
    change, one colour each, and every boundary with its verdict."""
    plt = _pyplot()
    try:
        d = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as e:
        raise PlotError(f"'{path}': not an invariance JSON file ({e})") from None
    if "ranges" not in d or "boundaries" not in d:
        raise PlotError(f"'{path}': not the JSON of `mnnvl-ar invariance` (no ranges)")
    fig, ax = plt.subplots(figsize=(12, 2.8))
    colours = plt.get_cmap("tab10")
    for i, r in enumerate(d["ranges"]):
        path_info = r["path"]
        tree = path_info.get("tree")
        label = path_info["strategy"] + (f", tree {tree['cluster_size']}x{tree['block_size']}x"
                                         f"{tree['loads_per_thread']}" if tree else "")
        ax.barh(0, r["last"] + 1 - r["first"], left=r["first"], height=0.6, color=colours(i % 10),
                edgecolor="white", label=f"N = {r['first']}..{r['last']}: {label}")
    for b in d["boundaries"]:
        x = b["between"][1]
        ax.axvline(x, color="red" if b.get("witness_found") else "orange", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(1, d["max_tokens"] + 1)
    ax.set_yticks([])
    ax.set_xlabel("batch size N (red: a witness row's bits change there; orange: the path changes, no witness)")
    title = (f"W = {d['world_size']}, D = {d['hidden']}, {d['dtype']}, {d['strategy']}, "
             f"{'fused' if d['fused'] else 'plain'}, profile {d['profile']}"
             f"{', ' + str(d['sm_count']) + ' SMs' if d['fused'] else ''}: {len(d['ranges'])} range(s)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2)
    return _save(fig, stem)
