#!/usr/bin/env bash
# tgate benchmark (`make bench`): tgate against nghttpx and HAProxy in front of
# the same fast C upstream, with the same h2load client settings for every
# target, real Temporal request bodies and a real JWT. Not a test: it prints
# a table and saves the raw figures as build/bench/results-DATE.json.
#
# Usage: scripts/bench.sh            (about 8-10 minutes on 2 cores)
#        BENCH_QUICK=1 scripts/bench.sh   (a ~1-2 minute smoke run)
#
# What it measures, in one run:
#   load   h2load -t1 against each target; two shapes: "lat" 1 connection x
#          1 stream, "hc" BENCH_C connections x BENCH_M streams; two bodies:
#          DescribeNamespace (12 B) and StartWorkflowExecution (~1 KiB).
#          Per target: calls/s, p50/p99 (from h2load's per-request log), CPU
#          seconds of the proxy process tree per 100k calls (/proc/PID/stat
#          utime+stime around each run), and the upstream's own count of the
#          calls it answered, which must equal h2load's "succeeded" (h2load
#          counts a trailers-only gRPC error as a success).
#          Runs are interleaved (rep 1 of every target, then rep 2, ...) after
#          a warm-up; the table shows medians.
#   micro  tests/bench/authz_bench.c: authorizations/s on one core through
#          tgate's own authn/authz code (cached token, fresh RS256/ES256),
#          against `openssl speed rsa2048 ecdsap256` verify/s.
#   rss    tgate's VmRSS per idle mTLS connection (BENCH_CONNS connections
#          that finished the TLS handshake with a client certificate and the
#          HTTP/2 preface + SETTINGS exchange), and per idle h2c connection.
#
# Targets (every one listens on 127.0.0.1; the upstream is h2c):
#   direct          h2load -> upstream
#   nghttpx         nghttpx -n1 (1 worker), h2c in, h2 out
#   haproxy         HAProxy mode http, nbthread 1, bind proto h2, server proto h2
#   tgate-off       tgate workers: 1, no authentication, authorization off, h2c
#   tgate-auth      tgate workers: 1, JWT (RS256, pem: key) + authorization
#                   enforce with rules, h2c: the full gateway, same transport
#                   as the nghttpx/haproxy rows
#   nghttpx-tls, haproxy-tls, tgate-auth-tls   the same with a TLS listener
#                   (h2 by ALPN; tgate verifies a client cert if one is sent,
#                   h2load sends none)
#   tgate-auth-w2   tgate-auth with workers: 2 (hc shape only; BENCH_W2=0 drops it)
#   tgate-auth-bp, tgate-auth-tls-bp   tgate-auth(-tls) with busy_poll: 50us
#                   (lat shape only, where it matters; BENCH_BP=0 drops them)
# "x ngx" compares with nghttpx on the same transport, "x dir" with direct.
#
# Environment:
#   BENCH_QUICK=1    small counts, one repetition, 2000 idle connections
#   BENCH_N          calls per hc run (default 150000; quick 20000)
#   BENCH_LAT_N      calls per 1x1 run (default 20000; quick 2000)
#   BENCH_C, BENCH_M hc connections and streams per connection (64, 32)
#   BENCH_REPS       repetitions per target (default 3; quick 1)
#   BENCH_TARGETS    space-separated subset of the targets above
#   BENCH_W2         1 (default) adds tgate-auth-w2
#   BENCH_BP         1 (default) adds tgate-auth-bp and tgate-auth-tls-bp
#   BENCH_PARTS      any of "load micro rss" (default all three)
#   BENCH_CONNS      idle connections for the memory test (default 10000)
#   BENCH_MICRO_S    CPU seconds per micro-benchmark run (default 2)
#   BENCH_SPEED_S    openssl speed -seconds (default 3)
#   BENCH_BASE_BIN   another tgate binary: adds targets base-auth and
#                    base-auth-tls (A/B against e.g. the previous commit)
#   BENCH_PERF=1     also `perf record -g` BENCH_PERF_TARGET (default
#                    tgate-auth) and count syscalls per call of every target,
#                    during extra hc runs (not in the table)
#                    -> build/bench/perf-DATE.txt
# Needs: h2load, nghttpx, haproxy (installed with apt-get when missing and
# running as root), node (tests/node_modules), cc, pkg-config, curl, openssl.
# Every process it starts is stopped on exit, Ctrl-C included.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  N=${BENCH_N:-20000}
  LAT_N=${BENCH_LAT_N:-2000}
  REPS=${BENCH_REPS:-1}
  CONNS=${BENCH_CONNS:-2000}
  MICRO_S=${BENCH_MICRO_S:-0.5}
  SPEED_S=${BENCH_SPEED_S:-1}
