#!/usr/bin/env bash
# A flame graph of `hookflow serve` under the ingest benchmark's load
# (docs/PERFORMANCE.md): perf samples the server (cpu-clock, 499 Hz, DWARF
# call graphs from the release binary's unwind tables and symbols) while wrk
# posts signed GitHub pushes, then inferno draws docs/flamegraphs/NAME.svg.
#   bench/flamegraph.sh queued [seconds] [body]     SQLite, 1 of 10 rules matches, workers 0
#   bench/flamegraph.sh pg-queued [seconds] [body]  the same on PostgreSQL
# Needs perf (linux-perf) and inferno (`cargo install inferno`).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/push.sh
NAME=${1:-queued}
DURATION=${2:-10}
BODY=${3:-benches/payloads/github-push-2k.json}
PG=${HOOKFLOW_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
for tool in perf wrk inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
cargo build --release -q
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/hookflow
WORK=$(mktemp -d)
SCHEMA=hf_flame_$$
export PGOPTIONS=--client-min-messages=warning
case $NAME in
  queued) DB=sqlite://bench.db ;;
  pg-queued)
    psql -q "$PG" -c "CREATE SCHEMA $SCHEMA"
    DB="$PG?options=-csearch_path%3D$SCHEMA" ;;
  *) echo "scenario: queued or pg-queued" >&2; exit 2 ;;
esac
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  [ "$NAME" = pg-queued ] && psql -q "$PG" -c "DROP SCHEMA $SCHEMA CASCADE" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/rules"
{
  echo "sources:"
  echo "  github: { verify: { github: { secret: bench-secret } } }"
  echo "rules:"
  echo "  - { name: r0, source: github, event: push, actions: [ { http: { url: 'http://127.0.0.1:9/' } } ] }"
  for i in $(seq 1 9); do
    echo "  - { name: r$i, source: github, event: issues-$i, actions: [ { http: { url: 'http://127.0.0.1:9/' } } ] }"
  done
} > "$WORK/rules/rules.yaml"
push_lua "$BODY" "$WORK/post.lua"
(cd "$WORK" && exec "$BIN" serve --listen 127.0.0.1:18080 --admin-listen 127.0.0.1:19090 \
  --rules rules --db "$DB" --workers 0 >"$WORK/serve.log" 2>&1) &
for _ in $(seq 300); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done
PID=$(pgrep -f "hookflow serve --listen 127.0.0.1:18080" | head -1)
wrk -t2 -c32 -d"$((DURATION + 2))s" -s "$WORK/post.lua" http://127.0.0.1:18080 > "$WORK/wrk.out" &
sleep 1
perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$PID" -o "$WORK/perf.data" -- sleep "$DURATION" 2>/dev/null
wait %wrk 2>/dev/null || true
grep Requests/sec "$WORK/wrk.out" || true
mkdir -p docs/flamegraphs
perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf > "$WORK/folded"
inferno-flamegraph --minwidth 1 --title "hookflow serve, $NAME, $(basename "$BODY")" < "$WORK/folded" > "docs/flamegraphs/$NAME.svg"
[ -n "${FOLDED:-}" ] && cp "$WORK/folded" "$FOLDED"
echo "docs/flamegraphs/$NAME.svg ($(wc -l < "$WORK/folded") stacks)"
