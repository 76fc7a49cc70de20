#!/bin/bash
# peers-build.sh - build the FUSE readers Debian 12 does not ship, for the
# benchmarks that measure imgfs against them (tools/readbench.sh).
#
# usage: tools/peers-build.sh [OUTDIR]
#
# Debian 12's erofs-utils package is configured without its FUSE front end,
# so erofsfuse is compiled here from that same Debian source package
# (fetched with apt-get source through a private apt state that adds
# deb-src lines for the machine's own Debian mirrors; the system's apt
# configuration is left alone).  Prints the path of the binary.  OUTDIR
# defaults to /var/tmp/imgfs-peers; a binary already there is reused.
set -euo pipefail
out=${1:-${IMGFS_PEERS:-/var/tmp/imgfs-peers}}
bin=$out/bin/erofsfuse

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "peers-build: must run as root" >&2; exit 1; }
for p in dpkg-dev autoconf automake libtool pkg-config libfuse-dev \
	uuid-dev liblz4-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		{ echo "peers-build: $p missing; run tools/setup.sh" >&2; exit 1; }
done

apt=$out/apt
src=$out/src
rm -rf "$apt" "$src"
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$src" "$out/bin"

# Same mirrors and suites as the binary sources, as deb-src.
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	sed -e 's/^Types:.*/Types: deb-src/' "$f" \
		>"$apt/sources.list.d/$(basename "$f")"
done
if [ -f /etc/apt/sources.list ]; then
	sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
		>"$apt/sources.list.d/list.list"
fi
aptopts=(-o "Dir::Etc::SourceList=/dev/null"
	-o "Dir::Etc::SourceParts=$apt/sources.list.d"
	-o "Dir::State::Lists=$apt/lists"
	-o "Dir::Cache::srcpkgcache=" -o "Dir::Cache::pkgcache=")
# apt drops to user _apt for downloads when it can write the target.
chown -R _apt "$apt/lists" "$src" 2>/dev/null || true

apt-get -q "${aptopts[@]}" update >&2
(cd "$src" && apt-get -q "${aptopts[@]}" source erofs-utils >&2)
dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'erofs-utils-*' | head -1)
[ -n "$dir" ] || { echo "peers-build: no erofs-utils source in $src" >&2; exit 1; }

log=$out/erofs-build.log
if ! (cd "$dir" && ./autogen.sh && ./configure --enable-fuse \
	--with-uuid --without-selinux --disable-werror &&
	make -j"$(nproc)") >"$log" 2>&1; then
	echo "peers-build: erofsfuse build failed, see $log" >&2
	exit 1
fi
install -m 0755 "$dir/fuse/erofsfuse" "$bin"
echo "$bin"
