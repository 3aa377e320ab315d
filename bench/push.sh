# Sourced by the bench scripts: push_lua BODY OUT [DELAY_MS] writes a wrk
# script posting BODY to /hooks/github as a GitHub push signed with
# `bench-secret`, each request with its own X-GitHub-Delivery (unique
# across wrk's threads and runs, so nothing is deduplicated); DELAY_MS
# between requests per connection sets a fixed rate.
push_lua() {
  local body=$1 out=$2 delay=${3:-}
  local path sig
  path=$(realpath "$body")
  sig=$(openssl dgst -sha256 -hmac bench-secret -hex < "$path" | awk '{print $NF}')
  cat > "$out" <<LUA
local f = io.open("$path", "rb"); local body = f:read("*a"); f:close()
-- wrk's threads share a random seed: the thread number and the start time
-- keep ids apart.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local run = "$RANDOM$RANDOM-" .. os.time()
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/hooks/github", {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = "bench-" .. run .. "-" .. tid .. "-" .. n,
    ["X-Hub-Signature-256"] = "sha256=$sig",
  }, body)
end
LUA
  if [ -n "$delay" ]; then echo "delay = function() return $delay end" >> "$out"; fi
}

# The runs a drain left unfinished, by status, lease, attempt and step:
# printed (with the nodes' last warnings) by the scripts whose drain misses
# its deadline, before their database is dropped.
UNFINISHED_RUNS="SELECT status, lease_owner IS NOT NULL AS leased, attempt, next_step, count(*)
  FROM runs WHERE status IN ('queued', 'running') GROUP BY 1, 2, 3, 4"
