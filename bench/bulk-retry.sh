#!/usr/bin/env bash
# Bulk retry vs ingest (issue 14, docs/PERFORMANCE.md): "10,000 runs
# re-queued in batches without stalling ingest: ingest p99 during a
# 10,000-run bulk retry stays within 2x of its p99 without it."
#
# One `hookflow serve` on SQLite, restarted between phases. Seeds RUNS failed runs of rule
# `bulk` (each an http step to a closed loopback port, one attempt), then
# measures signed 2 KB GitHub pushes (rule `ingest`, its run queued and
# executed) at a fixed moderate rate with wrk (CONNECTIONS connections,
# each waiting DELAY_MS between requests) for DURATION seconds:
#   baseline   nothing else going on
#   api        POST /api/runs/retry {"rule": "bulk", "dry_run": false}
#              starts 1 s in (through the server's own writer)
#   cli        `hookflow retry --rule bulk --status failed` starts 1 s in
#              (a second process writing the same SQLite file)
# Both with no workers (the re-queue's own cost to ingest: the target) and
# with 16 (the retried runs executed, and failing again, meanwhile).
# Prints p50/p99 per phase, the retry's wall time, p99 / baseline p99 and
# PASS or MISS against 2x.
# Usage: bench/bulk-retry.sh [seconds per phase, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/push.sh
DURATION=${1:-10}
RUNS=${RUNS:-10000}
CONNECTIONS=${CONNECTIONS:-8}
DELAY_MS=${DELAY_MS:-20}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BIN=$TARGET/release/hookflow
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=18090 ADMIN=19090
DB=$WORK/bench.db

BODY=benches/payloads/github-push-2k.json
mkdir -p "$WORK/rules"
cat > "$WORK/rules/rules.yaml" <<YAML
sources:
  github: { verify: { github: { secret: bench-secret } } }
  seed: { verify: { token: { header: X-Seed, value: bench-seed-token } } }
rules:
  - name: ingest
    source: github
    event: push
    actions: [ { http: { url: 'http://127.0.0.1:1/ingest', retry: { attempts: 1 } } } ]
  - name: bulk
    source: seed
    actions: [ { http: { url: 'http://127.0.0.1:1/bulk', retry: { attempts: 1 } } } ]
YAML

# The measured load: signed pushes, unique delivery ids, DELAY_MS apart.
push_lua "$BODY" "$WORK/ingest.lua" "$DELAY_MS"
# The seed: RUNS deliveries to source `seed`, as fast as they go; each
# thread stops after its half.
cat > "$WORK/seed.lua" <<LUA
local done = 0
local limit = $((RUNS / 2))
request = function()
  return wrk.format("POST", "/hooks/seed", {
    ["Content-Type"] = "application/json", ["X-Seed"] = "bench-seed-token",
  }, "{}")
end
response = function(status)
  if status == 202 then done = done + 1 end
  if done >= limit then wrk.thread:stop() end
end
LUA

count() { sqlite3 "$DB" "PRAGMA busy_timeout = 5000; SELECT count(*) FROM runs WHERE $1" | tail -1; }
# wrk's latency in ms (it prints us, ms or s).
to_ms() { awk '{v = $1; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000}; printf "%.2f", v}' <<<"$1"; }
pct() { awk -v p="$2" '$1 == p {print $2}' <<<"$1"; }
rps() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
errors() { awk '/Non-2xx|Socket errors/' <<<"$1" | tr '\n' ' '; }
row() { printf '%-10s %9s %10s %10s %10s %7s  %s\n' "$@"; }

# serve WORKERS: (re)start the server on the same database.
SPID=
serve() {
  if [ -n "$SPID" ]; then kill "$SPID"; while kill -0 "$SPID" 2>/dev/null; do sleep 0.1; done; fi
  (cd "$WORK" && exec "$BIN" serve --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN \
    --rules rules --db "sqlite://$DB" --workers "$1" >>"$WORK/serve.log" 2>&1) &
  for _ in $(seq 300); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.1; done
  curl -sf http://127.0.0.1:$PORT/readyz >/dev/null || { tail "$WORK/serve.log"; exit 1; }
  SPID=$(pgrep -f "hookflow serve --listen 127.0.0.1:$PORT" | head -1)
}
settled() { [ "$(count "rule = 'bulk' AND status IN ('queued', 'running')")" -eq 0 ]; }
# fail_all: every bulk run executed (and failed) by 16 workers.
fail_all() { serve 16; until settled; do sleep 0.5; done; }

serve 16
t0=$(date +%s.%N)
# wrk's thread:stop() does not always end the run: watch the count instead.
wrk -t2 -c16 -d600s -s "$WORK/seed.lua" http://127.0.0.1:$PORT >/dev/null 2>&1 &
SEED=$!
until [ "$(count "rule = 'bulk'")" -ge "$RUNS" ]; do sleep 0.2; done
kill "$SEED" 2>/dev/null || true
wait "$SEED" 2>/dev/null || true
until settled; do sleep 0.5; done
FAILED=$(count "rule = 'bulk' AND status = 'failed'")
printf 'seeded %s failed runs of rule bulk in %.1fs\n' "$FAILED" "$(echo "$(date +%s.%N) - $t0" | bc -l)"
[ "$FAILED" -ge "$RUNS" ] || { echo "expected at least $RUNS failed runs"; exit 1; }

measure() { wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/ingest.lua" http://127.0.0.1:$PORT 2>&1; }
# phase NAME COMMAND...: the load for DURATION, COMMAND started 1 s in.
phase() {
  local name=$1; shift
  measure > "$WORK/$name.wrk" &
  local load=$!
  sleep 1
  local s0 s1; s0=$(date +%s.%N)
  "$@" > "$WORK/$name.out"
  s1=$(date +%s.%N)
  wait "$load"
  local out; out=$(cat "$WORK/$name.wrk")
  local p99; p99=$(to_ms "$(pct "$out" 99%)")
  local ratio; ratio=$(echo "$p99 / $BASE" | bc -l)
  local verdict=PASS
  [ "$(echo "$ratio <= 2" | bc -l)" -eq 1 ] || verdict=MISS
  row "$name" "$(rps "$out")" "$(to_ms "$(pct "$out" 50%)")" "$p99" \
    "$(printf '%.1f' "$(echo "$s1 - $s0" | bc -l)")" "$(printf '%.2f' "$ratio")" "$verdict $(errors "$out")"
  echo "  $name re-queued $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["runs"]))' "$WORK/$name.out") runs"
}

# Twice: with no workers, the bulk retry's own cost to ingest (the
# target); with 16, the re-queued runs are executed (and fail again) by the
# workers meanwhile, as after a real bulk retry.
for WORKERS in 0 16; do
  printf '\n== the server with %s workers ==\n' "$WORKERS"
  serve "$WORKERS"
  row phase req/s p50_ms p99_ms retry_s ratio result
  OUT=$(measure)
  BASE=$(to_ms "$(pct "$OUT" 99%)")
  row baseline "$(rps "$OUT")" "$(to_ms "$(pct "$OUT" 50%)")" "$BASE" - 1.00 "$(errors "$OUT")"
  phase api curl -sf -X POST -H 'content-type: application/json' \
    -d '{"rule": "bulk", "status": "failed", "dry_run": false}' http://127.0.0.1:$ADMIN/api/runs/retry
  fail_all
  serve "$WORKERS"
  phase cli "$BIN" retry --db "sqlite://$DB" --rules "$WORK/rules" --rule bulk --status failed --json
  fail_all
done
