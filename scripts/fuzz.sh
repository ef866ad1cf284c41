#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other, then
# minimizes each corpus and re-adds the seed inputs (docs/fuzzing.md).
#
#   scripts/fuzz.sh                 # every target, 600 s each
#   scripts/fuzz.sh 60 engine       # one target for a minute
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Prints one line per
# target: its name, the seconds run, the executions, the corpus size, and whether it found
# anything (a finding is left in fuzz/artifacts/<target>/ and makes the script fail).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build -O
mkdir -p target/fuzz-logs
status=0
for t in "${targets[@]}"; do
    log="target/fuzz-logs/$t.log"
    if cargo +nightly fuzz run -O "$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        found="no finding"
    else
        found="FINDING (see $log and fuzz/artifacts/$t/)"
        status=1
    fi
    execs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cargo +nightly fuzz cmin -O "$t" >>"$log" 2>&1 || true
    size=$(find "fuzz/corpus/$t" -type f | wc -l)
    printf '%-16s %6ss %12s execs %6s corpus  %s\n' "$t" "$seconds" "$execs" "$size" "$found"
done
cargo run --quiet -p accord-fuzzing --bin seed-corpus >/dev/null
exit "$status"