else
  N=${BENCH_N:-150000}
  LAT_N=${BENCH_LAT_N:-20000}
  REPS=${BENCH_REPS:-3}
  CONNS=${BENCH_CONNS:-10000}
  MICRO_S=${BENCH_MICRO_S:-2}
  SPEED_S=${BENCH_SPEED_S:-3}
fi
C=${BENCH_C:-64}
M=${BENCH_M:-32}
W2=${BENCH_W2:-1}
BP=${BENCH_BP:-1}
PARTS=${BENCH_PARTS:-load micro rss}
ALL_TARGETS="direct nghttpx haproxy tgate-off tgate-auth nghttpx-tls haproxy-tls tgate-auth-tls"
[ "$W2" = 1 ] && ALL_TARGETS="$ALL_TARGETS tgate-auth-w2"
[ "$BP" = 1 ] && ALL_TARGETS="$ALL_TARGETS tgate-auth-bp tgate-auth-tls-bp"
# BENCH_BASE_BIN=path: another tgate binary (e.g. built from the previous
# commit) as targets base-auth and base-auth-tls, for A/B in one run
BASE_BIN=${BENCH_BASE_BIN:-}
[ -n "$BASE_BIN" ] && ALL_TARGETS="$ALL_TARGETS base-auth base-auth-tls"
TARGETS=${BENCH_TARGETS:-$ALL_TARGETS}

OUT=build/bench
DATE=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$OUT/run-$DATE
IN=$OUT/inputs
RESULTS=$OUT/results-$DATE.json
SVC=/temporal.api.workflowservice.v1.WorkflowService
TCK=$(getconf CLK_TCK)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
has() { [[ " $1 " == *" $2 "* ]]; }

# ---------- processes: every one we start is stopped on exit ----------
declare -A PID=()     # name -> pid
declare -A STARTED=() # pid -> 1, for every process still to be stopped

# The PIDs of $1 and all its descendants.
tree_pids() {
  local p=$1 c
  echo "$p"
  for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do tree_pids "$c"; done
}

stop_pid() { # PID: TERM the tree, wait up to 5 s, then KILL what is left
  local p=$1 all i
  if ! kill -0 "$p" 2>/dev/null; then
    wait "$p" 2>/dev/null || true
    unset "STARTED[$p]"
    return 0
  fi
  all=$(tree_pids "$p")
  kill -TERM $all 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL $all 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  unset "STARTED[$p]"
}

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${!STARTED[@]}"; do stop_pid "$p"; done
  [ "$rc" = 0 ] || log "stopped (exit $rc); logs in $WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() { # NAME CMD...: runs CMD in the background, output to $WORK/NAME.log
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PID[$name]=$!
  STARTED[$!]=1
}

stop_named() {
  local name=$1
  [ -n "${PID[$name]:-}" ] && stop_pid "${PID[$name]}"
  unset "PID[$name]"
}

wait_port() { # PORT NAME: until something accepts on 127.0.0.1:PORT (10 s)
  local i
  for i in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if [ -n "${PID[$2]:-}" ] && ! kill -0 "${PID[$2]}" 2>/dev/null; then
      tail -20 "$WORK/$2.log" >&2
      die "$2 exited during start-up"
    fi
    sleep 0.1
  done
  tail -20 "$WORK/$2.log" >&2
  die "$2 does not listen on $1"
}

wait_ready() { # ADMIN_PORT NAME: tgate's /health/ready answers 200 (10 s)
  local i
  for i in $(seq 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/health/ready")" = 200 ]; then
      return 0
    fi
    kill -0 "${PID[$2]}" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$WORK/$2.log" >&2
  die "$2 is not ready"
}

cpu_ticks() { # PID: utime+stime of the process tree, in clock ticks
  local t=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

free_ports() { # COUNT: that many free TCP ports on 127.0.0.1
  node -e '
    const net = require("net");
    const n = Number(process.argv[1]), s = [];
    let left = n;
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      s.push(srv);
      srv.listen(0, "127.0.0.1", () => {
        if (--left === 0) {
          console.log(s.map((x) => x.address().port).join(" "));
          s.forEach((x) => x.close());
        }
      });
    }' "$1"
}

# ---------- tools ----------
for t in h2load nghttpx node cc pkg-config curl openssl make ps; do
  command -v "$t" >/dev/null || die "$t not found (h2load/nghttpx: apt-get install nghttp2-client nghttp2-proxy)"
