#!/usr/bin/env bash
# The GPU suite: what the GPU machine runs against binaries built elsewhere (the machine has no Boost, Eigen,
# Catch2, fmt or OpenSSL development files). Build first, on a machine with the toolchain (Boost_USE_STATIC_LIBS
# also links libcrypto statically: the GPU machine may carry another libcrypto version or none):
#
#   cmake -S . -B build-cuda -G Ninja -DMNNVL_AR_CUDA=ON -DBoost_USE_STATIC_LIBS=ON -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-cuda
#   scripts/gpu_suite.sh pack            # the binaries and the shared libraries they need: build-cuda/dist,
#                                        # and the same as build-cuda/dist.tar.xz (small enough to carry)
#
# then on the GPU machine, from the repository root:
#
#   scripts/gpu_suite.sh STAGE... [OUT_DIR]
#
# (a dist folder that is missing but whose .tar.xz is there is unpacked first). Stages: smoke tests sanitize
# run multiprocess mufu bench bench-small all (one GPU is enough); ab (this build against an earlier one whose
# dist folder AR_DIST_BEFORE names: the sha256 of every rank output of the same `run --digests` calls, and
# small-size and 256 MiB times measured back to back, alternating); ab-fused (the same for the fused call and
# its quantised modes at decode sizes, D = 4096 and 8192: times and #wrong, alternating); and on a machine
# with 2+ GPUs: two-gpu (bit-exactness across NVLink, one process driving both and one process per GPU,
# probe) and two-gpu-bench (the sweep against NCCL on the same GPUs). NCCL is found inside the machine's
# Python environment unless AR_NCCL_LIB names it.
#
# Every stage writes its log (and JSON) under OUT_DIR (default $TMPDIR/mnnvl-ar-gpu-suite) and prints a summary line;
# the logs end up in OUT_DIR/logs.tgz. NVLink multicast stays off in every process started here.
set -uo pipefail

export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="${AR_DIST:-$root/build-cuda/dist}"
dist="${dist%/}"

if [[ "${1:-}" == "pack" ]]; then
  build="${AR_BUILD:-$root/build-cuda}"
  rm -rf "$dist" "$dist.tar.xz"
  mkdir -p "$dist"
  # Every GPU test the build has (tests/cuda/CMakeLists.txt), so a new one cannot be left behind.
  cp "$build/harness/mnnvl-ar" "$build"/tests/cuda/cuda_*_test "$dist/" || exit 2
  # Shared libraries a stock CUDA image may lack (everything but libc, libm, libstdc++, libgcc, the loader):
  # libcrypto.so.3 too, should a build link it dynamically.
  ldd "$dist/mnnvl-ar" "$dist"/cuda_*_test | awk '/=> \//{print $3}' | sort -u |
    grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$dist/"; done
  # AR_COMMIT names a build of uncommitted or branch work (its label in every log and JSON of the suite).
  echo "${AR_COMMIT:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)}" >"$dist/commit.txt"
  # The binaries share most of their device code: one xz stream with a window wider than a binary stores it
  # about once (a build of 170 MiB comes to some 12 MiB, where per-file windows gave 59 MiB).
  tar -C "$(dirname "$dist")" -cf - "$(basename "$dist")" | xz -T1 --lzma2=preset=6,dict=192MiB >"$dist.tar.xz"
  du -sh "$dist" "$dist.tar.xz"
  exit 0
fi

# unpack_dist DIR: DIR from DIR.tar.xz when only the archive was carried (into DIR itself, whatever folder name
# the archive was packed under).
unpack_dist() {
  if [[ ! -d "$1" && -f "$1.tar.xz" ]]; then
    mkdir -p "$1" && xz -dc "$1.tar.xz" | tar -C "$1" --strip-components=1 -xf - || exit 2
  fi
}
unpack_dist "$dist"
if [[ -n "${AR_DIST_BEFORE:-}" ]]; then
  AR_DIST_BEFORE="${AR_DIST_BEFORE%/}"
  unpack_dist "$AR_DIST_BEFORE"
fi

