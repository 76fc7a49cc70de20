#!/bin/bash
# The python-numpy image built from Debian's packages, converted, pushed
# with skopeo into a token-auth registry and mounted from it cold: python
# imports numpy from the lazily mounted image, fetching a small part of
# the image.  Then the startup profile: imgtool record attaches what the
# import reads; a mount of the profiled image fetches those chunks ahead
# of the program, so the import finds them cached; the background fill
# brings in the rest while a tree walk reads on.  The same image served
# as a plain OCI layout by nginx mounts too, and its tree matches umoci's
# unpack of the original.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netlib.sh"
need_fuse
need_net_cmds
need_cmd umoci zstd nginx

build_test_images python-numpy
"$IMGTOOL" build -q "oci:$DATA/oci/python-numpy:latest" "oci:$WORK/img" ||
	fail "imgtool build failed"

say "token-auth registry: push, mount cold, import numpy"
start_registry token token
push_image "$WORK/img" "127.0.0.1:$REG_PORT/python-numpy:latest" \
	--dest-creds "$REG_USER:$REG_PASS"
authfile "$WORK/auth.json" "127.0.0.1:$REG_PORT"
mount_fg "docker://127.0.0.1:$REG_PORT/python-numpy:latest" "$WORK/mnt" \
	-o "fill=off,cache=$WORK/cache,authfile=$WORK/auth.json"
import_numpy "$WORK/mnt"
got=$(stat_of "$WORK/mnt" http_bytes)
req=$(stat_of "$WORK/mnt" http_requests)
total=$(stat_of "$WORK/mnt" blobs_total_size)
say "import numpy: $req requests, $got bytes fetched of a $total-byte image"
[ $((got * 2)) -lt "$total" ] || fail "fetched $got of $total bytes"
unmount_fg "$WORK/mnt"

say "record a startup profile of the import"
cp -a "$WORK/img" "$WORK/prof"
"$IMGTOOL" record "oci:$WORK/prof:latest" -- \
	python3 -c 'import numpy; print(numpy.arange(6).sum())' >"$WORK/rec.out" ||
	fail "imgtool record failed"
cat "$WORK/rec.out" >&2
grep -q '^15$' "$WORK/rec.out" || fail "the recorded program did not print 15"
say "record: a killed program and a remote source are refused, saying so"
command_refused "killed by signal 9" \
	"$IMGTOOL" record "oci:$WORK/img:latest" -- sh -c 'kill -9 $$'
command_refused "needs a local layout" "$IMGTOOL" record \
	"docker://127.0.0.1:$REG_PORT/python-numpy:latest" -- true
"$IMGTOOL" record "oci:$WORK/img:latest" -- sleep 60 2>"$WORK/rec.err" &
rec_pid=$!
sleep 2
kill -TERM "$rec_pid"
rc=0
wait "$rec_pid" || rc=$?
[ "$rc" = 143 ] || fail "record ended with $rc after SIGTERM, not 143"
! grep -q imgfs-record /proc/mounts || fail "record left its mount behind"
compgen -G "/var/tmp/imgfs-record.*" >/dev/null &&
	fail "record left its scratch directory: $(echo /var/tmp/imgfs-record.*)"
push_image "$WORK/prof" "127.0.0.1:$REG_PORT/python-numpy:profiled" \
	--dest-creds "$REG_USER:$REG_PASS"

# wait_prefetch MOUNTPOINT: until the prefetch has handled its whole plan.
wait_prefetch() {
	local i
	for i in $(seq 1 600); do
		[ "$(stat_of "$1" prefetch_percent)" = 100.0 ] && return 0
		sleep 0.1
	done
	fail "prefetch did not finish: $("$IMGTOOL" status "$1" | grep prefetch)"
}

say "profiled image: the profile is fetched ahead, the import fetches nothing more"
mount_fg "docker://127.0.0.1:$REG_PORT/python-numpy:profiled" "$WORK/mnt" \
	-o "fill=off,cache=$WORK/cache-prof,authfile=$WORK/auth.json"
wait_prefetch "$WORK/mnt"
chunks=$(stat_of "$WORK/mnt" prefetch_profile_chunks)
before=$(stat_of "$WORK/mnt" chunks_fetched)
import_numpy "$WORK/mnt"
after=$(stat_of "$WORK/mnt" chunks_fetched)
say "profile of $chunks chunks prefetched; the import then fetched $((after - before))"
[ "$chunks" -gt 0 ] || fail "the mounted image has no profile"
[ "$after" = "$before" ] || fail "the import fetched $((after - before)) chunks the profile had"
unmount_fg "$WORK/mnt"

say "background fill: everything arrives while the tree is read"
umoci raw unpack --image "$DATA/oci/python-numpy:latest" "$WORK/want" \
	>/dev/null 2>&1 || fail "umoci cannot unpack the original"
mount_fg "docker://127.0.0.1:$REG_PORT/python-numpy:profiled" "$WORK/mnt" \
	-o "fill=on,cache=$WORK/cache-fill,authfile=$WORK/auth.json"
python3 "$TESTS/treecmp.py" "$WORK/want" "$WORK/mnt" ||
	fail "tree differs while the fill runs"
wait_prefetch "$WORK/mnt"
[ "$(stat_of "$WORK/mnt" prefetch_failed)" = 0 ] || fail "fill chunks failed"
# Everything is cached now: reading all of it fetches nothing.
before=$(stat_of "$WORK/mnt" blob_reads)
find "$WORK/mnt" -type f -print0 | xargs -0 cat >/dev/null
after=$(stat_of "$WORK/mnt" blob_reads)
say "fill done: $(stat_of "$WORK/mnt" blob_bytes_read) blob bytes read; a full read then made $((after - before)) more reads"
[ "$after" = "$before" ] || fail "chunks were missing after the fill"
unmount_fg "$WORK/mnt"

say "the layout served by nginx"
mkdir -p "$WORK/www"
ln -s "$WORK/img" "$WORK/www/python-numpy"
chmod -R a+rX "$WORK/img"
chmod a+x "$WORK"
start_nginx "$WORK/www"
mount_fg "http://127.0.0.1:$NGINX_PORT/python-numpy" "$WORK/mnt" \
	-o "fill=off,cache=$WORK/cache-http"
python3 "$TESTS/treecmp.py" --random-reads 200 "$WORK/want" "$WORK/mnt" ||
	fail "tree served by nginx differs from umoci's"
unmount_fg "$WORK/mnt"
# nginx's 404 page is HTML: the message gives its title, not the markup.
mount_refused "HTTP 404: 404 Not Found" \
	"http://127.0.0.1:$NGINX_PORT/no-such-image"
! grep -q "<" "$WORK/refused.err" ||
	fail "markup in the message: $(cat "$WORK/refused.err")"
say "ok"
