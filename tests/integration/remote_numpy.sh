#!/bin/bash
# The python-numpy image built from Debian's packages, converted, pushed
# with skopeo into a token-auth registry and mounted from it cold: python
# imports numpy from the lazily mounted image, fetching a small part of
# the image.  The same image served as a plain OCI layout by nginx mounts
# too, and its tree matches umoci's unpack of the original.
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
out=$(chroot "$WORK/mnt" python3 -c 'import numpy; print(numpy.arange(6).sum())')
[ "$out" = 15 ] || fail "python printed '$out', not 15"
got=$(stat_of "$WORK/mnt" http_bytes)
req=$(stat_of "$WORK/mnt" http_requests)
total=$(stat_of "$WORK/mnt" blobs_total_size)
say "import numpy: $req requests, $got bytes fetched of a $total-byte image"
[ $((got * 2)) -lt "$total" ] || fail "fetched $got of $total bytes"
unmount_fg "$WORK/mnt"

say "the layout served by nginx"
mkdir -p "$WORK/www"
ln -s "$WORK/img" "$WORK/www/python-numpy"
chmod -R a+rX "$WORK/img"
chmod a+x "$WORK"
start_nginx "$WORK/www"
umoci raw unpack --image "$DATA/oci/python-numpy:latest" "$WORK/want" \
	>/dev/null 2>&1 || fail "umoci cannot unpack the original"
mount_fg "http://127.0.0.1:$NGINX_PORT/python-numpy" "$WORK/mnt" \
	-o "fill=off,cache=$WORK/cache-http"
python3 "$TESTS/treecmp.py" --random-reads 200 "$WORK/want" "$WORK/mnt" ||
	fail "tree served by nginx differs from umoci's"
unmount_fg "$WORK/mnt"
say "ok"
