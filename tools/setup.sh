#!/bin/bash
# setup.sh - install every Debian package the project needs, then build it.
# Run as root on Debian 12.  Safe to run again: apt and meson are idempotent.
set -euo pipefail

PACKAGES=(
	build-essential meson ninja-build pkg-config
	libfuse3-dev fuse3 libzstd-dev zstd libssl-dev libarchive-dev
	libxxhash-dev liburing-dev libjson-c-dev libcurl4-openssl-dev
	debootstrap skopeo umoci python3 tar gzip attr xxd
	docker-registry nginx-light apache2-utils python3-cryptography curl jq
	openssl casync gnuplot-nox
	squashfuse squashfs-tools erofs-utils util-linux
	dpkg-dev autoconf automake libtool libfuse-dev uuid-dev liblz4-dev
	clang libclang-rt-14-dev
)

here=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "setup: must run as root (apt-get install)" >&2
	exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cd "$here"
if [ ! -f build/build.ninja ]; then
	meson setup build --buildtype=debugoptimized
fi
ninja -C build
