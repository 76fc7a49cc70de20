#!/bin/bash
# mkimage.sh - build real OCI test images from Debian bookworm packages.
#
# Usage: tools/mkimage.sh [-o DATADIR] [--docker-archive] NAME...
#
#   NAME              debian-minbase, python-numpy or pytorch (one or more)
#   -o DATADIR        output and cache directory
#                     (default ${IMGFS_DATA:-/var/tmp/imgfs-data})
#   --docker-archive  also write DATADIR/docker/NAME.tar (docker-save format)
#
# Writes DATADIR/oci/NAME, an OCI image layout with one manifest tagged
# "latest".  Layer 1 is `debootstrap --variant=minbase bookworm`; every later
# layer is one step run on an overlayfs mount (chrooted for apt), and the
# layer is exactly that mount's upper directory, converted to a tar by
# tools/layertar.py.  Layer trees and blobs are cached under DATADIR/cache,
# keyed by a hash of the chain of steps that made them, so images share the
# layers they have in common and a rerun only assembles and checks.
# SOURCE_DATE_EPOCH, when set, clamps newer mtimes and sets the created time.
#
# Needs root, debootstrap, skopeo, umoci, python3, gzip, overlayfs and
# access to the Debian mirror.  Progress goes to stderr as "mkimage: ...".
set -euo pipefail
umask 022

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
RECIPE_VERSION=1
HERE=$(cd "$(dirname "$0")" && pwd)
LAYERTAR=$HERE/layertar.py
APP_SRC=$HERE/pytorch-app/app.py
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

DATADIR=${IMGFS_DATA:-/var/tmp/imgfs-data}
DOCKER_ARCHIVE=0
NAMES=()

log() {
	echo "mkimage: $*" >&2
}

die() {
	echo "mkimage: error: $*" >&2
	exit 1
}

usage() {
	sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
	exit "${1:-2}"
}

sha256_text() {
	printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

# Unmount everything mounted at or below $1, deepest first.
unmount_under() {
	local prefix=$1 mp
	while read -r mp; do
		umount "$mp" 2>/dev/null || umount -l "$mp" || true
	done < <(awk -v p="$prefix" \
		'index($5, p "/") == 1 || $5 == p { print $5 }' \
		/proc/self/mountinfo | sort -r)
}

cleanup() {
	if [ -n "${CACHE:-}" ] && [ -d "$CACHE" ]; then
		unmount_under "$CACHE"
	fi
}

# Show the end of a step's log, then fail.
fail_step() {
	local logfile=$1 what=$2
	if [ -f "$logfile" ]; then
		echo "mkimage: --- last lines of $logfile ---" >&2
		tail -n 40 "$logfile" >&2
	fi
	die "$what failed (log: $logfile)"
}

# Find overlay options that give a plain diff in an upper directory on
# DATADIR's filesystem: trusted.overlay.* xattrs first (needs real root and a
# filesystem with trusted xattrs), then user.overlay.* ("userxattr").
# Redirects, metacopy and the inode index stay off, so that the upper
# directory holds only whole copied-up files, new files, whiteouts (char
# device 0:0) and opaque markers on directories.
probe_overlay() {
	local p=$CACHE/.probe mode opts
	for mode in trusted user; do
		opts=index=off,metacopy=off,redirect_dir=off,xino=off
		if [ "$mode" = user ]; then
			opts=$opts,userxattr
		fi
		rm -rf "$p"
		mkdir -p "$p/lower/d" "$p/upper" "$p/work" "$p/merged"
		echo one >"$p/lower/f"
		echo two >"$p/lower/d/g"
		if ! mount -t overlay overlay -o \
			"lowerdir=$p/lower,upperdir=$p/upper,workdir=$p/work,$opts" \
			"$p/merged" 2>/dev/null; then
			continue
		fi
		local ok=1
		{ rm "$p/merged/f" && rm -r "$p/merged/d" && mkdir "$p/merged/d"; } ||
			ok=0
		umount "$p/merged"
		if [ "$ok" = 1 ] && [ -c "$p/upper/f" ] &&
			[ "$(stat -c %t:%T "$p/upper/f")" = 0:0 ] &&
			python3 -c 'import os, sys
sys.exit(os.getxattr(sys.argv[1], sys.argv[2]) != b"y")' \
				"$p/upper/d" "$mode.overlay.opaque" 2>/dev/null; then
			OVL_PREFIX=$mode.overlay.
			OVL_OPTS=$opts
			rm -rf "$p"
			log "overlayfs works in $CACHE with $OVL_PREFIX* xattrs ($OVL_OPTS)"
			return 0
		fi
	done
	rm -rf "$p"
	die "overlayfs cannot use an upper directory in $CACHE (no trusted or" \
		"user xattrs there?); pick a DATADIR on ext4, xfs or btrfs with -o"
}

# The steps of each image, and its config.  A step is "base" (debootstrap),
# "apt:PACKAGES" or "copy:SOURCE:DEST".
recipe() {
	WORKDIR=
	case $1 in
	debian-minbase)
		STEPS=(base)
		CMD='["bash"]'
		;;
	python-numpy)
		STEPS=(base "apt:python3 python3-numpy")
		CMD='["python3"]'
		;;
	pytorch)
		STEPS=(base "apt:python3 python3-numpy" "apt:python3-torch"
			"copy:$APP_SRC:/app/app.py")
		CMD='["python3","/app/app.py"]'
		WORKDIR=/app
		;;
	*)
		return 1
		;;
	esac
}

