#!/usr/bin/env bash
# Ingest load benchmark (issues 7, 13, 17; docs/PERFORMANCE.md). One run, one
# load generator (wrk, 2 threads, 32 connections), for each of two signed
# GitHub pushes (the 2.2 KB trimmed one and the 7.6 KB one made by octokit,
# benches/payloads/):
#   baseline    a bare axum handler (HMAC + JSON parse + 202), benches/baseline.rs
#   storage     the bare-storage limit: SQLite alone writing the same rows
#               (delivery + run, WAL, batches of 32), benches/storage_limit.rs;
#               synchronous NORMAL (hookflow's default) and FULL, and the
#               body compressed with lz4 as hookflow stores it
#   no-match    hookflow, 10 rules, none for this delivery
#   queued      hookflow, 1 of 10 rules matches, run queued durably, workers: 0
#   queued-full `queued` with synchronous=full: the WAL fsynced at every group
#               commit (survives power loss, not only kill -9)
#   executed    the same with 16 workers running each run against a loopback sink
#   10k-rules   10,000 rules over 100 sources, 1 matching, workers: 0
#   1k-rss      1,000 rules, 1 matching, runs executed: peak RSS under full load
#   queued@half `queued` at half its max rate (the p99 target)
#   end-to-end  the runs `queued` left behind, executed by a fresh `hookflow
#               serve` with 16 workers: actions/s to the loopback sink
#   pg-queued   `queued` on PostgreSQL (a fresh schema per run)
#   pg-2-nodes  the runs pg-queued left behind, executed by two nodes with 16
#               workers each: actions/s
# Printed per scenario: req/s, p50/p99 latency, ratio (to the baseline; to
# `queued` for 10k-rules and pg-queued), server CPU per request, peak RSS;
# then each target with PASS or MISS.
# Usage: bench/ingest.sh [seconds per run, default 10]   (3: a quick run)
# PostgreSQL: HOOKFLOW_BENCH_POSTGRES (default
# postgres://postgres@127.0.0.1:5432/test); set it to `off` to skip.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/push.sh
DURATION=${1:-10}
CONNECTIONS=${CONNECTIONS:-32}
PG=${HOOKFLOW_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
BODIES=${BODIES:-benches/payloads/github-push-2k.json benches/payloads/github-push.json}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
# PROFILE=debug checks the script itself quickly (its numbers mean nothing).
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release -q
  cargo bench --bench baseline --bench storage_limit --no-run -q 2>/dev/null
else
  cargo build -q --bin hookflow --bench baseline --bench storage_limit
fi
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
newest() { ls -t "$TARGET/$PROFILE/deps/$1"-* | grep -v '\.d$' | head -1; }
BASELINE=$(newest baseline)
STORAGE=$(newest storage_limit)
BIN=$TARGET/$PROFILE/hookflow
WORK=$(mktemp -d)
SCHEMA=hf_bench_$$_$(date +%s)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  if [ "$PG" != off ]; then psql -q "$PG" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
TICKS=$(getconf CLK_TCK)
export PGOPTIONS=--client-min-messages=warning
if [ "$PG" != off ] && ! psql -q "$PG" -c "CREATE SCHEMA $SCHEMA" >/dev/null 2>&1; then
  echo "PostgreSQL at $PG not reachable: its scenarios are skipped" >&2
  PG=off
fi
PG_URL="$PG?options=-csearch_path%3D$SCHEMA"

# post.lua for BODY; DELAY_MS (per connection, between requests) sets a fixed rate.
write_lua() { push_lua "$1" "$WORK/post.lua" "${2:-}"; }

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
# wrk's latency (850.00us, 3.70ms, 1.20s) in ms.
ms() { awk '{v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[0-9]s$/ && $1 !~ /ms$/) v *= 1000; print v}' <<<"$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
row() { printf '%-12s %10s %9s %9s %7s %9s %9s\n' "$@"; }
declare -a VERDICTS
verdict() { # NAME MEASURED OK(1/0) TARGET
  VERDICTS+=("$(printf '%-44s %-22s %-5s (target %s)' "$1" "$2" "$([ "$3" = 1 ] && echo PASS || echo MISS)" "$4")")
}
ge() { [ "$(echo "$1 >= $2" | bc -l)" = 1 ] && echo 1 || echo 0; }

# start DIR WORKERS [DB] [PORT] [ADMIN]: hookflow serve on DIR's rules.
start() {
  local dir=$1 workers=$2 db=${3:-sqlite://bench.db} port=${4:-18080} admin=${5:-19090}
  (cd "$dir" && exec "$BIN" serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --rules rules --db "$db" --workers "$workers" >>"$dir/serve.log" 2>&1) &
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  HPID=$(pgrep -f "hookflow serve --listen 127.0.0.1:$port" | head -1)
  if [ -z "$HPID" ]; then echo "hookflow serve did not start in $dir:" >&2; tail -5 "$dir/serve.log" >&2; exit 1; fi
}
stop() { kill "$1" 2>/dev/null; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }
# Runs finished (any outcome) per the metrics of the nodes on these admin ports.
runs_done() {
  local s=0 n
  for port in "$@"; do
    n=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^hookflow_runs_total/ {s += $2} END {print s + 0}')
    s=$((s + ${n:-0}))
  done
  echo "$s"
}

# scenario NAME TOTAL MATCHING WORKERS REFERENCE_RPS [DB]: one wrk run.
declare -A RPS P99 HWM
scenario() {
  local name=$1 total=$2 matching=$3 workers=$4 reference=$5 db=${6:-sqlite://bench.db}
  local dir="$WORK/$name"
  write_rules "$dir/rules" "$total" "$matching"
  start "$dir" "$workers" "$db"
  local c0; c0=$(cpu_ticks "$HPID")
  local out; out=$(run_wrk http://127.0.0.1:18080)
  local c1; c1=$(cpu_ticks "$HPID")
  local hwm; hwm=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$HPID/status")
  stop "$HPID"
  local r; r=$(rps "$out")
  RPS[$name]=$r; P99[$name]=$(pct "$out" 99%); HWM[$name]=$hwm
  row "$name" "$r" "$(pct "$out" 50%)" "$(pct "$out" 99%)" "$(ratio "$r" "$reference")" \
    "$(( (c1 - c0) * 1000000 / TICKS / $(total "$out") ))us" "${hwm}MiB"
}

# end_to_end NAME DIR DB NODES: the queued runs in DB executed by NODES fresh
# nodes with 16 workers each; prints and returns (E2E) actions/s.
end_to_end() {
  local name=$1 dir=$2 db=$3 nodes=$4 queued
  if [ "${db%%:*}" = sqlite ]; then
    queued=$(sqlite3 "$dir/bench.db" "SELECT count(*) FROM runs WHERE status = 'queued'")
  else
    queued=$(psql -qtA "$PG" -c "SELECT count(*) FROM $SCHEMA.runs WHERE status = 'queued'")
  fi
  local pids=() admins=()
  for n in $(seq "$nodes"); do
    start "$dir" 16 "$db" $((18080 + 2 * n)) $((19090 + n))
    pids+=("$HPID"); admins+=($((19090 + n)))
  done
  local t0; t0=$(date +%s.%N)
  local deadline=$((SECONDS + 120))
  while [ "$(runs_done "${admins[@]}")" -lt "$queued" ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  local t1; t1=$(date +%s.%N)
  local done_; done_=$(runs_done "${admins[@]}")
  local hwm; hwm=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/${pids[0]}/status")
  if [ "$done_" -lt "$queued" ]; then
    # The deadline passed with runs left: say what they are before the
    # schema and the logs are dropped.
    echo "$name: $((queued - done_)) runs unfinished at the deadline (status, leased, attempt, step, count):" >&2
    local left
    if [ "${db%%:*}" = sqlite ]; then left=$(sqlite3 "$dir/bench.db" "$UNFINISHED_RUNS")
    else left=$(psql -qtA "$PG" -c "SET search_path = $SCHEMA; $UNFINISHED_RUNS"); fi
    # None left in the database: the runs were done and the counter missed them.
    echo "${left:-none in the database: hookflow_runs_total undercounts}" >&2
    grep -E " (WARN|ERROR) " "$dir/serve.log" | tail -20 >&2 || true
  fi
  for p in "${pids[@]}"; do stop "$p"; done
  E2E=$(printf '%.0f' "$(echo "$done_ / ($t1 - $t0)" | bc -l)")
  printf '%-12s %s of %s queued runs executed (http to the loopback sink) in %.2fs: %s actions/s, peak RSS %sMiB\n' \
    "$name" "$done_" "$queued" "$(echo "$t1 - $t0" | bc -l)" "$E2E" "$hwm"
}

"$BASELINE" 18081 >/dev/null 2>&1 &
BPID=$!
sleep 1
for BODY in $BODIES; do
  size=$(wc -c < "$BODY")
  label="$size B"
  printf '\n== %s (%s bytes), %ss per run, %s connections ==\n' "$BODY" "$size" "$DURATION" "$CONNECTIONS"
  write_lua "$BODY"
  C0=$(cpu_ticks $BPID)
  OUT=$(run_wrk http://127.0.0.1:18081/hooks/github)
  C1=$(cpu_ticks $BPID)
  BASE_RPS=$(rps "$OUT")
  row scenario req/s p50 p99 ratio cpu/req peak_rss
  row baseline "$BASE_RPS" "$(pct "$OUT" 50%)" "$(pct "$OUT" 99%)" 1.00 \
    "$(( (C1 - C0) * 1000000 / TICKS / $(total "$OUT") ))us" -
  for mode in "normal" "full" "normal lz4"; do
    # shellcheck disable=SC2086
    line=$("$STORAGE" "$BODY" "$DURATION" $mode)
    rate=$(awk '{print $2}' <<<"$line")
    printf '%-12s %10s %19s %7s   bare SQLite, synchronous=%s, %s B body\n' storage "$rate" "" \
      "$(ratio "$rate" "$BASE_RPS")" "${mode/ lz4/ (lz4)}" "$(awk '{print $4}' <<<"$line")"
  done
  scenario no-match 10 0 16 "$BASE_RPS"
  scenario queued 10 1 0 "$BASE_RPS"
  scenario queued-full 10 1 0 "$BASE_RPS" "sqlite://bench.db?synchronous=full"
  scenario executed 10 1 16 "$BASE_RPS"
  scenario 10k-rules 10000 1 0 "${RPS[queued]}"
  scenario 1k-rss 1000 1 16 "$BASE_RPS"

  # `queued` at half its max rate: each connection waits between requests.
  HALF=$(echo "${RPS[queued]} / 2" | bc -l)
  write_lua "$BODY" "$(echo "$CONNECTIONS * 1000 / $HALF" | bc -l)"
  dir="$WORK/half"
  write_rules "$dir/rules" 10 1
  start "$dir" 0
  OUT=$(run_wrk http://127.0.0.1:18080)
  stop "$HPID"
  HALF_P99=$(pct "$OUT" 99%)
  row "queued@half" "$(rps "$OUT")" "$(pct "$OUT" 50%)" "$HALF_P99" "$(ratio "$(rps "$OUT")" "$BASE_RPS")" - -
  write_lua "$BODY"

  if [ "$PG" != off ]; then
    psql -q "$PG" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE; CREATE SCHEMA $SCHEMA" >/dev/null
    scenario pg-queued 10 1 0 "${RPS[queued]}" "$PG_URL"
  fi

  end_to_end end-to-end "$WORK/queued" sqlite://bench.db 1
  E2E_SQLITE=$E2E
  if [ "$PG" != off ]; then
    end_to_end pg-2-nodes "$WORK/pg-queued" "$PG_URL" 2
    E2E_PG=$E2E
  fi
  rm -rf "$WORK/queued" "$WORK/queued-full" "$WORK/pg-queued" "$WORK/executed" "$WORK/1k-rss" "$WORK/no-match" "$WORK/10k-rules" "$WORK/half"

  verdict "$label: queued ≥ 0.6 of baseline" "$(ratio "${RPS[queued]}" "$BASE_RPS")" "$(ge "$(ratio "${RPS[queued]}" "$BASE_RPS")" 0.6)" "0.60"
  verdict "$label: queued, synchronous=full, ≥ 0.6" "$(ratio "${RPS[queued-full]}" "$BASE_RPS")" "$(ge "$(ratio "${RPS[queued-full]}" "$BASE_RPS")" 0.6)" "0.60"
  verdict "$label: 10,000 rules ≥ 0.9 of 10 rules" "$(ratio "${RPS[10k-rules]}" "${RPS[queued]}")" "$(ge "$(ratio "${RPS[10k-rules]}" "${RPS[queued]}")" 0.9)" "0.90"
  verdict "$label: p99 at half rate ≤ 5 ms" "$HALF_P99" "$(ge 5 "$(ms "$HALF_P99")")" "5ms"
  verdict "$label: peak RSS at 1,000 rules ≤ 64 MiB" "${HWM[1k-rss]}MiB" "$(ge 64 "${HWM[1k-rss]}")" "64MiB"
  verdict "$label: end to end ≥ 10,000 actions/s" "$E2E_SQLITE/s" "$(ge "$E2E_SQLITE" 10000)" "10000/s"
  if [ "$PG" != off ]; then
    verdict "$label: PostgreSQL ingest ≥ 0.5 of SQLite" "$(ratio "${RPS[pg-queued]}" "${RPS[queued]}")" "$(ge "$(ratio "${RPS[pg-queued]}" "${RPS[queued]}")" 0.5)" "0.50"
    verdict "$label: PostgreSQL 2 nodes ≥ 3,000 actions/s" "$E2E_PG/s" "$(ge "$E2E_PG" 3000)" "3000/s"
  fi
done

printf '\n== targets ==\n'
printf '%s\n' "${VERDICTS[@]}"
