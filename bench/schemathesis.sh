#!/usr/bin/env bash
# The JSON API against its own OpenAPI document (issue #11 item 10,
# docs/RELIABILITY.md): schemathesis, from PyPI, generates requests for every
# operation of /api/openapi.json and checks every answer (`--checks all`:
# no 5xx, status codes, content types, headers and bodies as documented,
# invalid input refused, valid input accepted, auth enforced).
# Two runs, one per mode of SPEC §8:
#   token     `--admin-token`: /api on the main listener, Bearer required
#   no-token  /api only on the loopback admin listener, no authentication
# Each run starts a release `hookflow serve` on temp dirs, seeded with
# accepted, rejected, succeeded and failed deliveries and runs first.
# Usage: bench/schemathesis.sh [extra schemathesis options…]
#   e.g. --max-examples 50, --phases examples,coverage,fuzzing
#   HOOKFLOW_BIN=path skips the release build and uses that binary;
#   SEED=n changes schemathesis's seed (default 11, so runs repeat).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
VENV=$TARGET/schemathesis-venv
ST=$VENV/bin/schemathesis
if [ ! -x "$ST" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'schemathesis>=4,<5'
fi
if [ -z "${HOOKFLOW_BIN:-}" ]; then
  nice cargo build --release -q --bin hookflow
  HOOKFLOW_BIN=$TARGET/release/hookflow
fi
WORK=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

SEED=${SEED:-11}
TOKEN=st-admin-token-$RANDOM$RANDOM
export HOOKFLOW_ST_SECRET=st-source-secret-$RANDOM
# A verified source; `ok` runs a command that succeeds, `broken` one that
# fails (so there are failed runs to retry); both match every delivery.
mkdir -p "$WORK/rules"
cat > "$WORK/rules/rules.yaml" <<'YAML'
sources:
  gh:
    verify:
      token: { header: X-Token, value: "${HOOKFLOW_ST_SECRET}" }
rules:
  - name: ok
    source: gh
    actions:
      - shell: { command: ["true"] }
  - name: broken
    source: gh
    actions:
      - shell: { command: ["false"] }
YAML

# start MODE: starts serve on fresh state, sets MAIN and ADMIN addresses.
start() {
  local mode=$1 dir=$WORK/$1
  mkdir -p "$dir"
  local args=(serve --rules "$WORK/rules" --db "sqlite://$dir/hookflow.db"
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0)
  [ "$mode" = token ] && args+=(--admin-token "$TOKEN")
  "$HOOKFLOW_BIN" "${args[@]}" 2>"$dir/log" &
  SERVER=$!
  for _ in $(seq 200); do
    grep -q 'hookflow listening' "$dir/log" && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
    sleep 0.05
  done
  local line
  line=$(grep 'hookflow listening' "$dir/log")
  MAIN=$(sed -E 's/.* address=([^ ]+).*/\1/' <<<"$line")
  ADMIN=$(sed -E 's/.* admin=([^ ]+).*/\1/' <<<"$line")
}

stop() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=
}

# seed API AUTH…: 6 accepted deliveries (12 runs, half failing), 2 rejected.
seed() {
  local api=$1; shift
  for n in 1 2 3 4 5 6; do
    curl -sf -o /dev/null -X POST "http://$MAIN/hooks/gh" -H "X-Token: $HOOKFLOW_ST_SECRET" \
      -H 'content-type: application/json' -d "{\"n\":$n,\"ref\":\"refs/heads/main\"}"
  done
  for n in 1 2; do
    curl -s -o /dev/null -X POST "http://$MAIN/hooks/gh" -H 'X-Token: wrong' -d '{}'
  done
  for _ in $(seq 200); do
    local open
    open=$(curl -sf "$@" "http://$api/api/runs?status=queued&limit=1" | grep -c '"id"' || true)
    [ "$open" = 0 ] && break
    sleep 0.05
  done
}

# run MODE: one schemathesis run; prints its result lines.
run() {
  local mode=$1; shift
  start "$mode"
  local api auth=()
  if [ "$mode" = token ]; then
    api=$MAIN
    auth=(-H "Authorization: Bearer $TOKEN")
  else
    api=$ADMIN
    # the webhook listener must not serve the API without a token
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$MAIN/api/openapi.json")
    [ "$code" = 404 ] || { echo "no-token mode: /api on the main listener answered $code" >&2; exit 1; }
  fi
  seed "$api" "${auth[@]}"
  echo "== $mode: schemathesis against http://$api/api/openapi.json"
  local status=0
  # (from $WORK: schemathesis keeps its example database in the cwd)
  (cd "$WORK" && nice "$ST" run "http://$api/api/openapi.json" --checks all "${auth[@]}" \
    --seed "$SEED" --no-color "$@") >"$WORK/$mode/report" 2>&1 || status=$?
  # The summary, and the title of each failure
  sed -n '/= SUMMARY =/,$p' "$WORK/$mode/report" | grep -v '^\s*$' | sed 's/^/   /'
  grep -E '^- ST[0-9]+ ' "$WORK/$mode/report" | sort | uniq -c | sed 's/^/   /' || true
  if grep -qE 'panicked|ERROR' "$WORK/$mode/log"; then
    echo "   server log has errors:" && grep -E 'panicked|ERROR' "$WORK/$mode/log" | head -5
    status=1
  fi
  stop
  if [ "$status" -ne 0 ]; then
    cp "$WORK/$mode/report" "$TARGET/schemathesis-$mode.txt"
    echo "   FAILED (exit $status); full report: $TARGET/schemathesis-$mode.txt"
  fi
  return "$status"
}

result=0
run token "$@" || result=1
run no-token "$@" || result=1
exit "$result"