apt_command() {
	local install="apt-get install -y --no-install-recommends $1"
	echo "apt-get update && $install && apt-get clean && rm -rf /var/lib/apt/lists/*"
}

# What a step does, as put in the image history and hashed into the key.
step_text() {
	local step=$1 src dest
	case $step in
	base)
		echo "debootstrap --variant=minbase $SUITE / $MIRROR" \
			"(no /dev, /proc, /sys contents, no .debs, hostname localhost," \
			"empty resolv.conf)"
		;;
	apt:*)
		echo "/bin/sh -c $(apt_command "${step#apt:}")"
		;;
	copy:*)
		src=${step#copy:}
		dest=${src##*:}
		src=${src%:*}
		echo "COPY $(basename "$src") $dest" \
			"(sha256 $(sha256sum <"$src" | cut -d' ' -f1))"
		;;
	esac
}

# Run a command chrooted into $1 with /proc, a small /dev (with its own
# devpts, for apt's terminal log) and the host's resolv.conf mounted;
# every mount is undone here, or by cleanup on failure.
chroot_run() {
	local root=$1 command=$2 logfile=$3 node name major minor
	mount -t proc proc "$root/proc"
	mount -t tmpfs -o mode=0755,size=16m,nosuid tmpfs "$root/dev"
	for node in null:1:3 zero:1:5 random:1:8 urandom:1:9 tty:5:0; do
		IFS=: read -r name major minor <<<"$node"
		mknod -m 0666 "$root/dev/$name" c "$major" "$minor"
	done
	ln -s /proc/self/fd "$root/dev/fd"
	ln -s /proc/self/fd/0 "$root/dev/stdin"
	ln -s /proc/self/fd/1 "$root/dev/stdout"
	ln -s /proc/self/fd/2 "$root/dev/stderr"
	mkdir "$root/dev/pts"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts \
		"$root/dev/pts"
	ln -s pts/ptmx "$root/dev/ptmx"
	mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
	mount -o remount,bind,ro "$root/etc/resolv.conf"
	local rc=0
	chroot "$root" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root \
		LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
		/bin/sh -ec "$command" </dev/null >>"$logfile" 2>&1 || rc=$?
	umount "$root/etc/resolv.conf"
	umount "$root/dev/pts"
	umount "$root/dev"
	umount "$root/proc"
	return "$rc"
}

# A lower layer that only adds /usr/sbin/policy-rc.d (so maintainer scripts
# start no services) without showing up in the step's upper directory: its
# usr and usr/sbin take the metadata of the real ones below, so a copy-up of
# either still records the image's own metadata.
make_policy_layer() {
	local shim=$1 d lower
	shift
	mkdir -p "$shim/usr/sbin"
	printf '#!/bin/sh\n# mkimage: start no services while building\nexit 101\n' \
		>"$shim/usr/sbin/policy-rc.d"
	chmod 0755 "$shim/usr/sbin/policy-rc.d"
	for d in usr/sbin usr; do
		for lower in "$@"; do
			if [ -d "$lower/$d" ] && [ ! -L "$lower/$d" ]; then
				python3 "$LAYERTAR" copymeta "$lower/$d" "$shim/$d"
				break
			fi
		done
	done
}

# Layer 1: debootstrap into an empty directory, then tidy it.
build_base() {
	local root=$1 logfile=$2
	if ! debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" \
		>>"$logfile" 2>&1; then
		unmount_under "$root"
		fail_step "$logfile" debootstrap
	fi
	unmount_under "$root"
	if awk -v p="$root/" 'index($5, p) == 1 { found = 1 } END { exit !found }' \
		/proc/self/mountinfo; then
		die "something is still mounted below $root"
	fi
	local d
	for d in dev proc sys; do
		find "$root/$d" -xdev -mindepth 1 -delete
	done
	find "$root/var/cache/apt" -xdev \( -name '*.deb' -o -name '*.bin' \) \
		-type f -delete
	find "$root/var/cache/apt/archives/partial" -xdev -mindepth 1 -delete \
		2>/dev/null || true
	printf 'localhost\n' >"$root/etc/hostname"
	if [ -L "$root/etc/resolv.conf" ]; then
		rm -f "$root/etc/resolv.conf"
	fi
	: >"$root/etc/resolv.conf"
}

# A later layer: mount an overlay of the lower trees (top first) with an
# empty upper directory, run the step in it, unmount.  The upper directory
# is the layer.
build_overlay_step() {
	local tmp=$1 step=$2 logfile=$3
	shift 3
	local upper=$tmp/tree work=$tmp/work merged=$tmp/merged
	local shim=$tmp/policy lowers='' lower
	mkdir -p "$work" "$merged"
	if [ "${step%%:*}" = apt ]; then
		make_policy_layer "$shim" "$@"
		lowers=$shim
	fi
	for lower in "$@"; do
		lowers=${lowers:+$lowers:}$lower
	done
	mount -t overlay overlay -o \
		"lowerdir=$lowers,upperdir=$upper,workdir=$work,$OVL_OPTS" "$merged"
	case $step in
	apt:*)
		if ! chroot_run "$merged" "$(apt_command "${step#apt:}")" \
			"$logfile"; then
			unmount_under "$tmp"
			fail_step "$logfile" "$step"
		fi
		;;
	copy:*)
		local src=${step#copy:} dest
		dest=${src##*:}
		src=${src%:*}
		mkdir -p "$merged$(dirname "$dest")"
		cp --preserve=mode,timestamps "$src" "$merged$dest"
		chown 0:0 "$merged$dest"
		chmod 0644 "$merged$dest"
		;;
	esac
	umount "$merged"
	rm -rf --one-file-system "$work" "$merged" "$shim"
}

# Make sure the layer tree for KEY exists.  Remaining arguments: the trees
# of the layers below, top first.
ensure_tree() {
	local key=$1 step=$2
	shift 2
	local dir=$CACHE/$key tmp=$CACHE/$key.tmp start
	if [ -f "$dir/done" ]; then
		log "layer ${key:0:12}: tree cached ($(head -c 60 "$dir/step")...)"
		return 0
	fi
	unmount_under "$tmp"
	rm -rf --one-file-system "$tmp"
	mkdir -p "$tmp/tree"
	step_text "$step" >"$tmp/step"
	start=$SECONDS
	log "layer ${key:0:12}: running $(head -c 70 "$tmp/step")... (log: $dir/log)"
	case $step in
	base) build_base "$tmp/tree" "$tmp/log" ;;
	*) build_overlay_step "$tmp" "$step" "$tmp/log" "$@" ;;
	esac
	echo "$((SECONDS - start))" >"$tmp/seconds"
	touch "$tmp/done"
	mv "$tmp" "$dir"
	log "layer ${key:0:12}: step took $((SECONDS - start))s"
}

