#!/bin/bash
# run.sh NAME SECONDS - builds the libFuzzer harnesses (clang, in
# build-fuzz/ of the checkout, or $IMGFS_FUZZ_BUILD) and runs fuzz_NAME
# for SECONDS seconds over its corpus in tests/fuzz/corpus/NAME.
# "run.sh build 0" only builds them.
#
# New inputs go to a scratch directory, not into the checked-in corpus;
# a crash is left as crash-* in $IMGFS_FUZZ_OUT (default: a directory
# under /var/tmp, printed at the end) and makes the script exit 1.  Copy a
# crash into the corpus once it is fixed: the replay tests run it from
# then on.  Extra arguments go to libFuzzer (e.g. -jobs=2, -max_len=N).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
name=${1:?usage: run.sh NAME SECONDS [libFuzzer options]}
secs=${2:?usage: run.sh NAME SECONDS [libFuzzer options]}
shift 2
build=${IMGFS_FUZZ_BUILD:-$root/build-fuzz}

if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" "$root" -Dfuzz=true \
		--buildtype=debugoptimized >/dev/null || exit 1
fi
targets=()
for c in "$here"/fuzz_*.c; do
	c=${c##*/}
	targets+=("tests/fuzz/${c%.c}")
done
nice ninja -C "$build" "${targets[@]}" >/dev/null || exit 1
[ "$name" = build ] && exit 0

out=${IMGFS_FUZZ_OUT:-$(mktemp -d /var/tmp/imgfs-fuzz-$name.XXXXXX)}
mkdir -p "$out/new"
# Leaks are reported at exit of each input by libFuzzer; a FUSE-less
# parser has no reason to keep memory between inputs.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
nice "$build/tests/fuzz/fuzz_$name" -max_total_time="$secs" \
	-timeout=10 -rss_limit_mb=2048 -max_len=65536 \
	-artifact_prefix="$out/" -print_final_stats=1 "$@" \
	"$out/new" "$here/corpus/$name" 2>"$out/log"
rc=$?
grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added)' \
	"$out/log" | sed "s/^/fuzz_$name: /"
if [ $rc -ne 0 ]; then
	tail -40 "$out/log" >&2
	echo "fuzz_$name: FAILED (rc $rc); inputs and log in $out" >&2
	exit 1
fi
[ -n "${IMGFS_FUZZ_OUT:-}" ] || rm -rf "$out"
echo "fuzz_$name: ok, $secs s"
