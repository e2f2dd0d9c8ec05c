#!/usr/bin/env bash
# Regenerates the figures the README and docs/results.md show, from the committed bench/results/ JSON (SVG
# and PNG under docs/figures/). Needs the Python package built (cmake --build build) or installed in .venv,
# with matplotlib.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PYTHONPATH="$root/build/python${PYTHONPATH:+:$PYTHONPATH}"
py="$root/.venv/bin/python3"
[ -x "$py" ] || py=python3
r=bench/results
plot() { "$py" -m mnnvl_ar.plot "$@"; }
# Our all-reduce against NCCL in the same run: two H100s over NVLink, one rank each, bf16.
plot bench "$r/h100-80gb-x2-nv18_w2_all-dtypes_4K-256M_graph_nccl.json" --type bf16 -o docs/figures/bench-h100x2-vs-nccl
# The fused call against the all-reduce and the all-reduce + a separate norm kernel: one H200, W = 2.
plot bench "$r/h200_w2_bf16_fused-sweep_dc9a16f.json" -o docs/figures/fused-h200
# The invariant profile's cost: every profile's fused call on one H200 (W = 2, D = 4096, from 1 MiB).
plot bench "$r/h200_w2-w8_bf16_invariant-cost-large_1935d8a.json" --world 2 -o docs/figures/invariant-cost-h200
plot bench "$r/h200_w2-w8_bf16_invariant-exact-cost-large_862cf24.json" --world 2 -o docs/figures/invariant-exact-cost-h200
# Where ONESHOT and TWOSHOT disagree on the W = 16 adversarial golden case (the README's main job; the
# manifest stores twoshot/flashinfer's output in the file of oneshot/trtllm, whose bits it shares).
plot diff data/adversarial_bf16_w16.oneshot.flashinfer.npy data/adversarial_bf16_w16.oneshot.trtllm.npy \
  --dtype bf16 --input data/adversarial_bf16_w16.in.npy --names oneshot/flashinfer,twoshot/flashinfer \
  -o docs/figures/diff-oneshot-twoshot-w16 >/dev/null
# Which batch sizes change a token's bits: the fused call at W = 2, D = 8192 on 132 SMs (the model's answer).
cli="$root/build/harness/mnnvl-ar"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$cli" invariance -w 2 --hidden 8192 --fused --sms 132 --json "$tmp/inv.json" >/dev/null ||
  [ $? -eq 1 ]  # 1: some N change a token's bits, which is what the figure shows
plot invariance "$tmp/inv.json" -o docs/figures/invariance-w2-d8192-fused
