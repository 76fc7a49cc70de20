#!/bin/bash
# wanproxy.sh - tools/wanproxy relays correctly: 64 MiB each way arrive
# byte for byte, across half-closes, and again to a client that stops
# reading for a while; parallel connections share the link;
# a reset by the upstream reaches the client as one, and so does a
# refused upstream connect, while the proxy serves the next connection;
# SIGTERM ends it with status 0 and its counters written.  Correctness
# only: no figure here depends on the clock (tools/wancheck.sh measures).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netlib.sh"
need_cmd python3 sha256sum

WANPROXY=$BUILD/tools/wanproxy
PEER=$NET/wanpeer.py
[ -x "$WANPROXY" ] || fail "wanproxy not built at $WANPROXY"

# start_wanproxy NAME UPSTREAM_PORT: sets WAN_PORT and WAN_PID.  A real
# link's rate, so that the token bucket paces every transfer below.
start_wanproxy() {
	rm -f "$WORK/$1.port"
	"$WANPROXY" --listen 127.0.0.1:0 --upstream "127.0.0.1:$2" \
		--rtt-ms 4 --rate-mbit 1000 --port-file "$WORK/$1.port" \
		--stats-file "$WORK/$1.stats" 2>>"$WORK/$1.log" &
	WAN_PID=$!
	PIDS+=("$WAN_PID")
	WAN_PORT=$(wait_port_file "$WORK/$1.port" "$WAN_PID")
}

# stop_wanproxy NAME PID: SIGTERM must end it with status 0.
stop_wanproxy() {
	local rc=0
	kill -TERM "$2"
	wait "$2" || rc=$?
	[ "$rc" = 0 ] || { cat "$WORK/$1.log" >&2; fail "wanproxy exited with $rc"; }
}

stat_is() {
	awk -v k="$2" '$1 == k { print $2 }' "$WORK/$1.stats"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$WORK/files"
head -c 64M /dev/urandom >"$WORK/files/big"
for i in 1 2 3 4; do
	head -c 8M /dev/urandom >"$WORK/files/part$i"
done
python3 "$PEER" serve --port-file "$WORK/peer.port" --dir "$WORK/files" \
	2>>"$WORK/peer.log" &
PIDS+=($!)
PEER_PORT=$(wait_port_file "$WORK/peer.port" $!)
start_wanproxy wan "$PEER_PORT"
MAIN_PID=$WAN_PID MAIN_PORT=$WAN_PORT
say "proxy on port $WAN_PORT in front of the peer on $PEER_PORT"

say "64 MiB down, then 64 MiB up"
python3 "$PEER" get "$WAN_PORT" big "$WORK/big.down"
[ "$(sha "$WORK/big.down")" = "$(sha "$WORK/files/big")" ] ||
	fail "the download differs ($(stat -c %s "$WORK/big.down") bytes)"
up=$(python3 "$PEER" put "$WAN_PORT" "$WORK/files/big")
[ "$up" = "$(sha "$WORK/files/big")" ] || fail "the upload differs: $up"

say "64 MiB down to a client that reads nothing for 2 s"
python3 "$PEER" get --pause 2 "$WAN_PORT" big "$WORK/big.paused"
cmp -s "$WORK/big.paused" "$WORK/files/big" ||
	fail "the paused download differs"

say "4 connections down and 4 up at once"
pids=()
for i in 1 2 3 4; do
	python3 "$PEER" get "$WAN_PORT" "part$i" "$WORK/part$i.down" &
	pids+=($!)
	python3 "$PEER" put "$WAN_PORT" "$WORK/files/part$i" >"$WORK/part$i.up" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a parallel transfer failed"
done
for i in 1 2 3 4; do
	[ "$(sha "$WORK/part$i.down")" = "$(sha "$WORK/files/part$i")" ] ||
		fail "parallel download $i differs"
	[ "$(cat "$WORK/part$i.up")" = "$(sha "$WORK/files/part$i")" ] ||
		fail "parallel upload $i differs"
done

say "the upstream resets after 1 MiB"
got=$(python3 "$PEER" close "$WAN_PORT" "RESET 1048576")
say "client saw: $got"
[ "${got%% *}" = reset ] || fail "the client saw '$got', not a reset"
kill -0 "$WAN_PID" 2>/dev/null || fail "wanproxy died with the reset"
python3 "$PEER" get "$WAN_PORT" part1 "$WORK/after.down"
cmp -s "$WORK/after.down" "$WORK/files/part1" ||
	fail "the connection after the reset differs"

say "the upstream refuses the connection"
dead=$(free_port)
start_wanproxy dead "$dead"
got=$(python3 "$PEER" close "$WAN_PORT" "GET big")
[ "$got" = "reset 0" ] || fail "the client saw '$got', not a reset"
grep -q "cannot connect to upstream 127.0.0.1:$dead" "$WORK/dead.log" ||
	fail "no error logged for the refused connect: $(cat "$WORK/dead.log")"
stop_wanproxy dead "$WAN_PID"
[ "$(stat_is dead connect_failed)" = 1 ] || fail "connect_failed not counted"

kill -0 "$MAIN_PID" 2>/dev/null || fail "wanproxy on $MAIN_PORT died"
stop_wanproxy wan "$MAIN_PID"
cat "$WORK/wan.stats" >&2
[ "$(stat_is wan connections)" = 13 ] || fail "not 13 connections counted"
[ "$(stat_is wan connections_reset)" = 1 ] || fail "not 1 reset counted"
[ "$(stat_is wan connections_closed)" = 12 ] || fail "not 12 closes counted"
[ "$(stat_is wan bytes_down)" -ge $(((128 + 32 + 8) << 20)) ] ||
	fail "too few bytes down counted"
say "ok"
