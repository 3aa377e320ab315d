#!/usr/bin/env bash
# PostgreSQL alone, quickly (issue 13, docs/PERFORMANCE.md): the
# `pg-queued` and `pg-2-nodes` scenarios of bench/ingest.sh without the
# rest, for trying a change to the PostgreSQL backend.
#   queued   hookflow serve --workers 0 on a fresh schema, 1 matching rule,
#            wrk (2 threads, 32 connections) posting signed 2.2 KB pushes
#   2 nodes  the runs it queued, executed by two nodes with 16 workers each
#            against the bare axum baseline's /sink; timed to an empty queue
#            (at most 120 s: runs still unfinished then are listed)
# Usage: bench/pg.sh [seconds, default 10]
# PostgreSQL: HOOKFLOW_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432/test)
# Another build to compare: HOOKFLOW_BIN (default target/release/hookflow)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/push.sh
DURATION=${1:-10}
PG=${HOOKFLOW_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q
cargo bench --bench baseline --no-run -q 2>/dev/null
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BIN=${HOOKFLOW_BIN:-$TARGET/release/hookflow}
BASELINE=$(ls -t "$TARGET"/release/deps/baseline-* | grep -v '\.d$' | head -1)
WORK=$(mktemp -d)
SCHEMA=hf_pg_bench_$$
export PGOPTIONS=--client-min-messages=warning
psql -q "$PG" -c "CREATE SCHEMA $SCHEMA"
trap 'kill $(jobs -p) 2>/dev/null || true; psql -q "$PG" -c "DROP SCHEMA $SCHEMA CASCADE" >/dev/null; rm -rf "$WORK"' EXIT
URL="$PG?options=-csearch_path%3D$SCHEMA"
mkdir -p "$WORK/rules"
cat > "$WORK/rules/rules.yaml" <<YAML
sources:
  github: { verify: { github: { secret: bench-secret } } }
rules:
  - { name: r0, source: github, event: push, actions: [ { http: { url: 'http://127.0.0.1:18081/sink' } } ] }
YAML
push_lua benches/payloads/github-push-2k.json "$WORK/post.lua"
"$BASELINE" 18081 >/dev/null 2>&1 &
# start PORT ADMIN WORKERS: a node on the schema; sets NODE to its pid.
start() {
  (cd "$WORK" && exec "$BIN" serve --listen "127.0.0.1:$1" --admin-listen "127.0.0.1:$2" \
    --rules rules --db "$URL" --workers "$3" >>"$WORK/serve.log" 2>&1) &
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && break; sleep 0.1; done
  NODE=$(pgrep -f "hookflow serve --listen 127.0.0.1:$1" | head -1)
  [ -n "$NODE" ] || { tail -5 "$WORK/serve.log"; exit 1; }
}
# CPU ticks of the PostgreSQL server (every process of its user).
pgcpu() { for p in $(pgrep -u postgres); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
pending() { psql -qtA "$PG" -c "SELECT count(*) FROM $SCHEMA.runs WHERE status IN ('queued', 'running')"; }

start 18080 19090 0
C0=$(awk '{print $14 + $15}' "/proc/$NODE/stat"); P0=$(pgcpu)
OUT=$(wrk -t2 -c32 -d"${DURATION}s" --latency -s "$WORK/post.lua" http://127.0.0.1:18080)
C1=$(awk '{print $14 + $15}' "/proc/$NODE/stat"); P1=$(pgcpu)
kill "$NODE"; while kill -0 "$NODE" 2>/dev/null; do sleep 0.1; done
TOTAL=$(awk '/requests in/ {print $1}' <<<"$OUT")
TICK=$(getconf CLK_TCK)
printf 'queued   %s req/s, p50 %s, p99 %s, CPU per request: hookflow %sus, PostgreSQL %sus\n' \
  "$(awk '/Requests\/sec/ {print $2}' <<<"$OUT")" "$(awk '$1 == "50%" {print $2}' <<<"$OUT")" \
  "$(awk '$1 == "99%" {print $2}' <<<"$OUT")" "$(( (C1 - C0) * 1000000 / TICK / TOTAL ))" \
  "$(( (P1 - P0) * 1000000 / TICK / TOTAL ))"

QUEUED=$(pending)
start 18082 19091 16
start 18084 19092 16
T0=$(date +%s.%N); P0=$(pgcpu)
DEADLINE=$((SECONDS + 120))
while [ "$(pending)" -gt 0 ] && [ $SECONDS -lt $DEADLINE ]; do sleep 0.2; done
T1=$(date +%s.%N); P1=$(pgcpu)
LEFT=$(pending)
if [ "$LEFT" -gt 0 ]; then
  # Stranded runs: say what they are before the schema is dropped.
  echo "$LEFT runs unfinished after 120 s (status, leased, attempt, step, count):" >&2
  psql -qtA "$PG" -c "SET search_path = $SCHEMA; $UNFINISHED_RUNS" >&2
  grep -E " (WARN|ERROR) " "$WORK/serve.log" | tail -20 >&2 || true
  QUEUED=$((QUEUED - LEFT))
fi
printf '2 nodes  %s runs in %.1f s: %.0f actions/s, PostgreSQL CPU %sus/run\n' "$QUEUED" \
  "$(echo "$T1 - $T0" | bc -l)" "$(echo "$QUEUED / ($T1 - $T0)" | bc -l)" \
  "$(( (P1 - P0) * 1000000 / TICK / QUEUED ))"
