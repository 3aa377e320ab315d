#!/usr/bin/env bash
# Randomized crash trials (issue #11 item 7, docs/RELIABILITY.md): N times,
# a release `hookflow serve` takes signed deliveries from 2–6 concurrent
# clients, is SIGKILLed 0.2–2 s into the load, restarted on the same
# database and left to drain its queue; then every delivery answered 2xx
# must be stored and every stored run must have reached a counting sink
# (duplicates by Idempotency-Key are reported: at-least-once allows them).
# The trials are the test tests/it/crash_trials.rs, built in release mode.
# Usage: bench/crash-trials.sh [N, default 100]
#   HOOKFLOW_CRASH_SEED=S replays a run (each trial prints its own seed:
#   HOOKFLOW_CRASH_SEED=<that seed> bench/crash-trials.sh 1 replays one).
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-100}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
nice cargo build --release -q --bin hookflow
nice cargo test --release -q --test it --no-run 2>/dev/null
start=$(date +%s)
set +e
HOOKFLOW_CRASH_TRIALS=$TRIALS nice cargo test --release -q --test it crash_trials:: \
  -- --nocapture --test-threads 1 2>&1 | tee "$LOG" | grep --line-buffered -E '^(trial|crash trials)'
status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))
summary=$(grep '^crash trials summary' "$LOG" || true)
if [ "$status" -ne 0 ] || [ -z "$summary" ]; then
  echo "the trials failed:" >&2
  grep -E 'panicked' -A4 "$LOG" >&2 || tail -30 "$LOG" >&2
  exit 1
fi
field() { sed -E "s/.* $1=([0-9]+).*/\1/" <<<"$summary"; }
echo
echo "trials:            $(field trials)"
echo "seed:              $(field seed)"
echo "acked (2xx):       $(field acked)"
echo "stored:            $(field stored)"
echo "lost:              $(field lost)"
echo "runs:              $(field runs)"
echo "unfinished runs:   $(field unfinished)"
echo "duplicate actions: $(field duplicate_actions)"
echo "wall time:         ${elapsed}s"
