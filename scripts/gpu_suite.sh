#!/usr/bin/env bash
# The GPU suite: what the GPU machine runs against binaries built elsewhere (the machine has no Boost, Eigen,
# Catch2 or fmt development files). Build first, on a machine with the toolchain:
#
#   cmake -S . -B build-cuda -G Ninja -DMNNVL_AR_CUDA=ON -DBoost_USE_STATIC_LIBS=ON -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-cuda --target mnnvl-ar cuda_all_reduce_test cuda_protocol_test
#   scripts/gpu_suite.sh pack            # copies the binaries and the shared libraries they need to build-cuda/dist
#
# then on the GPU machine, from the repository root:
#
#   scripts/gpu_suite.sh STAGE... [OUT_DIR]   stages: smoke tests sanitize run bench bench-small all
#
# Every stage writes its log (and JSON) under OUT_DIR (default $TMPDIR/mnnvl-ar-gpu-suite) and prints a summary line;
# the logs end up in OUT_DIR/logs.tgz. NVLink multicast stays off in every process started here.
set -uo pipefail

export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="${AR_DIST:-$root/build-cuda/dist}"

if [[ "${1:-}" == "pack" ]]; then
  build="${AR_BUILD:-$root/build-cuda}"
  mkdir -p "$dist"
  cp "$build/harness/mnnvl-ar" "$build/tests/cuda/cuda_all_reduce_test" "$build/tests/cuda/cuda_protocol_test" "$dist/"
  # Shared libraries a stock CUDA image may lack (everything but libc, libm, libstdc++, libgcc, the loader).
  ldd "$dist/mnnvl-ar" "$dist"/cuda_*_test | awk '/=> \//{print $3}' | sort -u |
    grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$dist/"; done
  git -C "$root" describe --always --dirty >"$dist/commit.txt" 2>/dev/null || echo unknown >"$dist/commit.txt"
  du -sh "$dist"
  exit 0
fi

out="${TMPDIR:-/tmp}/mnnvl-ar-gpu-suite"
stages=()
for a in "$@"; do
  case "$a" in
    smoke|tests|sanitize|run|bench|bench-small|all) stages+=("$a") ;;
    *) out="$a" ;;
  esac
done
[[ ${#stages[@]} -eq 0 ]] && stages=(all)
mkdir -p "$out/logs"
export LD_LIBRARY_PATH="$dist${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cli="$dist/mnnvl-ar"
commit="$(cat "$dist/commit.txt" 2>/dev/null || echo unknown)"
summary="$out/summary.txt"
cd "$root" || exit 2

note() { echo "$*" | tee -a "$summary"; }
# run_logged NAME TIMEOUT_S CMD...: runs CMD with a wall-clock limit, log in logs/NAME.log, notes the exit code.
run_logged() {
  local name="$1" limit="$2"
  shift 2
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$out/logs/$name.log" 2>&1
  local rc=$?
  note "$(printf '%-28s rc=%-3s %4ss  %s' "$name" "$rc" "$((SECONDS - start))" "$(tail -n 1 "$out/logs/$name.log")")"
  return $rc
}

has() { local s; for s in "${stages[@]}"; do [[ "$s" == "$1" || "$s" == all ]] && return 0; done; return 1; }

note "== gpu suite, commit $commit, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$summary"

if has smoke; then
  run_logged smoke_run 120 "$cli" run --world 2,8 --dtype bf16 --calls oneshot:N=4,twoshot:N=64,auto:N=11 \
    --profile flashinfer --pdl both --timeout-ms 2000
fi

if has tests; then
  run_logged test_all_reduce 400 "$dist/cuda_all_reduce_test" --durations yes
  run_logged test_protocol 200 "$dist/cuda_protocol_test" --durations yes
fi

if has sanitize; then
  small=(run --world 2,4 --dtype bf16,fp32 --hidden 256 --calls oneshot:N=3,twoshot:N=8,auto:N=5
         --profile flashinfer --pdl off --repeat 2 --timeout-ms 60000)
  for tool in memcheck racecheck synccheck; do
    run_logged "sanitizer_$tool" 300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$cli" "${small[@]}"
  done
  run_logged sanitizer_initcheck 300 compute-sanitizer --tool initcheck --error-exitcode 9 "$cli" "${small[@]}"
fi

if has run; then
  run_logged run_default 300 "$cli" run --json "$out/run_default.json"
  run_logged run_golden 300 "$cli" run --inputs golden --data data --json "$out/run_golden.json"
  run_logged run_mixed_random 300 "$cli" run --inputs random --world all --dtype all \
    --calls oneshot:N=4,twoshot:N=64:D=256,auto:N=11:dtype=fp32,oneshot:N=1,twoshot:N=3:D=2880,auto:N=200:D=2880,twoshot:N=257:dtype=fp16 \
    --repeat 3 --json "$out/run_mixed.json"
  run_logged run_multi_round 300 "$cli" run --inputs random --world 2,8,64 --dtype all --hidden 1024 \
    --calls oneshot:N=300,twoshot:N=300 --round-bytes 1 --profile both --pdl on
  # A deliberate difference: the FlashInfer kernels against TensorRT-LLM's order at W = 16 (exit 1, with the
  # first differing element explained and its input dumped for `mnnvl-ar explain`).
  run_logged run_expect_trtllm 60 "$cli" run --world 16 --dtype bf16 --calls oneshot:N=4 --profile flashinfer \
    --pdl on --expect trtllm --dump "$out/logs/dump"
  # A rank that is never launched: the others must time out naming it (exit 1), not hang.
  run_logged run_missing_rank 60 "$cli" run --world 4 --dtype bf16 --calls twoshot:N=16 --omit-rank 2 \
    --timeout-ms 500 --pdl off --profile flashinfer --json "$out/run_missing_rank.json"
  run_logged run_missing_rank_oneshot 60 "$cli" run --world 8 --dtype fp16 --calls oneshot:N=2 --omit-rank 5 \
    --timeout-ms 500 --pdl off --profile flashinfer
fi

if has bench-small; then
  run_logged bench_small 300 "$cli" bench -b 4K -e 64K -f 2 -n 50 -w 10 -G 20 -d bf16 -s all -W 2 \
    --label commit="$commit" -J "$out/bench_small.json"
fi

if has bench; then
  run_logged bench_sweep 420 "$cli" bench -b 4K -e 256M -f 4 -n 20 -w 5 -G 5 -d all -s all -W 2,8 \
    --label commit="$commit" -J "$out/bench.json"
fi

tar -C "$out" -czf "$out/logs.tgz" logs && rm -rf "$out/logs"
note "== done"