done
if ! command -v haproxy >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing HAProxy (apt-get install -y haproxy)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null; } ||
      log "could not install HAProxy"
  else
    log "HAProxy is not installed and this is not root: run 'sudo apt-get install -y haproxy' to get the haproxy rows"
  fi
fi
if ! command -v haproxy >/dev/null; then
  TARGETS=$(echo " $TARGETS " | sed 's/ haproxy-tls / /; s/ haproxy / /')
  log "without HAProxy: targets $TARGETS"
fi
[ -d tests/node_modules/@temporalio/proto ] || die "tests/node_modules is missing (cd tests && npm ci)"

mkdir -p "$WORK" "$IN"
log "work directory $WORK"

# ---------- build ----------
log "building tgate and the benchmark programs"
make -s -j2 build/tgate >&2
PKGS=$(printf 'bench-print-%%:\n\t@echo $($*)\n' |
  make -s --no-print-directory -f Makefile -f - bench-print-PKGS)
LIB_OBJS=$(printf 'bench-print-%%:\n\t@echo $($*)\n' |
  make -s --no-print-directory -f Makefile -f - bench-print-LIB_OBJS)
make -s -j2 $LIB_OBJS >&2
BCFLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter"
# shellcheck disable=SC2046
cc $BCFLAGS -o $OUT/fast_upstream tests/bench/fast_upstream.c $(pkg-config --cflags --libs libnghttp2 libevent)
# shellcheck disable=SC2046
cc $BCFLAGS -o $OUT/idle_conns tests/bench/idle_conns.c $(pkg-config --cflags --libs libevent openssl)
# shellcheck disable=SC2046
cc $BCFLAGS -Iinclude $(pkg-config --cflags $PKGS) -pthread -o $OUT/authz_bench \
  tests/bench/authz_bench.c $LIB_OBJS $(pkg-config --libs $PKGS) -ldl -pthread

# ---------- inputs ----------
certs-dev/gen.sh "$OUT/certs" >/dev/null 2>&1 || die "certs-dev/gen.sh failed"
cat "$OUT/certs/server.pem" "$OUT/certs/server.key" >"$OUT/certs/server-combined.pem"
node tests/bench/bodies.js "$IN" --fresh-tokens "$([ "$QUICK" = 1 ] && echo 1000 || echo 4000)" >"$WORK/bodies.json"
TOKEN=$(cat "$IN/token.txt")
ABS_IN=$(cd "$IN" && pwd)
ABS_CERTS=$(cd "$OUT/certs" && pwd)

# ---------- targets ----------
declare -A PORT=() TRANSPORT=() AUTH=() ADMIN=()
read -r UP_PORT UP_STATS P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 A1 A2 A3 A4 A5 A6 A7 A8 MTLS_PORT H2C_PORT \
  <<<"$(free_ports 24)"
PORT=([direct]=$UP_PORT [nghttpx]=$P1 [haproxy]=$P2 [tgate-off]=$P3 [tgate-auth]=$P4
  [nghttpx-tls]=$P5 [haproxy-tls]=$P6 [tgate-auth-tls]=$P7 [tgate-auth-w2]=$P8
  [base-auth]=$P9 [base-auth-tls]=$P10 [tgate-auth-bp]=$P11 [tgate-auth-tls-bp]=$P12)
ADMIN=([tgate-off]=$A1 [tgate-auth]=$A2 [tgate-auth-tls]=$A3 [tgate-auth-w2]=$A4
  [base-auth]=$A5 [base-auth-tls]=$A6 [tgate-auth-bp]=$A7 [tgate-auth-tls-bp]=$A8)
for t in direct nghttpx haproxy tgate-off tgate-auth tgate-auth-w2 base-auth tgate-auth-bp; do TRANSPORT[$t]=h2c; done
for t in nghttpx-tls haproxy-tls tgate-auth-tls base-auth-tls tgate-auth-tls-bp; do TRANSPORT[$t]=tls; done
for t in direct nghttpx haproxy tgate-off nghttpx-tls haproxy-tls; do AUTH[$t]=none; done
for t in tgate-auth tgate-auth-tls tgate-auth-w2 base-auth base-auth-tls tgate-auth-bp tgate-auth-tls-bp; do
  AUTH[$t]=jwt+enforce
done