# Make sure the layer blob for KEY exists; print its description's path.
ensure_blob() {
	local key=$1 root_entry=$2 start
	local dir=$CACHE/$key
	local blob=$dir/blob-$BLOB_TAG
	if [ ! -f "$blob.json" ]; then
		start=$SECONDS
		log "layer ${key:0:12}: writing layer tar"
		local args=(pack --ovl-prefix "$OVL_PREFIX" --comment "$(cat "$dir/step")"
			--built "$(stat -c %Y "$dir/done")")
		if [ "$root_entry" = 1 ]; then
			args+=(--root-entry)
		fi
		python3 "$LAYERTAR" "${args[@]}" "$dir/tree" "$blob.tar.gz" "$blob.json"
		log "layer ${key:0:12}: $(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("%s, %d bytes gz, %d bytes tar, %d entries (%ds)" % (d["digest"][:19],
    d["size"], d["tar_size"], d["stats"]["entries"], int(sys.argv[2])))' \
			"$blob.json" "$((SECONDS - start))")"
		# Blobs of older layertar.py versions or SOURCE_DATE_EPOCH values.
		find "$dir" -maxdepth 1 -name 'blob-*' ! -name "blob-$BLOB_TAG.*" \
			-delete
	fi
	echo "$blob.json"
}

