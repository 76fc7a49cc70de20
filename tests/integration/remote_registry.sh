#!/bin/bash
# Mounting from real OCI registries (Debian's docker-registry on
# 127.0.0.1): pushed with skopeo, mounted by tag, by digest and through an
# image index; anonymous, htpasswd basic auth and token auth from an
# authfile; tokens that expire under a long-lived mount.  Every tree is
# compared with umoci's unpack of the original image.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netlib.sh"
need_fuse
need_net_cmds
need_cmd umoci zstd jq

synthetic_image "$WORK"
umoci_unpack "$WORK/oci" "$WORK/expected"
nlayers=$(jq '.layers | length' "$WORK/out/blobs/sha256/$(jq -r '.manifests[0].digest' "$WORK/out/index.json" | cut -c8-)")

compare() {
	python3 "$TESTS/treecmp.py" --random-reads 100 "$WORK/expected" "$1" ||
		fail "tree from $2 differs from umoci's"
}

say "anonymous registry: push, then mount by tag"
start_registry open none
push_image "$WORK/out" "127.0.0.1:$REG_PORT/syn:v1"
mount_fg "docker://127.0.0.1:$REG_PORT/syn:v1" "$WORK/mnt" \
	-o "fill=off,cache=$WORK/cache-open"
req=$(stat_of "$WORK/mnt" http_requests)
# The manifest, the config, and one range request per layer index (the
# layer annotations give its place).
say "mount made $req requests for $nlayers layers"
[ "$req" -le $((nlayers + 2)) ] || fail "mount made $req requests"
compare "$WORK/mnt" "docker://…/syn:v1"
unmount_fg "$WORK/mnt"

say "by digest, in a fresh cache"
digest=$(skopeo inspect --tls-verify=false \
	"docker://127.0.0.1:$REG_PORT/syn:v1" | jq -r .Digest)
mount_fg "docker://127.0.0.1:$REG_PORT/syn@$digest" "$WORK/mnt" \
	-o "fill=off,cache=$WORK/cache-digest"
cmp "$WORK/expected/usr/lib/libbig.so" "$WORK/mnt/usr/lib/libbig.so" ||
	fail "libbig.so differs when mounted by digest"
unmount_fg "$WORK/mnt"

say "an image index: linux/amd64 is picked"
# The unconverted image as the arm64 entry: mounting it would fail.
push_image "$WORK/oci" "127.0.0.1:$REG_PORT/syn:orig"
orig=$(skopeo inspect --tls-verify=false --raw \
	"docker://127.0.0.1:$REG_PORT/syn:orig" | sha256sum | cut -c1-64)
orig_size=$(skopeo inspect --tls-verify=false --raw \
	"docker://127.0.0.1:$REG_PORT/syn:orig" | wc -c)
conv_size=$(skopeo inspect --tls-verify=false --raw \
	"docker://127.0.0.1:$REG_PORT/syn:v1" | wc -c)
for mt in application/vnd.oci.image.index.v1+json \
	application/vnd.docker.distribution.manifest.list.v2+json; do
	cat >"$WORK/list.json" <<EOF
{"schemaVersion": 2, "mediaType": "$mt", "manifests": [
 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:$orig", "size": $orig_size,
  "platform": {"architecture": "arm64", "os": "linux"}},
 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "$digest", "size": $conv_size,
  "platform": {"architecture": "amd64", "os": "linux"}}]}
EOF
	code=$(curl -s -o "$WORK/put.out" -w '%{http_code}' -X PUT \
		-H "Content-Type: $mt" --data-binary "@$WORK/list.json" \
		"http://127.0.0.1:$REG_PORT/v2/syn/manifests/multi")
	[ "$code" = 201 ] || fail "registry refused the index ($code): $(cat "$WORK/put.out")"
	mount_fg "docker://127.0.0.1:$REG_PORT/syn:multi" "$WORK/mnt" \
		-o "fill=off,cache=$WORK/cache-multi"
	grep -qx localhost "$WORK/mnt/etc/hostname" ||
		fail "wrong tree through a $mt"
	unmount_fg "$WORK/mnt"
done

say "basic auth: refused without credentials, works with an authfile"
start_registry basic basic
push_image "$WORK/out" "127.0.0.1:$REG_PORT/syn:v1" \
	--dest-creds "$REG_USER:$REG_PASS"
mount_refused credentials "docker://127.0.0.1:$REG_PORT/syn:v1" \
	-o "fill=off,cache=$WORK/cache-basic"
authfile "$WORK/auth.json" "127.0.0.1:$REG_PORT"
mount_fg "docker://127.0.0.1:$REG_PORT/syn:v1" "$WORK/mnt" \
	-o "fill=off,cache=$WORK/cache-basic,authfile=$WORK/auth.json"
compare "$WORK/mnt" "basic-auth registry"
unmount_fg "$WORK/mnt"

say "token auth, with tokens that expire after about 5 s"
start_token_server --exp-offset -55
start_registry token token
push_image "$WORK/out" "127.0.0.1:$REG_PORT/syn:v1" \
	--dest-creds "$REG_USER:$REG_PASS"
authfile "$WORK/auth.json" "127.0.0.1:$REG_PORT"
mount_fg "docker://127.0.0.1:$REG_PORT/syn:v1" "$WORK/mnt" \
	-o "fill=off,cache=$WORK/cache-token,authfile=$WORK/auth.json"
cmp "$WORK/expected/usr/lib/libmid.so" "$WORK/mnt/usr/lib/libmid.so" ||
	fail "libmid.so differs"
first=$(stat_of "$WORK/mnt" http_auth_refreshes)
sleep 7
compare "$WORK/mnt" "token-auth registry after the token expired"
later=$(stat_of "$WORK/mnt" http_auth_refreshes)
say "tokens fetched: $first at first, $later after expiry"
[ "$later" -gt "$first" ] || fail "no new token was fetched after expiry"
unmount_fg "$WORK/mnt"
say "ok"
