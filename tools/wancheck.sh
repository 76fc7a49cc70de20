#!/bin/bash
# wancheck.sh - does tools/wanproxy give the link it is asked for?  Puts
# it in front of nginx on 127.0.0.1 for each benchmark profile and
# prints, median of RUNS runs (default 3):
#
#   ttfb  time to the first byte of a tiny file on a fresh connection
#         (curl's time_starttransfer), against 2 rtt: one for the
#         handshake the proxy emulates (curl's own connect to it is
#         local and instant, so the client's first byte is held one rtt
#         instead), one for the request and the answer.  nginx's own
#         time is in the "direct" column, without the proxy.
#   rate  throughput of a 256 MiB download once its first byte came
#         (bytes / (time_total - time_starttransfer)), against the rate;
#         "whole" counts the full time_total, connection setup included.
#   cpu   the proxy's CPU time over the wall time of those downloads, in
#         percent of one core.
#
# usage: tools/wancheck.sh [-n RUNS] [-p "RTT_MS:RATE_MBIT ..."]
# (-p: other profiles than the benchmark's "10:1000 40:200"; WANPROXY=PATH
# measures another build of the proxy)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=3
profiles="10:1000 40:200"
while getopts n:p: o; do
	case $o in
	n) runs=$OPTARG ;;
	p) profiles=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-p \"RTT_MS:RATE_MBIT ...\"]" >&2; exit 2 ;;
	esac
done
[ -x "$root/build/tools/wanproxy" ] || bash "$root/tools/setup.sh"
export IMGFS_BUILD=$root/build
# The tests' helpers: nginx on a free loopback port, and a trap that
# kills everything started here on exit.
source "$root/tests/integration/lib.sh"
source "$root/tests/integration/netlib.sh"
need_cmd nginx curl python3
WANPROXY=${WANPROXY:-$BUILD/tools/wanproxy}

mkdir -p "$WORK/www"
head -c 256M /dev/urandom >"$WORK/www/big.bin"
echo tiny >"$WORK/www/tiny.txt"
start_nginx "$WORK/www"

# median VALUES...: of numbers.
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# cpu_ticks PID: user + system time of PID, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

ttfb() {
	curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$1/tiny.txt"
}

# profile RTT_MS RATE_MBIT: one line of the table.
profile() {
	local rtt=$1 rate=$2 port pid i t0 c0 t1 c1 out size start total
	local direct=() fresh=() phase=() whole=()
	rm -f "$WORK/wan.port"
	"$WANPROXY" --listen 127.0.0.1:0 --upstream "127.0.0.1:$NGINX_PORT" \
		--rtt-ms "$rtt" --rate-mbit "$rate" --port-file "$WORK/wan.port" \
		2>>"$WORK/wanproxy.log" &
	pid=$!
	PIDS+=("$pid")
	port=$(wait_port_file "$WORK/wan.port" "$pid")

	for i in $(seq 1 "$runs"); do
		direct+=("$(ttfb "$NGINX_PORT")")
		fresh+=("$(ttfb "$port")")
	done
	t0=$(date +%s.%N)
	c0=$(cpu_ticks "$pid")
	for i in $(seq 1 "$runs"); do
		out=$(curl -s -o /dev/null -w '%{size_download} %{time_starttransfer} %{time_total}' \
			"http://127.0.0.1:$port/big.bin")
		read -r size start total <<<"$out"
		[ "$size" = $((256 << 20)) ] || fail "short download: $size bytes"
		phase+=("$(awk -v s="$size" -v a="$start" -v b="$total" \
			'BEGIN { print s * 8 / (b - a) / 1e6 }')")
		whole+=("$(awk -v s="$size" -v b="$total" 'BEGIN { print s * 8 / b / 1e6 }')")
	done
	t1=$(date +%s.%N)
	c1=$(cpu_ticks "$pid")
	kill -TERM "$pid"
	wait "$pid" || fail "wanproxy exited with $?"

	awk -v rtt="$rtt" -v rate="$rate" -v d="$(median "${direct[@]}")" \
		-v f="$(median "${fresh[@]}")" -v p="$(median "${phase[@]}")" \
		-v w="$(median "${whole[@]}")" -v hz="$(getconf CLK_TCK)" \
		-v cpu=$((c1 - c0)) -v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
		'BEGIN {
			printf "%5d ms %5d Mbit/s | %6.1f ms %6.1f ms %6.1f ms %5.2f | %7.1f %5.3f %7.1f %5.3f | %4.0f%%\n",
				rtt, rate, d * 1e3, f * 1e3, 2 * rtt, f * 1e3 / (2 * rtt),
				p, p / rate, w, w / rate, 100 * cpu / hz / wall
		}'
}

echo "median of $runs runs; ttfb of a fresh connection, 256 MiB download rate in Mbit/s"
echo "     link          |  direct   ttfb   intended ratio |   rate  ratio   whole  ratio | cpu"
for p in $profiles; do
	profile "${p%%:*}" "${p##*:}"
done
