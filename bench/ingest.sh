#!/usr/bin/env bash
# Ingest load benchmark (issue 7, docs/PERFORMANCE.md). One run, one load
# generator (wrk, 2 threads, 32 connections), one signed 2 KB GitHub push:
#   baseline   a bare axum handler (HMAC + JSON parse + 202), benches/baseline.rs
#   no-match   hookflow, 10 rules, none for this delivery
#   queued     hookflow, 1 of 10 rules matches, run queued durably, workers: 0
#   executed   the same with 16 workers running each run against a loopback sink
#   10k-rules  10,000 rules over 100 sources, 1 matching, workers: 0
#   1k-rss     1,000 rules, 1 matching, runs executed: peak RSS under full load
# then `queued` again at half its max rate (p99 target), and the runs the
# `queued` scenario left behind executed by a fresh `hookflow serve` with 16
# workers: end-to-end actions/s to the loopback sink.
# Printed per scenario: req/s, p50/p99 latency, ratio to the baseline (or
# to `queued` for 10k-rules), server CPU per request, peak RSS.
# Usage: bench/ingest.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${CONNECTIONS:-32}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q
cargo bench --bench baseline --no-run -q 2>/dev/null
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BASELINE=$(ls -t "$TARGET"/release/deps/baseline-* | grep -v '\.d$' | head -1)
BIN=$TARGET/release/hookflow
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
TICKS=$(getconf CLK_TCK)

BODY=${BODY:-benches/payloads/github-push-2k.json}
SIG=$(openssl dgst -sha256 -hmac bench-secret -hex < "$BODY" | awk '{print $NF}')
# post.lua; DELAY_MS (per connection, between requests) sets a fixed rate.
write_lua() {
  cat > "$WORK/post.lua" <<LUA
local f = io.open("$PWD/$BODY", "rb"); local body = f:read("*a"); f:close()
-- A delivery id unique across wrk's threads (their random seeds are equal).
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/hooks/github", {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = "bench-" .. tid .. "-" .. n,
    ["X-Hub-Signature-256"] = "sha256=$SIG",
  }, body)
end
LUA
  if [ -n "${1:-}" ]; then echo "delay = function() return $1 end" >> "$WORK/post.lua"; fi
}

# rules DIR TOTAL MATCHING: TOTAL rules over 100 sources (`github` is the
# hundredth); MATCHING of them match the push. The github source's other rules
# are on other events, so the (github, push) bucket stays the same size, as in
# `cargo bench --bench matching`: what grows is other sources' and events'.
write_rules() {
  local dir=$1 total=$2 matching=$3
  mkdir -p "$dir"
  {
    echo "sources:"
    echo "  github: { verify: { github: { secret: bench-secret } } }"
    for s in $(seq 1 99); do echo "  s$s: { verify: { github: { secret: bench-secret } } }"; done
    echo "rules:"
    for i in $(seq 0 $((total - 1))); do
      if [ "$i" -lt "$matching" ]; then src=github; event=push
      elif [ $((i % 100)) -eq 0 ]; then src=github; event=issues-$i
      else src=s$((i % 100)); event=push; fi
      echo "  - { name: r$i, source: $src, event: $event, when: { path: \$.ref, equals: refs/heads/master }, actions: [ { http: { url: 'http://127.0.0.1:18081/sink' } } ] }"
    done
  } > "$dir/rules.yaml"
}