# tgate_config NAME PORT ADMIN WORKERS AUTH(0|1) TLS(0|1) [BUSY_POLL]
tgate_config() {
  local f="$WORK/$1.yaml"
  {
    echo "listen:"
    echo "  address: \"127.0.0.1:$2\""
    if [ "$6" = 1 ]; then
      echo "  tls:"
      echo "    cert_file: \"$ABS_CERTS/server.pem\""
      echo "    key_file: \"$ABS_CERTS/server.key\""
      echo "    client_ca_file: \"$ABS_CERTS/ca.pem\""
      echo "    require_client_cert: false"
    fi
    echo "upstream:"
    echo "  addresses: [\"127.0.0.1:$UP_PORT\"]"
    echo "admin:"
    echo "  address: \"127.0.0.1:$3\""
    echo "workers: $4"
    echo "shutdown_grace_period: 2s"
    [ -n "${7:-}" ] && echo "busy_poll: $7"
    if [ "$5" = 1 ]; then
      cat <<EOF
authentication:
  require: [jwt]
  jwt:
    key_sources: ["pem:$ABS_IN/jwt-rs.pub.pem#bench-rs", "pem:$ABS_IN/jwt-es.pub.pem#bench-es"]
    issuer: "https://issuer.bench.local"
    audience: temporal
authorization:
  mode: enforce
  disabled_methods: ["WorkflowService/TerminateWorkflowExecution"]
  rules:
    - effect: deny
      methods: ["@admin"]
      namespaces: ["prod-*"]
    - effect: allow
      methods: ["@worker"]
      namespaces: ["bench"]
      subjects: ["bench-worker-*"]
      task_queues: ["bench-*"]
    - effect: deny
      methods: ["WorkflowService/StartWorkflowExecution"]
      namespaces: ["bench"]
      workflow_types: ["Forbidden*"]
EOF
    else
      echo "authorization:"
      echo "  mode: off"
    fi
    echo "logging:"
    echo "  level: warn"
  } >"$f"
  echo "$f"
}

haproxy_config() { # NAME PORT TLS(0|1)
  local f="$WORK/$1.cfg" bind
  if [ "$3" = 1 ]; then
    bind="bind 127.0.0.1:$2 ssl crt $ABS_CERTS/server-combined.pem alpn h2"
  else
    bind="bind 127.0.0.1:$2 proto h2"
  fi
  cat >"$f" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  $bind
  default_backend be
backend be
  http-reuse always
  server up 127.0.0.1:$UP_PORT proto h2
EOF
  echo "$f"
}

start_target() {
  local t=$1 p=${PORT[$1]}
  case $t in
  direct) ;;
  nghttpx)
    # --conf: not /etc/nghttpx/nghttpx.conf (Debian's adds a frontend and syslog)
    : >"$WORK/nghttpx.conf"
    start_bg "$t" nghttpx --conf="$WORK/nghttpx.conf" "-f127.0.0.1,$p;no-tls" "-b127.0.0.1,$UP_PORT;;proto=h2" -n1 --no-ocsp \
      --errorlog-file="$WORK/$t.err"
    ;;
  nghttpx-tls)
    : >"$WORK/nghttpx.conf"
    start_bg "$t" nghttpx --conf="$WORK/nghttpx.conf" "-f127.0.0.1,$p" "-b127.0.0.1,$UP_PORT;;proto=h2" -n1 --no-ocsp \
      --errorlog-file="$WORK/$t.err" "$ABS_CERTS/server.key" "$ABS_CERTS/server.pem"
    ;;
  haproxy) start_bg "$t" haproxy -db -f "$(haproxy_config "$t" "$p" 0)" ;;
  haproxy-tls) start_bg "$t" haproxy -db -f "$(haproxy_config "$t" "$p" 1)" ;;
  tgate-off) start_bg "$t" build/tgate -c "$(tgate_config "$t" "$p" "${ADMIN[$t]}" 1 0 0)" ;;
  tgate-auth) start_bg "$t" build/tgate -c "$(tgate_config "$t" "$p" "${ADMIN[$t]}" 1 1 0)" ;;
  tgate-auth-tls) start_bg "$t" build/tgate -c "$(tgate_config "$t" "$p" "${ADMIN[$t]}" 1 1 1)" ;;
  tgate-auth-w2) start_bg "$t" build/tgate -c "$(tgate_config "$t" "$p" "${ADMIN[$t]}" 2 1 0)" ;;
  tgate-auth-bp) start_bg "$t" build/tgate -c "$(tgate_config "$t" "$p" "${ADMIN[$t]}" 1 1 0 50us)" ;;
  tgate-auth-tls-bp) start_bg "$t" build/tgate -c "$(tgate_config "$t" "$p" "${ADMIN[$t]}" 1 1 1 50us)" ;;
  base-auth) start_bg "$t" "$BASE_BIN" -c "$(tgate_config "$t" "$p" "${ADMIN[$t]}" 1 1 0)" ;;
  base-auth-tls) start_bg "$t" "$BASE_BIN" -c "$(tgate_config "$t" "$p" "${ADMIN[$t]}" 1 1 1)" ;;
  *) die "unknown target $t" ;;
  esac
  if [ "$t" != direct ]; then
    wait_port "$p" "$t"
    [ -n "${ADMIN[$t]:-}" ] && wait_ready "${ADMIN[$t]}" "$t"
  fi
  return 0
}

