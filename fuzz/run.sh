#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, one after the other, at the
# lowest CPU priority, and prints one summary line per target. Exits 1 if
# any target found a crash, timeout or out-of-memory input (kept in
# fuzz/artifacts/<target>/).
#
#   fuzz/run.sh 600                 # every target, 10 minutes each
#   fuzz/run.sh 60 verify body      # only these targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the
# nightly-only flags cargo-fuzz passes are allowed by RUSTC_BOOTSTRAP=1.
# FUZZ_SANITIZER=none|address (default address) picks the sanitizer.
# The working corpus grows in fuzz/corpus/<target>/ (not committed); the
# committed seeds in fuzz/seeds/<target>/ are read, never written.
set -uo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: fuzz/run.sh SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift
cd "$(dirname "$0")"

# Cheapest first: a finding in a fast target shows up soonest.
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(jsonpath body verify template rules_decode)
fi
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi

mkdir -p logs
# `cargo fuzz build` takes one target or all of them.
if [[ $# -eq 0 ]]; then
    nice -n 19 cargo fuzz build -s "$sanitizer" || exit 2
else
    for target in "${targets[@]}"; do
        nice -n 19 cargo fuzz build -s "$sanitizer" "$target" || exit 2
    done
fi

failed=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    before=$(find "artifacts/$target" -type f | sort)
    log="logs/$target.log"
    # -timeout: one input taking 10 s is a hang worth a report.
    # -rss_limit_mb: the default 2 GB, stated.
    nice -n 19 cargo fuzz run -s "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [[ -z $runs ]]; then
        runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    corpus=$(find "corpus/$target" -type f | wc -l)
    new=$(comm -13 <(echo "$before") <(find "artifacts/$target" -type f | sort) | sed '/^$/d')
    crashes=$(echo -n "$new" | grep -c . || true)
    if [[ $status -ne 0 && $crashes -eq 0 ]]; then
        crashes=1 # died without an artifact (e.g. the build or the runner): still a failure
    fi
    line="$target: seconds=$seconds runs=${runs:-0} corpus=$corpus crashes=$crashes (log fuzz/$log)"
    echo "$line"
    summary+=("$line")
    if [[ $crashes -gt 0 ]]; then
        failed=1
        [[ -n $new ]] && echo "$new" | sed 's/^/    artifact: fuzz\//'
    fi
done

echo "--- summary ---"
printf '%s\n' "${summary[@]}"
exit "$failed"
