#!/bin/bash
# run.sh - set up this machine (Debian packages, build) and run the whole
# test suite: the normal build's tests, each libFuzzer harness for
# IMGFS_FUZZ_SECONDS (default 60) seconds, and the whole suite again in a
# build with AddressSanitizer and UBSan (build-asan/), whose results are
# named "asan:" plus the test.  Prints "N passed, N failed, N skipped"
# last; exits non-zero when a test failed.  Set IMGFS_DATA to keep built
# test images elsewhere than /var/tmp/imgfs-data.  Arguments go to both
# meson test runs (e.g. a suite or test names).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

rc=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || rc=$?

# Each harness is one test: ok, or a crash (its input is kept, the path
# printed).  Two run at a time, one per core.
fuzz_secs=${IMGFS_FUZZ_SECONDS:-60}
fuzz_results=$(mktemp)
run_fuzz() {
	if bash tests/fuzz/run.sh "$1" "$fuzz_secs"; then
		echo "fuzz:$1 OK" >>"$fuzz_results"
	else
		echo "fuzz:$1 FAIL" >>"$fuzz_results"
	fi
}
if [ "$fuzz_secs" -gt 0 ]; then
	# Build first: the parallel runs then share an up-to-date build.
	bash tests/fuzz/run.sh build 0
	for pair in "index tar" "image remote"; do
		for h in $pair; do
			run_fuzz "$h" &
		done
		wait
	done
fi

# The sanitized suite: the daemon runs sanitized in the mounting tests.
# UBSan stops at the first error, so that the test fails instead of a
# report going by in a log; LeakSanitizer checks every process at exit,
# daemons included (they exit at unmount).
if [ ! -f build-asan/build.ninja ]; then
	meson setup build-asan -Db_sanitize=address,undefined \
		-Db_lundef=false >/dev/null || rc=1
fi
asan_rc=0
rm -f build-asan/meson-logs/testlog.json
ninja -C build-asan >/dev/null || asan_rc=$?
if [ $asan_rc -eq 0 ]; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C build-asan --print-errorlogs --num-processes 2 \
		"$@" || asan_rc=$?
fi
[ $asan_rc -eq 0 ] || rc=1

python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
	"$fuzz_results" "$asan_rc" <<'PY'
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
def count(r):
    if r in ("OK", "EXPECTEDFAIL"):
        counts["passed"] += 1
    elif r == "SKIP":
        counts["skipped"] += 1
    else:
        counts["failed"] += 1
for line in open(sys.argv[1]):
    count(json.loads(line).get("result", ""))
try:
    for line in open(sys.argv[2]):
        t = json.loads(line)
        if t.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP"):
            print("asan:%s %s" % (t.get("name"), t.get("result")))
        count(t.get("result", ""))
except OSError:
    # The sanitized build failed before any test ran.
    count("FAIL")
for line in open(sys.argv[3]):
    name, result = line.split()
    if result != "OK":
        print(name, result)
    count(result)
print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts)
PY
rm -f "$fuzz_results"
exit $rc