build_image() {
	local name=$1 start=$SECONDS key step i
	recipe "$name" || die "unknown image $name (want debian-minbase, python-numpy or pytorch)"
	log "$name: ${#STEPS[@]} layers"
	key=$(sha256_text "mkimage $RECIPE_VERSION $OVL_PREFIX")
	local trees=() jsons=()
	for i in "${!STEPS[@]}"; do
		step=${STEPS[$i]}
		key=$(sha256_text "$key
$(step_text "$step")")
		# Lower trees, top first.
		local lowers=()
		local j
		for ((j = ${#trees[@]} - 1; j >= 0; j--)); do
			lowers+=("${trees[$j]}")
		done
		ensure_tree "$key" "$step" "${lowers[@]}"
		trees+=("$CACHE/$key/tree")
		jsons+=("$(ensure_blob "$key" "$([ "$i" = 0 ] && echo 1 || echo 0)")")
	done

	local out=$DATADIR/oci/$name tmp=$DATADIR/oci/.$name.tmp digest
	mkdir -p "$DATADIR/oci"
	rm -rf "$tmp"
	local args=(image --out "$tmp" --cmd "$CMD")
	if [ -n "$WORKDIR" ]; then
		args+=(--workdir "$WORKDIR")
	fi
	digest=$(python3 "$LAYERTAR" "${args[@]}" "${jsons[@]}")
	rm -rf "$out"
	mv "$tmp" "$out"
	log "$name: wrote $out (manifest $digest)"
	verify_image "$name" "$out" "$digest"
	if [ "$DOCKER_ARCHIVE" = 1 ]; then
		write_docker_archive "$name" "$out" "$digest"
	fi
	log "$name: done in $((SECONDS - start))s"
}

# skopeo must accept the layout and umoci must unpack it.  An image whose
# manifest digest passed before is the same image, so it is not unpacked
# again.
verify_image() {
	local name=$1 dir=$2 digest=$3
	local stamp=$DATADIR/oci/.$name.verified
	skopeo inspect "oci:$dir:latest" >/dev/null ||
		die "$name: skopeo inspect rejects $dir"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
		log "$name: skopeo inspect ok; umoci unpacked this manifest before"
		return 0
	fi
	local check start=$SECONDS
	check=$(mktemp -d /tmp/mkimage-check.XXXXXX)
	if ! umoci raw unpack --image "$dir:latest" "$check/rootfs" \
		>"$check.log" 2>&1; then
		cat "$check.log" >&2
		rm -rf --one-file-system "$check" "$check.log"
		die "$name: umoci raw unpack failed"
	fi
	rm -rf --one-file-system "$check" "$check.log"
	echo "$digest" >"$stamp"
	log "$name: skopeo inspect and umoci raw unpack ok ($((SECONDS - start))s)"
}

write_docker_archive() {
	local name=$1 dir=$2 digest=$3
	local tar=$DATADIR/docker/$name.tar
	local stamp=$DATADIR/docker/.$name.digest start=$SECONDS
	if [ -f "$tar" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
		log "$name: $tar is up to date"
		return 0
	fi
	mkdir -p "$DATADIR/docker"
	rm -f "$tar" "$tar.part" "$stamp"
	skopeo copy --quiet "oci:$dir:latest" "docker-archive:$tar.part:$name:latest" ||
		die "$name: skopeo copy to docker-archive failed"
	mv "$tar.part" "$tar"
	echo "$digest" >"$stamp"
	log "$name: wrote $tar ($((SECONDS - start))s)"
}

while [ $# -gt 0 ]; do
	case $1 in
	-o)
		[ $# -ge 2 ] || usage
		DATADIR=$2
		shift 2
		;;
	-o*)
		DATADIR=${1#-o}
		shift
		;;
	--docker-archive)
		DOCKER_ARCHIVE=1
		shift
		;;
	-h | --help)
		usage 0
		;;
	-*)
		echo "mkimage: unknown option $1" >&2
		usage
		;;
	*)
		NAMES+=("$1")
		shift
		;;
	esac
done
[ ${#NAMES[@]} -gt 0 ] || usage
for name in "${NAMES[@]}"; do
	recipe "$name" || die "unknown image $name (want debian-minbase, python-numpy or pytorch)"
done
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, mount, chroot)"
for tool in debootstrap skopeo umoci python3 gzip chroot flock; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done

mkdir -p "$DATADIR"
DATADIR=$(cd "$DATADIR" && pwd)
case $DATADIR in
*[[:space:]:,]*) die "DATADIR must not contain blanks, ':' or ',': $DATADIR" ;;
esac
CACHE=$DATADIR/cache
mkdir -p "$CACHE"

exec 9>"$DATADIR/.lock"
if ! flock -n 9; then
	log "waiting for another mkimage run on $DATADIR"
	flock 9
fi
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Leftovers of an interrupted run.
unmount_under "$CACHE"
for stale in "$CACHE"/*.tmp "$DATADIR"/oci/.*.tmp; do
	if [ -e "$stale" ]; then
		log "removing unfinished $stale"
		rm -rf --one-file-system "$stale"
	fi
done

probe_overlay
BLOB_TAG=$(sha256_text "$(sha256sum <"$LAYERTAR") SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH-}")
BLOB_TAG=${BLOB_TAG:0:16}

for name in "${NAMES[@]}"; do
	build_image "$name"
done