upstream_total() {
  curl -s --max-time 5 "http://127.0.0.1:$UP_STATS/count" | sed -n 's/.*"total":\([0-9]*\).*/\1/p'
}

url() { # TARGET METHOD
  local scheme=http
  [ "${TRANSPORT[$1]}" = tls ] && scheme=https
  echo "$scheme://127.0.0.1:${PORT[$1]}$SVC/$2"
}

# h2load_run TARGET METHOD BODYFILE N C M OUTFILE LOGFILE [no-token]
h2load_run() {
  local auth=(-H "authorization: Bearer $TOKEN")
  [ "${9:-}" = no-token ] && auth=()
  timeout 600 h2load -t 1 -n "$4" -c "$5" -m "$6" -N 10 \
    -H 'content-type: application/grpc' -H 'te: trailers' "${auth[@]}" \
    -d "$3" ${8:+--log-file="$8"} "$(url "$1" "$2")" >"$7" 2>&1 || true
}

declare -A BODY_FILE=([describe]="$IN/describe.bin" [start]="$IN/start.bin")
declare -A BODY_METHOD=([describe]=DescribeNamespace [start]=StartWorkflowExecution)

# measure TARGET SHAPE BODY REP: one h2load run, appended to runs.jsonl
measure() {
  local t=$1 shape=$2 body=$3 rep=$4 n c m pid c0 c1 u0 u1 n0 n1
  if [ "$shape" = lat ]; then n=$LAT_N c=1 m=1; else n=$N c=$C m=$M; fi
  pid=${PID[$t]:-}
  [ "$t" = direct ] && pid=
  n0=$(upstream_total)
  u0=$(cpu_ticks "${PID[upstream]}")
  c0=0
  [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
  h2load_run "$t" "${BODY_METHOD[$body]}" "${BODY_FILE[$body]}" "$n" "$c" "$m" \
    "$WORK/h2load.out" "$WORK/h2load.log"
  c1=0
  [ -n "$pid" ] && c1=$(cpu_ticks "$pid")
  u1=$(cpu_ticks "${PID[upstream]}")
  n1=$(upstream_total)
  node tests/bench/stats.js run "$WORK/h2load.out" "$WORK/h2load.log" \
    target="$t" transport="${TRANSPORT[$t]}" auth="${AUTH[$t]}" shape="$shape" body="$body" \
    rep="$rep" connections="$c" streams="$m" \
    proxy_cpu_s="$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN { printf "%.2f", (b - a) / t }')" \
    upstream_cpu_s="$(awk -v a="$u0" -v b="$u1" -v t="$TCK" 'BEGIN { printf "%.2f", (b - a) / t }')" \
    upstream_calls=$((n1 - n0)) >>"$WORK/runs.jsonl"
  rm -f "$WORK/h2load.log"
  tail -1 "$WORK/runs.jsonl" | node -e '
    const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const ok = r.succeeded === r.requests && r.upstream_calls === r.succeeded;
    console.error(`  ${r.target.padEnd(15)} ${r.shape} ${r.body.padEnd(8)} rep ${r.rep}: ` +
      `${Math.round(r.req_s)} calls/s p50 ${r.p50_us} us p99 ${r.p99_us} us cpu ${r.proxy_cpu_s} s ` +
      `upstream ${r.upstream_calls}/${r.succeeded}${ok ? "" : " FAILED"}`);'
}

# ---------- load ----------
: >"$WORK/runs.jsonl"
CHECKS=()
if has "$PARTS" load; then
  start_bg upstream "$OUT/fast_upstream" -p "$UP_PORT" -s "$UP_STATS"
  wait_port "$UP_PORT" upstream
  wait_port "$UP_STATS" upstream
  for t in $TARGETS; do start_target "$t"; done
  log "targets up: $TARGETS"

  # A real gRPC client through every target: the responses decode.
  for t in $TARGETS; do
    tls=()
    [ "${TRANSPORT[$t]}" = tls ] && tls=(--tls "$ABS_CERTS/ca.pem")
    timeout 30 node tests/bench/check.js "127.0.0.1:${PORT[$t]}" "$IN" "${tls[@]}" >"$WORK/check-$t.json" ||
      die "gRPC check through $t failed: $(cat "$WORK/check-$t.json")"
  done
  log "a @grpc/grpc-js call of each method through every target decodes"

  # Authentication and authorization are really on: calls without a token, or
  # for a namespace the token grants nothing on, never reach the upstream.
  for t in tgate-auth tgate-auth-tls tgate-auth-w2 base-auth base-auth-tls tgate-auth-bp tgate-auth-tls-bp; do
    has "$TARGETS" "$t" || continue
    n0=$(upstream_total)
    h2load_run "$t" DescribeNamespace "$IN/describe.bin" 100 1 10 "$WORK/probe.out" "" no-token
    h2load_run "$t" DescribeNamespace "$IN/describe-other.bin" 100 1 10 "$WORK/probe.out" ""
    n1=$(upstream_total)
    h2load_run "$t" DescribeNamespace "$IN/describe.bin" 100 1 10 "$WORK/probe.out" ""
    n2=$(upstream_total)
    [ $((n1 - n0)) = 0 ] || die "$t let $((n1 - n0)) unauthenticated or unauthorized calls through"
    [ $((n2 - n1)) = 100 ] || die "$t let only $((n2 - n1)) of 100 authorized calls through"
    CHECKS+=("$t: 0 of 200 calls without a token or for namespace 'other' reached the upstream; 100 of 100 authorized did")
  done
  log "enforcement checked: ${CHECKS[*]:-none}"

  log "warm-up"
  for t in $TARGETS; do
    for body in describe start; do
      h2load_run "$t" "${BODY_METHOD[$body]}" "${BODY_FILE[$body]}" 20000 8 8 "$WORK/warmup.out" ""
      grep -q ' 20000 succeeded' "$WORK/warmup.out" || { cat "$WORK/warmup.out" >&2; die "warm-up of $t failed"; }
    done
  done

  log "load: $REPS rep(s); lat = 1x1 x $LAT_N calls, hc = ${C}x$M x $N calls"
  for rep in $(seq "$REPS"); do
    for shape in lat hc; do
      for body in describe start; do
        for t in $TARGETS; do
          [ "$shape" = lat ] && [ "$t" = tgate-auth-w2 ] && continue
          [ "$shape" = hc ] && [[ "$t" == *-bp ]] && continue
          measure "$t" "$shape" "$body" "$rep"
        done
      done
    done
  done

  PERF_T=${BENCH_PERF_TARGET:-tgate-auth}
  if [ "${BENCH_PERF:-0}" = 1 ] && has "$TARGETS" "$PERF_T" && command -v perf >/dev/null; then
    log "perf: profile of $PERF_T, syscalls per call of the targets run (extra hc runs, not in the table)"
    {
      echo "# perf, hc StartWorkflowExecution (${C}x$M, $N calls), extra runs not in the table"
      for t in $TARGETS; do
        pids=$(tree_pids "${PID[$t]}" | paste -sd, -)
        perf stat -e raw_syscalls:sys_enter,context-switches -p "$pids" -o "$WORK/perf-stat-$t.txt" \
          >/dev/null 2>&1 &
        stat_pid=$!
        STARTED[$stat_pid]=1
        rec_pid=
        if [ "$t" = "$PERF_T" ]; then
          perf record -F 999 -g -o "$WORK/perf.data" -p "$pids" >"$WORK/perf-record.log" 2>&1 &
          rec_pid=$!
          STARTED[$rec_pid]=1
        fi
        sleep 0.5
        h2load_run "$t" StartWorkflowExecution "$IN/start.bin" "$N" "$C" "$M" "$WORK/perf-h2load.out" ""
        for p in $stat_pid $rec_pid; do
          kill -INT "$p" 2>/dev/null || true
          wait "$p" 2>/dev/null || true
          unset "STARTED[$p]"
        done
        calls=$(sed -n 's/.* \([0-9]*\) succeeded.*/\1/p' "$WORK/perf-h2load.out")
        awk -v t="$t" -v n="${calls:-0}" '
          /raw_syscalls:sys_enter/ { gsub(",", "", $1); s = $1 }
          /context-switches/ { gsub(",", "", $1); c = $1 }
          END { if (n > 0) printf "## %s: %d calls, %.2f syscalls/call, %.3f context switches/call\n", t, n, s / n, c / n }
        ' "$WORK/perf-stat-$t.txt"
      done
      echo "## $PERF_T: self time, top 40 (perf record -g -F 999)"
      perf report -i "$WORK/perf.data" --no-children -g none --stdio --sort dso,symbol 2>/dev/null |
        awk '/^ +[0-9]/ && n++ < 40'
      echo "## $PERF_T: inclusive (children), top 40"
      perf report -i "$WORK/perf.data" --children -g none --stdio --sort symbol 2>/dev/null |
        awk '/^ +[0-9]/ && n++ < 40'
    } >"$OUT/perf-$DATE.txt"
    log "profile in $OUT/perf-$DATE.txt"
  fi

  for t in $TARGETS; do stop_named "$t"; done
  stop_named upstream
fi

# ---------- micro ----------
echo null >"$WORK/micro.json"
if has "$PARTS" micro; then
  log "micro-benchmark: openssl speed -seconds $SPEED_S rsa2048 ecdsap256"
  openssl speed -seconds "$SPEED_S" rsa2048 ecdsap256 >"$WORK/openssl-speed.txt" 2>/dev/null ||
    die "openssl speed failed"
  # "rsa 2048 bits 0.000021s 0.000001s 1234.5 45678.9": sign/s, verify/s last
  rsa_v=$(awk '/^rsa +2048 bits/ { print $NF }' "$WORK/openssl-speed.txt" | tail -1)
  ec_v=$(awk '/^ *256 bits ecdsa/ { print $NF }' "$WORK/openssl-speed.txt" | tail -1)
  log "micro-benchmark: authz_bench ($MICRO_S CPU s per run)"
  micro=$("$OUT/authz_bench" "$IN" "$MICRO_S") || die "authz_bench failed"
  printf '{"results":%s,"openssl_speed":{"seconds":%s,"rsa2048_verify_s":%s,"ecdsap256_verify_s":%s}}\n' \
    "$micro" "$SPEED_S" "${rsa_v:-null}" "${ec_v:-null}" >"$WORK/micro.json"
fi

# ---------- rss ----------
echo null >"$WORK/rss.json"
if has "$PARTS" rss; then
  need=$((CONNS + 256))
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    log "the open-files hard limit is $hard: memory test with $((hard - 256)) connections instead of $CONNS"
    CONNS=$((hard - 256))
    need=$((CONNS + 256))
  fi
  ulimit -n "$need"
  start_bg rss-upstream "$OUT/fast_upstream" -p "$UP_PORT" -s "$UP_STATS"
  wait_port "$UP_PORT" rss-upstream

  # rss_run KIND PORT IDLE_CONNS_ARGS...: writes "KIND ready R failed F
  # [timeout] BEFORE AFTER" to $WORK/rss-KIND.txt (not run in a subshell, so
  # the processes it starts stay known to cleanup)
  rss_run() {
    local kind=$1 port=$2 cfg pid before after line i
    shift 2
    cfg="$WORK/tgate-$kind.yaml"
    {
      echo "listen:"
      echo "  address: \"127.0.0.1:$port\""
      if [ "$kind" = mtls ]; then
        echo "  tls:"
        echo "    cert_file: \"$ABS_CERTS/server.pem\""
        echo "    key_file: \"$ABS_CERTS/server.key\""
        echo "    client_ca_file: \"$ABS_CERTS/ca.pem\""
        echo "    require_client_cert: true"
      fi
      echo "upstream:"
      echo "  addresses: [\"127.0.0.1:$UP_PORT\"]"
      echo "workers: 1"
      echo "shutdown_grace_period: 2s"
      if [ "$kind" = mtls ]; then
        echo "authentication:"
        echo "  require: [client_cert]"
        echo "  client_certs:"
        echo "    - match: { uri_san: \"spiffe://tgate.dev/ns/{ns}/*\" }"
        echo "      permissions: [\"{ns}:worker\"]"
        echo "authorization:"
        echo "  mode: enforce"
      fi
      echo "logging:"
      echo "  level: warn"
    } >"$cfg"
    start_bg "tgate-$kind" build/tgate -c "$cfg"
    pid=${PID[tgate-$kind]}
    wait_port "$port" "tgate-$kind"
    sleep 1
    before=$(rss_kib "$pid")
    start_bg "idle-$kind" "$OUT/idle_conns" -p "$port" -n "$CONNS" -t 120 -H 300 "$@"
    line=
    for i in $(seq 1300); do
      line=$(grep -m1 '^ready' "$WORK/idle-$kind.log" || true)
      [ -n "$line" ] && break
      kill -0 "${PID[idle-$kind]}" 2>/dev/null || break
      sleep 0.1
    done
    sleep 2
    after=$(rss_kib "$pid")
    stop_named "idle-$kind"
    stop_named "tgate-$kind"
    echo "$kind ${line:-none} $before $after" >"$WORK/rss-$kind.txt"
  }
  log "memory: $CONNS idle mTLS connections"
  rss_run mtls "$MTLS_PORT" -a "$ABS_CERTS/ca.pem" -c "$ABS_CERTS/worker-a.pem" -k "$ABS_CERTS/worker-a.key"
  log "memory: $CONNS idle h2c connections"
  rss_run h2c "$H2C_PORT" -x
  mtls=$(cat "$WORK/rss-mtls.txt")
  h2c=$(cat "$WORK/rss-h2c.txt")
  stop_named rss-upstream
  node -e '
    const conns = Number(process.argv[1]);
    const parse = (s) => {
      // "KIND ready R failed F [timeout] BEFORE AFTER"
      const f = s.trim().split(/\s+/);
      const ready = f[1] === "ready" ? Number(f[2]) : 0;
      const before = Number(f[f.length - 2]), after = Number(f[f.length - 1]);
      const ok = ready === conns;
      return { requested: conns, ready, rss_before_kib: before, rss_after_kib: after,
        kib_per_conn: ready ? (after - before) / ready : null, ok,
        problem: ok ? undefined : `only ${ready} of ${conns} connections became ready (${s.trim()})` };
    };
    const mtls = parse(process.argv[2]), h2c = parse(process.argv[3]);
    console.log(JSON.stringify({ mtls, h2c, mtls_kib_per_conn: mtls.ok ? mtls.kib_per_conn : null }));
  ' "$CONNS" "$mtls" "$h2c" >"$WORK/rss.json"
fi

# ---------- report ----------
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
BENCH_DATE=$DATE BENCH_COMMIT=$COMMIT BENCH_TARGET_LIST="$TARGETS" BENCH_CHECKS="$(printf '%s\n' "${CHECKS[@]:-}")" \
  BENCH_VERSIONS="$(h2load --version | head -1); $(nghttpx --version | head -1); $(haproxy -v 2>/dev/null | head -1 | cut -d' ' -f1-3); $(openssl version)" \
  BENCH_SETTINGS="N=$N LAT_N=$LAT_N C=$C M=$M REPS=$REPS CONNS=$CONNS QUICK=$QUICK" \
  node -e '
    const e = process.env;
    const bodies = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(JSON.stringify({
      date: e.BENCH_DATE, commit: e.BENCH_COMMIT, cpus: require("os").cpus().length,
      versions: e.BENCH_VERSIONS, settings: e.BENCH_SETTINGS,
      targets: e.BENCH_TARGET_LIST.trim().split(/\s+/),
      enforcement_checks: e.BENCH_CHECKS.split("\n").filter(Boolean),
      bodies: { describe: `DescribeNamespace (${bodies.describe_bytes} B on the wire)`,
        start: `StartWorkflowExecution (${bodies.start_bytes} B on the wire)` },
      shapes: { lat: "h2load -c 1 -m 1 (latency)", hc: `h2load -c ${e.BENCH_SETTINGS.match(/C=(\d+)/)[1]} -m ${e.BENCH_SETTINGS.match(/M=(\d+)/)[1]} (throughput)` },
      notes: [
        `Client: h2load -t 1 with the same flags for every target (${e.BENCH_SETTINGS}); medians over the repetitions, runs interleaved across targets after a warm-up.`,
        "Transports: direct, nghttpx, haproxy, tgate-off, tgate-auth(-w2) are h2c end to end; *-tls rows terminate TLS 1.3 (h2 by ALPN, no client cert), upstream h2c.",
        "tgate-auth = JWT RS256 (pem: key, one repeated token) + authorization enforce with rules; tgate-off = neither. tgate workers: 1 (w2: 2); -bp rows: busy_poll: 50us (1x1 only; HAProxy has its own busy-polling, not enabled here; nghttpx has none). nghttpx -n1, HAProxy nbthread 1.",
        "xngx: ratio to nghttpx on the same transport; xdir: ratio to direct; +p50: p50 added over direct (us); CPUs/100k: CPU seconds of the proxy (process tree) per 100k calls; upCPU: the same for the upstream.",
        `The box has ${require("os").cpus().length} cores shared by h2load, the proxy and the upstream: throughput is bounded by that, CPU/100k is the steadier figure.`,
      ].join("\n"),
    }));' "$WORK/bodies.json" >"$WORK/meta.json"

rc=0
node tests/bench/stats.js report "$WORK/runs.jsonl" "$WORK/micro.json" "$WORK/rss.json" "$WORK/meta.json" "$RESULTS" |
  tee "$OUT/results-$DATE.txt" || rc=$?
log "results: $RESULTS (table: $OUT/results-$DATE.txt; logs: $WORK)"
exit "$rc"