run_wrk() { wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$1" 2>&1; }
rps() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
total() { awk '/requests in/ {print $1}' <<<"$1"; }
pct() { awk -v p="$2" '$1 == p {print $2}' <<<"$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
row() { printf '%-12s %10s %9s %9s %7s %9s %9s\n' "$@"; }

write_lua
"$BASELINE" 18081 >/dev/null 2>&1 &
BPID=$!
sleep 1
C0=$(cpu_ticks $BPID)
OUT=$(run_wrk http://127.0.0.1:18081)
C1=$(cpu_ticks $BPID)
BASE_RPS=$(rps "$OUT")
row scenario req/s p50 p99 ratio cpu/req peak_rss
row baseline "$BASE_RPS" "$(pct "$OUT" 50%)" "$(pct "$OUT" 99%)" 1.00 \
  "$(( (C1 - C0) * 1000000 / TICKS / $(total "$OUT") ))us" -

# start DIR WORKERS: hookflow serve on DIR's rules and bench.db.
start() {
  (cd "$1" && exec "$BIN" serve --listen 127.0.0.1:18080 --rules rules \
    --db sqlite://bench.db --workers "$2" >/dev/null 2>&1) &
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done
  HPID=$(pgrep -f "hookflow serve --listen 127.0.0.1:18080" | head -1)
}
stop() { kill "$HPID" 2>/dev/null; while kill -0 "$HPID" 2>/dev/null; do sleep 0.1; done; }

# scenario NAME TOTAL MATCHING WORKERS [REFERENCE_RPS]
declare -A RPS
scenario() {
  local name=$1 total=$2 matching=$3 workers=$4 reference=${5:-$BASE_RPS}
  local dir="$WORK/$name"
  write_rules "$dir/rules" "$total" "$matching"
  start "$dir" "$workers"
  local c0; c0=$(cpu_ticks "$HPID")
  local out; out=$(run_wrk http://127.0.0.1:18080)
  local c1; c1=$(cpu_ticks "$HPID")
  local hwm; hwm=$(awk '/VmHWM/ {printf "%.1fMiB", $2/1024}' "/proc/$HPID/status")
  stop
  local r; r=$(rps "$out")
  RPS[$name]=$r
  row "$name" "$r" "$(pct "$out" 50%)" "$(pct "$out" 99%)" "$(printf '%.2f' "$(echo "$r / $reference" | bc -l)")" \
    "$(( (c1 - c0) * 1000000 / TICKS / $(total "$out") ))us" "$hwm"
}
scenario no-match 10 0 16
scenario queued 10 1 0
scenario executed 10 1 16
scenario 10k-rules 10000 1 0 "${RPS[queued]}"
scenario 1k-rss 1000 1 16

# `queued` at half its max rate: each connection waits between requests.
HALF=$(echo "${RPS[queued]} / 2" | bc -l)
write_lua "$(echo "$CONNECTIONS * 1000 / $HALF" | bc -l)"
dir="$WORK/half"
write_rules "$dir/rules" 10 1
start "$dir" 0
OUT=$(run_wrk http://127.0.0.1:18080)
stop
row "queued@half" "$(rps "$OUT")" "$(pct "$OUT" 50%)" "$(pct "$OUT" 99%)" \
  "$(printf '%.2f' "$(echo "$(rps "$OUT") / $BASE_RPS" | bc -l)")" - -

# End to end: the runs `queued` left behind, executed by 16 workers, each an
# http action to the baseline's /sink; timed from start to an empty queue.
dir="$WORK/queued"
queued=$(sqlite3 "$dir/bench.db" "SELECT count(*) FROM runs WHERE status = 'queued'" 2>/dev/null ||
  python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM runs WHERE status = 'queued'\").fetchone()[0])" "$dir/bench.db")
runs_done() { curl -sf http://127.0.0.1:18080/metrics | awk '/^hookflow_runs_total/ {s += $2} END {print s + 0}'; }
start "$dir" 16
t0=$(date +%s.%N)
before=$(runs_done)
while [ "$(runs_done)" -lt "$queued" ]; do sleep 0.05; done
t1=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {printf "%.1fMiB", $2/1024}' "/proc/$HPID/status")
stop
printf '\nend to end: %s queued runs executed (http to a loopback sink) in %.2fs = %.0f actions/s, peak RSS %s\n' \
  "$((queued - before))" "$(echo "$t1 - $t0" | bc -l)" "$(echo "($queued - $before) / ($t1 - $t0)" | bc -l)" "$hwm"
