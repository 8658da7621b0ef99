#!/usr/bin/env bash
# The whole test suite, as README.md and .ci/run give it:
#   1. installs what it needs (scripts/install-deps.sh),
#   2. builds tgate with -Werror and runs the C unit tests,
#   3. runs the integration tests (real TLS, real HTTP/2 clients, the real
#      Temporal TypeScript SDK, a development frontend) against build/tgate,
#   4. builds with ASan+UBSan and runs the unit and integration tests again,
#   5. runs each libFuzzer harness briefly (FUZZ_TIME seconds, default 10).
# Ends with one line "N passed, N failed"; exits non-zero when anything failed.
# Options: TG_SKIP_ASAN=1, TG_SKIP_FUZZ=1 for a quicker local run.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

scripts/install-deps.sh || { echo "install-deps failed"; echo "0 passed, 1 failed"; exit 1; }
[ -x .tools/node/bin/node ] && export PATH="$ROOT/.tools/node/bin:$PATH"

passed=0
failed=0
failures=()
count() { # count NAME PASSED FAILED
  passed=$((passed + $2)); failed=$((failed + $3))
  [ "$3" -gt 0 ] && failures+=("$1: $3 failed")
  return 0
}
step_fail() { count "$1" 0 1; echo "FAILED: $1"; }

run_unit() { # run_unit BUILD_DIR LABEL
  local out
  for t in "$1"/unit/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    echo "$out"
    line=$(echo "$out" | grep -E '^unit .*: [0-9]+ passed, [0-9]+ failed$' | tail -1)
    if [ -z "$line" ]; then step_fail "$2 $(basename "$t") (crashed, rc=$rc)"; continue; fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
    f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    count "$2 $(basename "$t")" "$p" "$f"
  done
}

run_integration() { # run_integration TGATE_BIN LABEL [env...]
  local bin=$1 label=$2; shift 2
  local log; log=$(mktemp)
  # Bounded: a test that hangs fails after 3 minutes, the whole run after 20.
  (cd tests && env TGATE_BIN="$bin" "$@" timeout -k 10 1200 \
     node --test --test-timeout=180000 --test-reporter=tap integration/) >"$log" 2>&1
  local rc=$?
  cat "$log"
  local p f
  p=$(grep -E '^# pass [0-9]+' "$log" | tail -1 | awk '{print $3}')
  f=$(grep -E '^# fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
  rm -f "$log"
  if [ -z "$p" ]; then step_fail "$label integration (runner crashed, rc=$rc)"; return; fi
  [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ] && f=1
  count "$label integration" "$p" "${f:-0}"
}

export TGATE_CERTS; TGATE_CERTS=$(mktemp -d)
trap 'rm -rf "$TGATE_CERTS"' EXIT
certs-dev/gen.sh "$TGATE_CERTS" >/dev/null || step_fail "certs-dev/gen.sh"

echo "== format (clang-format, .clang-format)"
if make -s format-check >/dev/null 2>&1; then count "format" 1 0; else step_fail "format (run: make format)"; fi

echo "== build (gcc, -Werror)"
if make -s all && make -s $(ls tests/unit/test_*.c 2>/dev/null | sed -E 's#tests/unit/(.*)\.c#build/unit/\1#'); then
  count "build" 1 0
  echo "== unit tests"
  run_unit build "unit"
  echo "== integration tests (build/tgate)"
  run_integration "$ROOT/build/tgate" "gcc"
else
  step_fail "build"
fi

if [ "${TG_SKIP_ASAN:-0}" != 1 ]; then
  echo "== ASan/UBSan build"
  if make -s asan >/dev/null; then
    count "asan build" 1 0
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    run_unit build-asan "asan unit"
    echo "== integration tests (build-asan/tgate)"
    run_integration "$ROOT/build-asan/tgate" "asan" TGATE_ASAN=1
  else
    step_fail "asan build"
  fi
fi

if [ "${TG_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzzing (${FUZZ_TIME:-10}s per harness)"
  for f in tests/fuzz/fuzz_*.c; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .c)
    if make -s fuzz-one FUZZ_TARGET="$n" FUZZ_TIME="${FUZZ_TIME:-10}"; then
      count "fuzz $n" 1 0
    else
      step_fail "fuzz $n"
    fi
  done
fi

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
