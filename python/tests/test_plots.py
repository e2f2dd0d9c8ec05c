"""The figures: each kind is drawn from committed data without error (no pixel comparisons), both files
written; a bad input and a missing matplotlib are clear errors, not tracebacks."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import mnnvl_ar
from mnnvl_ar import plot, plots
from conftest import DATA, REPO, load, manifest

pytest.importorskip("matplotlib")

RESULTS = REPO / "bench" / "results"


def written(paths):
    assert [pathlib.Path(p).suffix for p in paths] == [".svg", ".png"]
    for p in paths:
        assert pathlib.Path(p).stat().st_size > 1000, p
    return True


def test_bench_curves_from_committed_json(tmp_path):
    nccl = RESULTS / "h100-80gb-x2-nv18_w2_bf16_4K-1M_graph_nccl.json"
    one_gpu = RESULTS / "h100-80gb_w2-w8_all-dtypes_4K-256M_graph.json"
    assert written(plots.bench_figure([nccl], tmp_path / "nccl"))
    assert written(plots.bench_figure([nccl, one_gpu], tmp_path / "two", world_size=2))  # two runs, one figure


def test_difference_map_of_two_strategies(tmp_path):
    c = next(c for c in manifest()["cases"] if c["name"] == "adversarial_bf16_w16")
    one, two = load(c["outputs"]["oneshot/flashinfer"]), load(c["outputs"]["twoshot/flashinfer"])
    paths, lines = plots.difference_map(one, two, tmp_path / "diff", dtype="bf16", input_path="x.npy")
    assert written(paths)
    assert lines[0].startswith(f"{np.count_nonzero(one != two)} of {one.size} elements differ")
    assert "mnnvl-ar explain -i x.npy -d bf16 -t" in lines[1]
    d, _ = plots.ulp_distances(one, two, dtype="bf16")
    tok, col = (int(v) for v in lines[1].split("]")[0].strip("[").split(", "))
    assert d[tok, col] == d.max()  # the first line names the worst element


def test_compare_map_is_the_diff_of_two_references(tmp_path):
    c = next(c for c in manifest()["cases"] if c["name"] == "adversarial_bf16_w64")
    x = load(c["input"])
    paths, lines = plots.compare_map(x, tmp_path / "cmp", "oneshot/flashinfer", "twoshot/ieee", dtype="bf16")
    assert written(paths)
    one, two = load(c["outputs"]["oneshot/flashinfer"]), load(c["outputs"]["twoshot/ieee"])
    d, _ = plots.ulp_distances(one, two, dtype="bf16")
    assert lines[0].startswith(f"{np.count_nonzero(d)} of {one.size} elements differ") and np.count_nonzero(d) > 0
    assert plot.main(["compare", str(DATA / c["input"]["file"]), "--dtype", "bf16", "--pairs", "oneshot",
                      "-o", str(tmp_path / "bad")]) == 2


def test_ulp_distances_count_values_between():
    a = np.array([0x3F80, 0x3F80, 0x0000, 0x8001, 0x7FC0], np.uint16)
    b = np.array([0x3F80, 0x3F82, 0x8000, 0x0001, 0x3F80], np.uint16)
    d, t = plots.ulp_distances(a, b, dtype="bf16")
    assert t == "bf16" and list(d[:4]) == [0, 2, 0, 2] and d[4] > 1 << 40  # NaN against a number


def test_accuracy_map_and_invariance_axis(tmp_path):
    c = next(c for c in manifest()["cases"] if c["name"] == "random_fp32_w8")
    x = np.load(DATA / c["input"]["file"])
    paths, lines = plots.accuracy_map(x, tmp_path / "acc", "oneshot")
    assert written(paths)
    got, exact = mnnvl_ar.reference(x, "oneshot"), mnnvl_ar.correctly_rounded(x)
    assert 0 < np.count_nonzero(got != exact) < got.size
    assert lines[0].startswith(f"{np.count_nonzero(got != exact)} of {got.size} elements differ")
    answer = {"world_size": 2, "hidden": 8192, "dtype": "bf16", "strategy": "auto", "fused": True,
              "profile": "flashinfer", "sm_count": 132, "max_tokens": 64,
              "ranges": [{"first": 1, "last": 16, "path": {"strategy": "oneshot", "tree": {
                  "block_size": 128, "cluster_size": 8, "loads_per_thread": 1}}},
                         {"first": 17, "last": 64, "path": {"strategy": "oneshot", "tree": None}}],
              "boundaries": [{"between": [16, 17], "witness_found": True}]}
    (tmp_path / "inv.json").write_text(json.dumps(answer))
    assert written(plots.invariance_figure(tmp_path / "inv.json", tmp_path / "inv"))


def test_the_command_line_writes_and_refuses(tmp_path, capsys):
    nccl = RESULTS / "h100-80gb-x2-nv18_w2_bf16_4K-1M_graph_nccl.json"
    assert plot.main(["bench", str(nccl), "-o", str(tmp_path / "b")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert plot.main(["bench", str(DATA / "manifest.json"), "-o", str(tmp_path / "x")]) == 2
    assert "not the JSON of `mnnvl-ar bench`" in capsys.readouterr().err
    assert plot.main(["invariance", str(tmp_path / "missing.json"), "-o", str(tmp_path / "y")]) == 2
    assert "not an invariance JSON file" in capsys.readouterr().err
    # Malformed files are refused by name (exit 2), not with a traceback.
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "rowless.json").write_text('{"command": "bench", "rows": [{"foo": 1}]}')
    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.zeros(2))
    np.save(tmp_path / "ok.npy", np.zeros((2, 8), np.float32))
    for argv, message in [
            (["bench", str(tmp_path / "list.json")], "not the JSON of `mnnvl-ar bench`"),
            (["bench", str(tmp_path / "rowless.json")], "a row is not a bench row"),
            (["accuracy", str(tmp_path / "empty.npy")], "is empty: not a .npy file"),
            (["accuracy", str(tmp_path / "two.npz")], "is an .npz archive"),
            (["diff", str(tmp_path / "ok.npy"), str(tmp_path / "ok.npy"), "--names", "onlyone"], "--names takes two")]:
        assert plot.main(argv + ["-o", str(tmp_path / "z")]) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_missing_matplotlib_is_a_clear_message(tmp_path):
    # A fresh interpreter where importing matplotlib fails: the command says what to install, exit code 2.
    code = ("import sys; sys.modules['matplotlib'] = None; from mnnvl_ar import plot; "
            f"sys.exit(plot.main(['bench', {str(RESULTS / 'h100-80gb-x2-nv18_w2_bf16_4K-1M_graph_nccl.json')!r}, "
            f"'-o', {str(tmp_path / 'b')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2
    assert "the figures need matplotlib" in r.stderr and "Traceback" not in r.stderr
