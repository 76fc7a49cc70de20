#!/bin/bash
# -o metrics=FILE: the daemon rewrites FILE in the Prometheus text format
# (checked by tests/promcheck.py: syntax, types, histogram rules), with
# the numbers imgtool status shows: per-layer bytes and requests, cache
# hits and misses, a chunk fetch time histogram, errors by kind and
# prefetch progress; a last rewrite at exit.
source "$(dirname "$0")/lib.sh"
need_fuse
need_cmd zstd python3

synthetic_image "$WORK"
M=$WORK/metrics/imgfs.prom
mkdir -p "$WORK/metrics"

# metric NAME [LABEL_MATCH]: the value of the first sample of NAME whose
# labels contain LABEL_MATCH.
metric() {
	awk -v n="$1" -v l="${2:-}" 'index($0, n "{") == 1 && index($0, l) { print $NF; exit }' "$M"
}
wait_rewrite() {
	local before
	before=$(stat -c %Y.%y "$M" 2>/dev/null || true)
	for i in $(seq 1 50); do
		[ "$(stat -c %Y.%y "$M" 2>/dev/null || true)" != "$before" ] && return 0
		sleep 0.1
	done
	fail "metrics file not rewritten"
}

mount_fg "oci:$WORK/out" "$WORK/mnt" \
	-o "cache=$WORK/cache,metrics=$M,metrics_interval=1"
for i in $(seq 1 50); do [ -s "$M" ] && break; sleep 0.1; done
python3 "$TESTS/promcheck.py" "$M" || fail "not valid Prometheus text"
[ "$(metric imgfs_chunks_fetched_total)" = 0 ] || fail "chunks fetched before any read"

say "after reads: the numbers move and agree with imgtool status"
find "$WORK/mnt" -type f -print0 | xargs -0 cat >/dev/null
cat "$WORK/mnt/usr/lib/libbig.so" >/dev/null
cat "$WORK/mnt/usr/lib/libbig.so" >/dev/null
wait_rewrite
wait_rewrite
python3 "$TESTS/promcheck.py" "$M" imgfs_blob_read_bytes_total \
	imgfs_layer_fetched_bytes_total imgfs_layer_fetch_requests_total \
	imgfs_cache_hits_total imgfs_cache_misses_total imgfs_errors_total \
	imgfs_chunk_fetch_seconds imgfs_prefetch_planned_chunks \
	imgfs_prefetch_done_chunks || fail "not valid Prometheus text after reads"
for k in blob_bytes_read:imgfs_blob_read_bytes_total \
	 chunks_fetched:imgfs_chunks_fetched_total \
	 cache_misses:imgfs_cache_misses_total \
	 layer0_bytes_fetched:imgfs_layer_fetched_bytes_total; do
	s=$(stat_of "$WORK/mnt" "${k%%:*}")
	m=$(metric "${k#*:}")
	[ "$s" = "$m" ] || fail "${k#*:} is $m, status says $s"
	[ "$m" -gt 0 ] || fail "${k#*:} is 0 after reads"
done
reads=$(stat_of "$WORK/mnt" blob_reads)
n=$(metric imgfs_chunk_fetch_seconds_count 'source="local"')
[ "$n" = "$reads" ] || fail "histogram counts $n fetches, status $reads blob reads"
layers=$(awk '/^imgfs_layer_fetch_requests_total\{/ { s += $NF } END { print s }' "$M")
[ "$layers" = "$reads" ] || fail "per-layer requests add up to $layers, not $reads"
[ "$(metric imgfs_chunk_fetch_seconds_count 'source="remote"')" = 0 ] ||
	fail "remote fetches on a local image"
[ "$(metric imgfs_errors_total 'kind="read"')" = 0 ] || fail "errors on a good image"
hits=$(stat_of "$WORK/mnt" cache_hits)
[ "$hits" -gt 0 ] || fail "no cache hit after reading a file twice"

say "a last rewrite at exit"
unmount_fg "$WORK/mnt"
[ "$(metric imgfs_cache_hits_total)" = "$hits" ] ||
	fail "final cache hits $(metric imgfs_cache_hits_total), status said $hits"
[ ! -e "$M.tmp" ] || fail "temporary file left behind"

say "a metrics file that cannot be written refuses the mount"
mount_refused "cannot write metrics file $WORK/no-such-dir/m.prom" \
	"oci:$WORK/out" -o "cache=$WORK/cache,metrics=$WORK/no-such-dir/m.prom"
say "ok"
