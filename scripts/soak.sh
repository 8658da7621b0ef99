#!/usr/bin/env bash
# Soak test (not part of CI): SOAK_SECONDS (default 600) of mixed load through tgate with
# reloads, first against the ASan+UBSan build (make asan -> build-asan/tgate), then against the
# release build (make -> build/tgate). For each build (tests/soak/run.js):
#   - the development frontend (tests/frontend/frontend.js) in a child process;
#   - tgate with TLS, API keys and `authorization: mode: enforce`, 2 workers;
#   - load from tests/soak/load.js over 6 TLS connections, replaced every 15-25 s (alternately
#     closed gracefully and dropped with calls in flight): DescribeNamespace,
#     StartWorkflowExecution, long polls (PollWorkflowTaskQueue held 0.5-6 s by the frontend),
#     denied calls (7), unauthenticated calls and unknown API keys (16), and polls the client
#     cancels after 50-800 ms;
#   - every 10 s a reload by SIGHUP, alternately a good configuration and a bad one, each
#     checked in /metrics (tgate_config_reloads_total{result});
#   - tgate's RSS sampled every 5 s.
# Each run reports calls by kind and outcome, the unexpected failures (a call whose outcome is
# not the expected one; must be 0), the reloads, RSS at warm-up (60 s) vs at the end (PASS when
# it grew < 8 MiB or < 10%), that tgate_streams_open and tgate_connections_open return to 0,
# tgate's exit status after SIGTERM (0) and, for ASan, that its stderr holds no
# "ERROR: AddressSanitizer", "LeakSanitizer" or "runtime error:". The ASan run uses
# quarantine_size_mb=16 (unless ASAN_OPTIONS sets it) so that ASan's quarantine of freed
# memory does not read as RSS growth.
# Everything listens on 127.0.0.1; children and temporary files are removed on exit.
#
# Usage: scripts/soak.sh                 both builds, 600 s each
#        SOAK_SECONDS=120 scripts/soak.sh
#        SOAK_BUILDS=release scripts/soak.sh   (asan, release, or "asan release")
#        SOAK_KEEP=1 keeps the work directories (tgate.log, configurations) for a look after.
# Exits non-zero when any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_BUILDS=${SOAK_BUILDS:-asan release}
[ -x .tools/node/bin/node ] && export PATH="$ROOT/.tools/node/bin:$PATH"

WORK=$(mktemp -d /tmp/tgate-soak-XXXXXX)
cleanup() {
  # Whatever a run left behind (it kills its children itself; this is for an interrupted one).
  if [ -f "$WORK/node.pid" ]; then kill -TERM "$(cat "$WORK/node.pid")" 2>/dev/null; fi
  for f in "$WORK"/*/pids; do
    [ -f "$f" ] || continue
    while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$f"
  done
  if [ "${SOAK_KEEP:-0}" = 1 ]; then echo "soak: work directories kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -d tests/node_modules ] || (cd tests && npm ci --no-audit --no-fund) || { echo "soak: npm ci failed"; exit 1; }

failed=()
for build in $SOAK_BUILDS; do
  case $build in
    asan) target=asan; bin=build-asan/tgate; flag=--asan ;;
    release) target=all; bin=build/tgate; flag= ;;
    *) echo "soak: unknown build '$build' (asan or release)"; exit 2 ;;
  esac
  echo "== soak: make $target"
  if ! make -j2 "$target" >"$WORK/make-$build.log" 2>&1; then
    tail -n 30 "$WORK/make-$build.log"
    failed+=("$build: build failed")
    continue
  fi
  mkdir -p "$WORK/$build"
  echo "== soak: $build build, $SOAK_SECONDS s"
  node tests/soak/run.js --bin "$bin" --seconds "$SOAK_SECONDS" --work "$WORK/$build" $flag &
  echo $! >"$WORK/node.pid"
  wait $!
  rc=$?
  rm -f "$WORK/node.pid"
  [ $rc -eq 0 ] || failed+=("$build: soak failed (exit $rc)")
done

echo
if [ ${#failed[@]} -eq 0 ]; then
  echo "soak: PASS ($SOAK_BUILDS, $SOAK_SECONDS s each)"
  exit 0
fi
printf 'soak: FAIL\n'
printf '  %s\n' "${failed[@]}"
exit 1
