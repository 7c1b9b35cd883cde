#!/usr/bin/env bash
# Every test of the workspace against moto's server, then one closing line with the totals.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
"$here/scripts/with-moto.sh" cargo test --workspace --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | paste -sd+ - | bc)
failed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | paste -sd+ - | bc)
rm -f "$log"
echo
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
