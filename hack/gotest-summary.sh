#!/usr/bin/env bash
# Ends a `go test -v` run with a line "N passed, M failed": its tests and
# subtests, counted from their "--- PASS" / "--- FAIL" lines in LOG (as
# hack/node/test.sh counts its payload's), plus each "<suite>: FAIL: ..."
# line a TestMain printed for a failure outside any test (the cluster did
# not start, the leak check after the tests). Exits with STATUS, go test's;
# a run that exits non-zero with nothing counted failed (a timeout, a
# crash, a build error) counts one more failure, and one that reports a
# failure while exiting 0 exits 1.
#
# Usage: gotest-summary.sh LOG STATUS
set -euo pipefail
log=$1 status=$2
count() { grep -Ec "$1" "$log" || true; }
passed=$(count '^[[:space:]]*--- PASS')
failed=$(count '^[[:space:]]*--- FAIL')
skipped=$(count '^[[:space:]]*--- SKIP')
outside=$(count '^[[:alnum:]_-]+: FAIL: ')
failed=$((failed + outside))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	echo "go test exited $status with no failed test reported (a timeout, a crash or a build error; see $log)"
	failed=1
elif [ "$status" -eq 0 ] && [ "$failed" -gt 0 ]; then
	echo "go test exited 0 but reported $failed failure(s)"
	status=1
fi
[ "$skipped" -eq 0 ] || echo "$skipped skipped"
echo "$passed passed, $failed failed"
exit "$status"
