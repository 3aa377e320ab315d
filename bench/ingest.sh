#!/usr/bin/env bash
# Ingest load benchmark (issue 7): one run, one load generator (wrk), one
# signed 2 KB GitHub push body, against
#   1. a bare axum baseline (HMAC + JSON parse + 202),
#   2. hookflow with 10 rules, the delivery not matching,
#   3. hookflow with one matching rule (a run queued durably, then executed),
#   4. hookflow with 10,000 rules over 100 sources (one matching),
#   5. hookflow with 1,000 rules (one matching), for peak RSS under load;
# printing req/s, p50/p99 latency, the ratio to the baseline and peak RSS.
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

BODY=${BODY:-benches/payloads/github-push-2k.json}
SIG=$(openssl dgst -sha256 -hmac bench-secret -hex < "$BODY" | awk '{print $NF}')
cat > "$WORK/post.lua" <<LUA
local f = io.open("$BODY", "rb"); local body = f:read("*a"); f:close()
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
      if [ "$i" -lt "$matching" ]; then src=github; ref=refs/heads/master; event=push
      elif [ $((i % 100)) -eq 0 ]; then src=github; ref=refs/heads/master; event=issues-$i
      else src=s$((i % 100)); ref=refs/heads/master; event=push; fi
      echo "  - { name: r$i, source: $src, event: $event, when: { path: \$.ref, equals: $ref }, actions: [ { http: { url: 'http://127.0.0.1:18081/sink' } } ] }"
    done
  } > "$dir/rules.yaml"
}

run_wrk() { wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$1" 2>&1; }
rps() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
pct() { awk -v p="$2" '$1 == p {print $2}' <<<"$1"; }

"$BASELINE" 18081 >/dev/null 2>&1 &
sleep 1
OUT=$(run_wrk http://127.0.0.1:18081)
BASE_RPS=$(rps "$OUT")
printf '%-34s %10s %9s %9s %7s %9s\n' scenario req/s p50 p99 ratio peak_rss
printf '%-34s %10s %9s %9s %7s %9s\n' "baseline (HMAC+JSON+202)" "$BASE_RPS" "$(pct "$OUT" 50%)" "$(pct "$OUT" 99%)" "1.00" "-"

scenario() {
  local name=$1 total=$2 matching=$3
  local dir="$WORK/$total-$matching"
  write_rules "$dir/rules" "$total" "$matching"
  (cd "$dir" && exec "$BIN" serve --listen 127.0.0.1:18080 --rules rules --db sqlite://bench.db >/dev/null 2>&1) &
  local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done
  local out; out=$(run_wrk http://127.0.0.1:18080)
  local hwm; hwm=$(pgrep -f "hookflow serve --listen 127.0.0.1:18080" | head -1 | xargs -I{} awk '/VmHWM/ {printf "%.1fMiB", $2/1024}' /proc/{}/status)
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  local r; r=$(rps "$out")
  printf '%-34s %10s %9s %9s %7.2f %9s\n' "$name" "$r" "$(pct "$out" 50%)" "$(pct "$out" 99%)" "$(echo "$r / $BASE_RPS" | bc -l)" "$hwm"
}
scenario "hookflow, 10 rules, no match" 10 0
scenario "hookflow, 1 matching rule" 10 1
scenario "hookflow, 10,000 rules / 100 src" 10000 1
scenario "hookflow, 1,000 rules (RSS)" 1000 1
