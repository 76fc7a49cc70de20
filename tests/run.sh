#!/bin/bash
# run.sh - set up this machine (Debian packages, build) and run the whole
# test suite.  Prints "N passed, N failed, N skipped" last; exits non-zero
# when a test failed.  Set IMGFS_DATA to keep built test images elsewhere
# than /var/tmp/imgfs-data.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

rc=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || rc=$?

python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
for line in open(sys.argv[1]):
    r = json.loads(line).get("result", "")
    if r in ("OK", "EXPECTEDFAIL"):
        counts["passed"] += 1
    elif r == "SKIP":
        counts["skipped"] += 1
    else:
        counts["failed"] += 1
print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts)
PY
exit $rc
