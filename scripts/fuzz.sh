#!/usr/bin/env bash
# Runs the libFuzzer targets of the sanitizer build (ASan + UBSan, coverage
# on the project's C++): parse + verify, the CPU and GPU pipelines up to LLVM
# IR, and execution of compiled routing and layer functions.
#
#   scripts/fuzz.sh --ci                  # what CI runs: replay the committed
#                                         # corpora + a fixed-seed run of each
#                                         # target; the corpora are not changed
#   scripts/fuzz.sh [--seconds N] [TARGET ...]
#                                         # fuzz each target N seconds (default
#                                         # 60); new inputs join its corpus
#   scripts/fuzz.sh --merge [TARGET ...]  # minimise the corpora in place
#
# TARGET is verify, cpu-pipeline, gpu-pipeline or exec (default: all).
# Crashes are written to build-sanitize/fuzz-artifacts/ and fail the run;
# a crash input becomes a regression test and stays in the corpus.
# MOE_SANITIZE_BUILD_DIR overrides build-sanitize/, MOE_FUZZ_RUNS the number
# of mutations of the fixed-seed CI run (default: 2000 for verify and exec,
# 100 for the pipelines, which compile to LLVM IR on every input).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${MOE_SANITIZE_BUILD_DIR:-$ROOT/build-sanitize}"
CORPORA="$ROOT/tools/fuzzers/corpus"
# The LLVM/MLIR 22 install (Debian's packages; MOE_MLIR_LLVM_PREFIX overrides it,
# as it does for the Python package).
LLVM_PREFIX="${MOE_MLIR_LLVM_PREFIX:-/usr/lib/llvm-22}"
# Longest first: in --ci they run side by side.
ALL_TARGETS=(gpu-pipeline cpu-pipeline verify exec)

mode=fuzz
seconds=60
targets=()
while (($#)); do
  case "$1" in
    --ci) mode=ci ;;
    --merge) mode=merge ;;
    --seconds) seconds="$2"; shift ;;
    --seconds=*) seconds="${1#--seconds=}" ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    verify|cpu-pipeline|gpu-pipeline|exec) targets+=("$1") ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")

# The fuzzers are built by the sanitizer build (scripts/sanitize.sh).
if [ ! -x "$BUILD_DIR/bin/moe-verify-fuzzer" ]; then
  MOE_SANITIZE_BUILD_ONLY=1 "$ROOT/scripts/sanitize.sh"
fi

ASAN_RUNTIME="$("$LLVM_PREFIX/bin/clang" -print-file-name=libclang_rt.asan-x86_64.so)"
export LD_PRELOAD="$ASAN_RUNTIME"
# libMLIR.so is not instrumented (see sanitize.sh); leaks are not checked:
# MLIR's contexts keep uniqued storage for the process.
export ASAN_OPTIONS="detect_leaks=0:allow_user_poisoning=0:detect_container_overflow=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
ARTIFACTS="$BUILD_DIR/fuzz-artifacts"
mkdir -p "$ARTIFACTS"

# Per target: the input size limit and the per-input timeout (the pipeline
# targets compile to LLVM IR and PTX; the verifier and execution are quick).
max_len() { case "$1" in exec) echo 4096 ;; *) echo 16384 ;; esac; }
# The execution target reads T x width values: long inputs from the start.
len_control() { case "$1" in exec) echo 0 ;; *) echo 100 ;; esac; }
timeout_of() { case "$1" in verify|exec) echo 10 ;; *) echo 30 ;; esac; }
ci_runs() { case "$1" in verify|exec) echo "${MOE_FUZZ_RUNS:-2000}" ;; *) echo "${MOE_FUZZ_RUNS:-100}" ;; esac; }

options_of() {
  echo -max_len="$(max_len "$1")" -len_control="$(len_control "$1")" \
       -timeout="$(timeout_of "$1")" -rss_limit_mb=4096 -malloc_limit_mb=4096 \
       -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$1-"
}

# CI: replay the corpus and run a fixed number of seeded mutations; new
# inputs go to a scratch folder, so nothing changes. Writes a report.
ci_target() {
  local target="$1" corpus="$CORPORA/$1" scratch start runs rc=0
  scratch="$(mktemp -d)"
  start=$(date +%s)
  # -runs counts the replayed inputs too.
  runs=$(( $(ls "$corpus" | wc -l) + $(ci_runs "$target") ))
  # shellcheck disable=SC2046
  "$BUILD_DIR/bin/moe-$target-fuzzer" $(options_of "$target") -seed=1 -runs="$runs" \
    "$scratch" "$corpus" > "$ARTIFACTS/$target-ci.log" 2>&1 || rc=$?
  {
    echo "== fuzz $target: replay $(ls "$corpus" | wc -l) inputs + $(ci_runs "$target") mutations (seed 1): $(( $(date +%s) - start )) s"
    if [ "$rc" -ne 0 ]; then tail -60 "$ARTIFACTS/$target-ci.log"; fi
    grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units" "$ARTIFACTS/$target-ci.log" \
      | sed 's/^/   /' || true
  } > "$ARTIFACTS/$target-ci.report"
  rm -rf "$scratch"
  return "$rc"
}

status=0
if [ "$mode" = ci ]; then
  # The targets are independent processes: run as many at once as there
  # are cores (the pipeline targets take most of the time).
  jobs_max=$(nproc 2>/dev/null || echo 1)
  pids=()
  start=$(date +%s)
  for target in "${targets[@]}"; do
    while (( $(jobs -rp | wc -l) >= jobs_max )); do sleep 0.2; done
    ci_target "$target" &
    pids+=("$!")
  done
  for i in "${!targets[@]}"; do
    wait "${pids[$i]}" || status=1
    cat "$ARTIFACTS/${targets[$i]}-ci.report"
  done
  echo "== fuzz --ci: $(( $(date +%s) - start )) s"
  exit $status
fi

for target in "${targets[@]}"; do
  fuzzer="$BUILD_DIR/bin/moe-$target-fuzzer"
  corpus="$CORPORA/$target"
  mkdir -p "$corpus"
  # shellcheck disable=SC2207
  common=($(options_of "$target"))
  start=$(date +%s)
  case "$mode" in
    merge)
      fresh="$(mktemp -d)"
      echo "== merge $target ($(ls "$corpus" | wc -l) inputs)"
      "$fuzzer" "${common[@]}" -set_cover_merge=1 "$fresh" "$corpus" > "$ARTIFACTS/$target-merge.log" 2>&1 \
        || { tail -30 "$ARTIFACTS/$target-merge.log"; status=1; rm -rf "$fresh"; continue; }
      rm -f "$corpus"/*
      cp "$fresh"/* "$corpus"/ 2>/dev/null || true
      rm -rf "$fresh"
      echo "   kept $(ls "$corpus" | wc -l) inputs ($(du -sb "$corpus" | cut -f1) bytes)"
      ;;
    fuzz)
      echo "== fuzz $target for $seconds s (corpus: $(ls "$corpus" | wc -l) inputs)"
      if ! "$fuzzer" "${common[@]}" -max_total_time="$seconds" "$corpus" \
           > "$ARTIFACTS/$target-fuzz.log" 2>&1; then
        tail -60 "$ARTIFACTS/$target-fuzz.log"
        status=1
      fi
      grep -E "^#[0-9]+ +(INITED|DONE)|stat::" "$ARTIFACTS/$target-fuzz.log" | sed 's/^/   /' || true
      ;;
  esac
  echo "   $(( $(date +%s) - start )) s"
done
exit $status