out="${TMPDIR:-/tmp}/mnnvl-ar-gpu-suite"
stages=()
for a in "$@"; do
  case "$a" in
    smoke|tests|sanitize|run|multiprocess|mufu|bench|bench-small|ab|ab-fused|two-gpu|two-gpu-bench|all) stages+=("$a") ;;
    *) out="$a" ;;
  esac
done
[[ ${#stages[@]} -eq 0 ]] && stages=(all)
mkdir -p "$out/logs"
export LD_LIBRARY_PATH="$dist${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cli="$dist/mnnvl-ar"
export AR_CLI="$cli"  # the [gpu] tests that start mnnvl-ar processes
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

# "all" means every one-GPU stage; the two-GPU stages run only when named.
has() {
  local s
  for s in "${stages[@]}"; do [[ "$s" == "$1" || ("$s" == all && "$1" != two-gpu* && "$1" != ab*) ]] && return 0; done
  return 1
}

# compare_digests REPORT BASELINE.json OTHER.json...: every (W, call seed) row of every other run of `run
# --digests` must have the baseline's sha256 for every rank's output and no mismatch. Exit 1 otherwise.
compare_digests() {
  local report="$1"
  shift
  python3 - "$@" >"$report" 2>&1 <<'PY'
import json, sys
single = {(r["world_size"], r["seed"]): r for r in json.load(open(sys.argv[1]))["rows"]}
bad = 0
for path in sys.argv[2:]:
    try:
        run = json.load(open(path))
    except Exception as e:
        print(f"{path}: unreadable ({e})"); bad += 1; continue
    rows, same, ranks = run["rows"], 0, 0
    for r in rows:
        ref = single.get((r["world_size"], r["seed"]))
        if ref is None or ref["output_sha256"] != r["output_sha256"] or r["mismatches"] != 0:
            print(f"{path}: W={r['world_size']} seed={r['seed']}: DIFFERENT"); bad += 1
        else:
            same += 1; ranks += len(r["output_sha256"])
    print(f"{path.split('/')[-1]}: {run['job']['processes']} processes on GPUs {run['job'].get('gpus', '?')}, "
          f"{same} of {len(rows)} calls identical to {sys.argv[1].split('/')[-1]} ({ranks} rank outputs, sha256), "
          f"worlds {sorted({r['world_size'] for r in rows})}")
print("bit-identical" if bad == 0 else f"{bad} DIFFERENCES")
sys.exit(1 if bad else 0)
PY
}

note "== gpu suite, commit $commit, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$summary"

if has smoke; then
  run_logged smoke_run 120 "$cli" run --world 2,8 --dtype bf16 --calls oneshot:N=4,twoshot:N=64,auto:N=11 \
    --profile flashinfer --pdl both --timeout-ms 2000
fi

if has tests; then
  run_logged test_all_reduce 400 "$dist/cuda_all_reduce_test" --durations yes
  run_logged test_protocol 200 "$dist/cuda_protocol_test" --durations yes
  run_logged test_multi_process 400 "$dist/cuda_multi_process_test" --durations yes
  run_logged test_mufu 120 "$dist/cuda_mufu_test" --durations yes
  run_logged test_direct_path 200 "$dist/cuda_direct_path_test" --durations yes
  run_logged test_fused 400 "$dist/cuda_fused_test" --durations yes
  run_logged test_fused_quant 400 "$dist/cuda_fused_quant_test" --durations yes
fi

if has sanitize; then
  small=(run --world 2,4 --dtype bf16,fp32 --hidden 256 --calls oneshot:N=3,twoshot:N=8,auto:N=5
         --profile flashinfer --pdl off --repeat 2 --timeout-ms 60000)
  for tool in memcheck racecheck synccheck; do
    run_logged "sanitizer_$tool" 300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$cli" "${small[@]}"
  done
  run_logged sanitizer_initcheck 300 compute-sanitizer --tool initcheck --error-exitcode 9 "$cli" "${small[@]}"
  # Fused calls with several rows a block and the quantised modes, one in clusters: racecheck reorders warps,
  # which showed TWOSHOT's dynamic FP8 taking a row maximum that a warp had written before thread 0 cleared it
  # (a wrong code is the run's exit 1, not the sanitizer's 9).
  fused=(run --world 2 --dtype bf16,fp16 --profile flashinfer --pdl off --repeat 1 --timeout-ms 60000
         --calls twoshot:N=300:D=4096:fused:quant=fp8-dynamic,oneshot:N=300:D=2880:fused:quant=fp8-dynamic,oneshot:N=300:D=4096:fused,twoshot:N=300:D=4096:fused:quant=nvfp4,oneshot:N=4:D=8192:fused:quant=fp8-dynamic)
  # The register rows (cuda/detail/norm_row_registers.cuh), several rows a block at W = 8 (narrow blocks of D =
  # 1024 and 2048), one row a block at D = 4096 (a pack a thread) and 8192 (two).
  registers=(run --world 8 --dtype bf16 --profile flashinfer --pdl off --repeat 1 --timeout-ms 60000
             --calls oneshot:N=200:D=2048:fused,twoshot:N=200:D=2048:fused:quant=fp8-dynamic,oneshot:N=200:D=1024:fused:quant=fp8-dynamic,twoshot:N=16:D=4096:fused:quant=nvfp4,oneshot:N=4:D=8192:fused:quant=fp8-dynamic)
  for tool in racecheck synccheck; do
    run_logged "sanitizer_fused_$tool" 300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$cli" "${fused[@]}"
    run_logged "sanitizer_registers_$tool" 300 compute-sanitizer --tool "$tool" --error-exitcode 9 "$cli" "${registers[@]}"
  done
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

if has multiprocess; then
  # Ranks as processes on one GPU. The same calls and inputs run as one process with virtual ranks, as 2 and
  # 4 spawned processes and as 2 processes started by hand with torchrun's variables; every rank's output of
  # every call must have the same sha256 in all of them (and equal reference/, as each run checks itself).
  mp=(run --world 2,4,8 --dtype all --profile both --pdl both --calls oneshot:N=3,twoshot:N=37:D=256,auto:N=11
      --repeat 2 --timeout-ms 10000 --digests)
  run_logged mp_single 120 "$cli" "${mp[@]}" --json "$out/logs/mp_single.json"
  run_logged mp_spawn2 120 "$cli" "${mp[@]}" --spawn 2 --json "$out/logs/mp_spawn2.json"
  run_logged mp_spawn4 120 "$cli" "${mp[@]/2,4,8/4,8}" --spawn 4 --json "$out/logs/mp_spawn4.json"
  torchrun_like() {  # torchrun_like RANK WORLD PORT TOKEN ARGS...: one process as torchrun would start it
    local rank=$1 world=$2 port=$3 token=$4
    shift 4
    env RANK="$rank" LOCAL_RANK="$rank" WORLD_SIZE="$world" LOCAL_WORLD_SIZE="$world" MASTER_ADDR=127.0.0.1 \
      MASTER_PORT="$port" MNNVL_AR_TOKEN="$token" timeout --kill-after=10 120 "$cli" "$@"
  }
  start=$SECONDS
  torchrun_like 1 2 29611 job-token "${mp[@]}" >"$out/logs/mp_torchrun2_r1.log" 2>&1 &
  torchrun_like 0 2 29611 job-token "${mp[@]}" --json "$out/logs/mp_torchrun2.json" >"$out/logs/mp_torchrun2.log" 2>&1
  rc0=$?
  wait $!
  rc1=$?
  note "$(printf '%-28s rc=%-3s %4ss  rank 1 rc=%s; %s' mp_torchrun2 "$rc0" "$((SECONDS - start))" "$rc1" "$(tail -n 1 "$out/logs/mp_torchrun2.log")")"
  # The bit-identity verdict: every (W, call seed) row of every multi-process run against the single run.
  compare_digests "$out/mp_compare.txt" "$out/logs/mp_single.json" "$out/logs/mp_spawn2.json" \
    "$out/logs/mp_spawn4.json" "$out/logs/mp_torchrun2.json"
  rc=$?
  note "$(printf '%-28s rc=%-3s        %s' mp_compare "$rc" "$(tail -n 1 "$out/mp_compare.txt")")"
  # A rank that dies: by its own hand after call 2 (SIGKILL), and killed from outside mid-run.
  run_logged mp_die_after_call 60 "$cli" run --spawn 4 --world 4 --dtype bf16 --profile flashinfer --pdl off \
    --calls oneshot:N=4,twoshot:N=64 --repeat 3 --timeout-ms 2000 --die-after-call 2 --die-rank 2
  start=$SECONDS
  long=(run --world 2 --dtype bf16 --profile flashinfer --pdl off --calls oneshot:N=1,twoshot:N=2 --hidden 256
        --repeat 20000 --timeout-ms 2000)
  # Started without the timeout wrapper, so that $! is the rank's own process (env execs mnnvl-ar).
  env RANK=1 LOCAL_RANK=1 WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29612 \
    MNNVL_AR_TOKEN=job-token "$cli" "${long[@]}" >"$out/logs/mp_kill_r1.log" 2>&1 &
  victim=$!
  torchrun_like 0 2 29612 job-token "${long[@]}" >"$out/logs/mp_kill_r0.log" 2>&1 &
  survivor=$!
  sleep 5
  kill -9 "$victim"
  killed=$SECONDS
  wait "$survivor"
  rc0=$?
  wait "$victim" 2>/dev/null
  note "$(printf '%-28s rc=%-3s %4ss  rank 0 ended %ss after rank 1 was killed: %s' mp_kill_external "$rc0" \
    "$((SECONDS - start))" "$((SECONDS - killed))" "$(grep -m1 -o 'rank 1 closed[^;]*' "$out/logs/mp_kill_r0.log")")"
  # A wrong token: rank 1 is refused, rank 0 times out waiting for it.
  start=$SECONDS
  torchrun_like 1 2 29613 not-the-token run --world 2 --rendezvous-timeout-ms 3000 >"$out/logs/mp_token_r1.log" 2>&1 &
  torchrun_like 0 2 29613 job-token run --world 2 --rendezvous-timeout-ms 3000 >"$out/logs/mp_token_r0.log" 2>&1
  rc0=$?
  wait $!
  rc1=$?
  note "$(printf '%-28s rc=%-3s %4ss  rank 1 rc=%s: %s' mp_wrong_token "$rc0" "$((SECONDS - start))" "$rc1" \
    "$(tail -n 1 "$out/logs/mp_token_r1.log")")"
  note "    rank 0: $(tail -n 1 "$out/logs/mp_token_r0.log")"
  # probe: one process, then two (handle exchange), then two asking for fabric handles (refused here; the
  # report says why and falls back to POSIX handles).
  run_logged probe 120 "$cli" probe --json "$out/probe.json"
  run_logged probe_spawn2 120 "$cli" probe --spawn 2 --json "$out/probe_spawn2.json"
  run_logged probe_spawn2_fabric 120 "$cli" probe --spawn 2 --handles fabric --no-peers
  run_logged mp_bench_spawn2 120 "$cli" bench --spawn 2 -W 2,4 -b 4K -e 1M -f 16 -n 20 -w 5 -d bf16 -s all
fi

if has mufu; then
  # The MUFU model (reference/mufu.h) against this GPU on every input (docs/mufu.md): a few minutes, most of
  # it the host comparing.
  run_logged mufu_check 600 "$cli" mufu --check --json "$out/mufu.json"
fi

if has bench-small; then
  run_logged bench_small 300 "$cli" bench -b 4K -e 64K -f 2 -n 50 -w 10 -G 20 -d bf16 -s all -W 2 \
    --label commit="$commit" -J "$out/bench_small.json"
fi

if has bench; then
  run_logged bench_sweep 420 "$cli" bench -b 4K -e 256M -f 4 -n 20 -w 5 -G 5 -d all -s all -W 2,8 \
    --label commit="$commit" -J "$out/bench.json"
fi

if has ab; then
  # The same calls through an earlier build and this one: every rank output must have the same sha256, and the
  # times are compared run for run, before and after alternating so that drift falls on both.
  before="${AR_DIST_BEFORE:?ab needs AR_DIST_BEFORE, the dist folder of the earlier build}"
  ab_run=(run --world all --dtype all --inputs random --repeat 2 --timeout-ms 10000 --digests
          --calls oneshot:N=4,twoshot:N=64:D=256,auto:N=11:dtype=fp32,oneshot:N=1,twoshot:N=3:D=2880,auto:N=200:D=2880,twoshot:N=257:dtype=fp16)
  run_logged ab_run_before 300 env LD_LIBRARY_PATH="$before" "$before/mnnvl-ar" "${ab_run[@]}" --json "$out/logs/ab_run_before.json"
  run_logged ab_run_after 300 "$cli" "${ab_run[@]}" --json "$out/logs/ab_run_after.json"
  run_logged ab_golden_before 300 env LD_LIBRARY_PATH="$before" "$before/mnnvl-ar" run --inputs golden --data data --digests \
    --json "$out/logs/ab_golden_before.json"
  run_logged ab_golden_after 300 "$cli" run --inputs golden --data data --digests --json "$out/logs/ab_golden_after.json"
  compare_digests "$out/ab_compare.txt" "$out/logs/ab_run_before.json" "$out/logs/ab_run_after.json"
  note "$(printf '%-28s rc=%-3s        %s' ab_compare "$?" "$(tail -n 1 "$out/ab_compare.txt")")"
  # The golden cases share seeds across shapes, so their rows are compared in order rather than by seed.
  python3 - "$out/logs/ab_golden_before.json" "$out/logs/ab_golden_after.json" >"$out/ab_golden_compare.txt" 2>&1 <<'PY'
import json, sys
before, after = (json.load(open(p))["rows"] for p in sys.argv[1:3])
same = sum(1 for b, a in zip(before, after) if b["output_sha256"] == a["output_sha256"] and a["mismatches"] == 0)
ranks = sum(len(a["output_sha256"]) for a in after)
ok = same == len(before) == len(after) > 0
print(f"golden: {same} of {len(before)} calls identical ({ranks} rank outputs, sha256): "
      + ("bit-identical" if ok else "DIFFERENT"))
sys.exit(0 if ok else 1)
PY
  note "$(printf '%-28s rc=%-3s        %s' ab_golden_compare "$?" "$(tail -n 1 "$out/ab_golden_compare.txt")")"
  for round in 1 2; do
    for side in before after; do
      bin="$cli"; lib="$dist"
      [[ $side == before ]] && bin="$before/mnnvl-ar" && lib="$before"
      run_logged "ab_small_${side}_$round" 200 env LD_LIBRARY_PATH="$lib" "$bin" bench -b 4K -e 64K -f 2 -n 50 -w 10 \
        -G 20 -d bf16 -s all -W 2 -J "$out/ab_small_${side}_$round.json"
      run_logged "ab_large_${side}_$round" 200 env LD_LIBRARY_PATH="$lib" "$bin" bench -b 256M -e 256M -n 20 -w 5 \
        -G 5 -d bf16 -s all -W 2 -J "$out/ab_large_${side}_$round.json"
    done
  done
  python3 - "$out" >"$out/ab_times.txt" 2>&1 <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def rows(side, kind):
    times = {}
    for path in sorted(glob.glob(f"{out}/ab_{kind}_{side}_*.json")):
        for r in json.load(open(path))["rows"]:
            times.setdefault((r["size"], r["strategy"]), []).append(r["time_us"])
    return {k: statistics.median(v) for k, v in times.items()}
worst = 0.0
for kind in ("small", "large"):
    b, a = rows("before", kind), rows("after", kind)
    if not b or set(a) != set(b):
        sys.exit(f"{kind}: the before and after runs did not both measure the same rows: no comparison")
    for key in sorted(b):
        ratio = a[key] / b[key]
        worst = max(worst, abs(ratio - 1))
        print(f"{kind:5} {key[0]:>10} {key[1]:8} before {b[key]:9.2f} us  after {a[key]:9.2f} us  after/before {ratio:.4f}")
print(f"largest change {100 * worst:.2f}%")
PY
  note "$(printf '%-28s        %s' ab_times "$(tail -n 1 "$out/ab_times.txt")")"
fi

if has ab-fused; then
  # The fused call and its quantised modes at decode sizes through an earlier build and this one, alternating
  # round by round so that drift falls on both: medians of each row's fused time and each mode's time, the
  # plain all-reduce of the same run beside them, and every call's #wrong (bench checks every timed size
  # bit for bit against reference/).
  before="${AR_DIST_BEFORE:?ab-fused needs AR_DIST_BEFORE, the dist folder of the earlier build}"
  rm -f "$out"/abf_*.json  # the summary reads every one of them: none from an earlier run
  for round in 1 2 3; do
    for side in before after; do
      bin="$cli"; lib="$dist"
      [[ $side == before ]] && bin="$before/mnnvl-ar" && lib="$before"
      for shape in "4096 8K 128K" "8192 16K 256K"; do
        read -r hidden from to <<<"$shape"
        run_logged "abf_${side}_d${hidden}_$round" 200 env LD_LIBRARY_PATH="$lib" "$bin" bench -W 2 --fused \
          --quant all -D "$hidden" -b "$from" -e "$to" -f 2 -n 50 -w 10 -G 10 -d bf16 -s oneshot,twoshot \
          -J "$out/abf_${side}_d${hidden}_$round.json"
      done
    done
  done
  python3 - "$out" >"$out/ab_fused_times.txt" 2>&1 <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def runs(side):
    """(D, size, strategy) -> {column: [times]} and the sum of every #wrong, over the side's rounds."""
    times, wrong = {}, 0
    for path in sorted(glob.glob(f"{out}/abf_{side}_d*_*.json")):
        for r in json.load(open(path))["rows"]:
            row = times.setdefault((r["hidden"], r["size"], r["strategy"]), {})
            row.setdefault("all-reduce", []).append(r["time_us"])
            row.setdefault("fused", []).append(r["fused_us"])
            wrong += r["wrong"] + r["fused_wrong"] + r.get("ar_then_norm_wrong", 0)
            for mode, q in sorted(r.get("quant", {}).items()):
                row.setdefault(mode, []).append(q["time_us"])
                wrong += q["wrong"]
    # A call that timed out has no time (null): its row's median is NaN, which the table shows.
    median = lambda v: statistics.median(v) if all(isinstance(t, (int, float)) for t in v) else float("nan")
    return {k: {c: median(v) for c, v in row.items()} for k, row in times.items()}, wrong
(b, b_wrong), (a, a_wrong) = runs("before"), runs("after")
if not b or set(a) != set(b):
    sys.exit("the before and after runs did not both measure the same rows: no comparison")
columns = list(next(iter(b.values())))
print("D size strategy | " + " | ".join(f"{c} us before/after" for c in columns) + " (a mode's time over fused)")
for key in sorted(b):
    cells = []
    for c in columns:
        over = lambda side: side[key][c] - side[key]["fused"]
        extra = "" if c in ("all-reduce", "fused") else f" ({over(b):+.2f} -> {over(a):+.2f})"
        cells.append(f"{b[key][c]:.2f}/{a[key][c]:.2f}{extra}")
    print(f"{key[0]} {key[1]} {key[2]} | " + " | ".join(cells))
ok = b_wrong == 0 and a_wrong == 0
print(f"#wrong before {b_wrong}, after {a_wrong}: " + ("every call bit-exact" if ok else "WRONG BITS"))
sys.exit(0 if ok else 1)
PY
  note "$(printf '%-28s rc=%-3s        %s' ab_fused_times "$?" "$(tail -n 1 "$out/ab_fused_times.txt")")"
fi

if has two-gpu || has two-gpu-bench; then
  gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l)
  note "GPUs visible: $gpus"
  nvidia-smi topo -m >"$out/logs/topology.txt" 2>&1
  if [[ -z "${AR_NCCL_LIB:-}" ]]; then
    AR_NCCL_LIB="$(find /opt /usr -name 'libnccl.so.2' 2>/dev/null | head -n 1)"
    export AR_NCCL_LIB
  fi
  note "NCCL for the baseline: ${AR_NCCL_LIB:-none found}"
fi

if has two-gpu; then
  run_logged test_multi_gpu 400 "$dist/cuda_multi_gpu_test" --durations yes
  # One process driving both GPUs, and one process per GPU (W = 2: one rank per GPU; W = 16: 2 x 8 virtual).
  run_logged tg_golden_devices 300 "$cli" run --devices all --inputs golden --data data --json "$out/tg_golden_devices.json"
  run_logged tg_golden_spawn2 300 "$cli" run --spawn 2 --inputs golden --data data --json "$out/logs/tg_golden_spawn2.json"
  tg=(run --world all --dtype all --inputs random --repeat 2 --timeout-ms 10000 --digests
      --calls oneshot:N=4,twoshot:N=64:D=256,auto:N=11:dtype=fp32,oneshot:N=1,twoshot:N=3:D=2880,auto:N=200:D=2880,twoshot:N=257:dtype=fp16,auto:N=128:D=4096)
  run_logged tg_mixed_one_gpu 300 "$cli" "${tg[@]}" --json "$out/logs/tg_mixed_one_gpu.json"
  run_logged tg_mixed_devices 300 "$cli" "${tg[@]}" --devices all --json "$out/logs/tg_mixed_devices.json"
  run_logged tg_mixed_spawn2 300 "$cli" "${tg[@]}" --spawn 2 --json "$out/logs/tg_mixed_spawn2.json"
  compare_digests "$out/tg_compare.txt" "$out/logs/tg_mixed_one_gpu.json" "$out/logs/tg_mixed_devices.json" \
    "$out/logs/tg_mixed_spawn2.json"
  note "$(printf '%-28s rc=%-3s        %s' tg_compare "$?" "$(tail -n 1 "$out/tg_compare.txt")")"
  run_logged tg_missing_rank 60 "$cli" run --devices all --world 2 --dtype bf16 --calls twoshot:N=16 --omit-rank 1 \
    --timeout-ms 500 --pdl off --profile flashinfer
  run_logged tg_sanitizer_memcheck 300 compute-sanitizer --tool memcheck --error-exitcode 9 "$cli" run --devices all \
    --world 2,16 --dtype bf16,fp32 --hidden 256 --calls oneshot:N=3,twoshot:N=8,auto:N=5 --profile flashinfer \
    --pdl off --repeat 2 --timeout-ms 60000
  run_logged tg_probe 120 "$cli" probe --json "$out/tg_probe.json"
  run_logged tg_probe_spawn2 120 "$cli" probe --spawn 2 --json "$out/logs/tg_probe_spawn2.json"
fi

if has two-gpu-bench; then
  run_logged tg_bench_small 200 "$cli" bench --devices all -W 2 -b 4K -e 1M -f 2 -n 50 -w 10 -G 20 -d bf16 -s all \
    --label commit="$commit" -J "$out/tg_bench_small.json"
  run_logged tg_bench_sweep 420 "$cli" bench --devices all -W 2 -b 4K -e 256M -f 4 -n 20 -w 5 -G 5 -d all -s all \
    --label commit="$commit" -J "$out/tg_bench_sweep.json"
  run_logged tg_bench_w16 200 "$cli" bench --devices all -W 16 -b 4K -e 16M -f 4 -n 20 -w 5 -G 5 -d bf16 -s all \
    --label commit="$commit" -J "$out/logs/tg_bench_w16.json"
  run_logged tg_bench_spawn2 200 "$cli" bench --spawn 2 -W 2 -b 4K -e 256M -f 4 -n 20 -w 5 -G 5 -d bf16 -s all \
    --label commit="$commit" -J "$out/logs/tg_bench_spawn2.json"
fi

tar -C "$out" -czf "$out/logs.tgz" logs && rm -rf "$out/logs"
note "== done"
