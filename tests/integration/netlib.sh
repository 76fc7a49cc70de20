# netlib.sh - sourced after lib.sh by the tests that fetch over HTTP:
# starts registries, a token server, nginx and the fault proxy on
# 127.0.0.1, each on a free port, all killed by lib.sh's trap.

NET=$TESTS/net
REG_USER=imgfs
REG_PASS=s3cret-pass

need_net_cmds() {
	need_cmd docker-registry skopeo curl openssl htpasswd python3
	python3 -c 'import cryptography' 2>/dev/null ||
		skip "python3-cryptography missing (run tools/setup.sh)"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL PID: until URL answers (any status) or PID dies.
wait_http() {
	local url=$1 pid=$2 i
	for i in $(seq 1 100); do
		curl -s -o /dev/null "$url" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	fail "server for $url did not come up"
}

# wait_port_file FILE PID: prints the port a server wrote to FILE.
wait_port_file() {
	local f=$1 pid=$2 i
	for i in $(seq 1 100); do
		[ -s "$f" ] && { cat "$f"; return 0; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	fail "server writing $f did not come up"
}

auth_material() {
	local a=$WORK/auth
	[ -d "$a" ] && return 0
	mkdir -p "$a"
	htpasswd -Bbc "$a/htpasswd" "$REG_USER" "$REG_PASS" 2>/dev/null
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
		-subj /CN=imgfs-test-issuer -keyout "$a/token.key" \
		-out "$a/token.crt" 2>/dev/null
}

# start_token_server [EXTRA ARGS]: sets TOKEN_PORT.
start_token_server() {
	auth_material
	rm -f "$WORK/token.port"
	python3 "$NET/token_server.py" --port-file "$WORK/token.port" \
		--key "$WORK/auth/token.key" --cert "$WORK/auth/token.crt" \
		--issuer imgfs-test-issuer --user "$REG_USER:$REG_PASS" \
		--log "$WORK/token.log" "$@" 2>>"$WORK/token.err" &
	PIDS+=($!)
	TOKEN_PORT=$(wait_port_file "$WORK/token.port" $!)
}

# start_registry NAME none|basic|token: a docker-registry sharing the
# storage in $WORK/registry; sets REG_PORT (and PORT_<NAME>).
start_registry() {
	local name=$1 auth=$2 conf=$WORK/registry-$1.yml
	REG_PORT=$(free_port)
	{
		printf 'version: 0.1\nlog:\n  level: error\n'
		printf 'storage:\n  filesystem:\n    rootdirectory: %s\n' \
			"$WORK/registry"
		printf '  delete:\n    enabled: true\n'
		printf 'http:\n  addr: 127.0.0.1:%s\n' "$REG_PORT"
		case $auth in
		basic)
			auth_material
			printf 'auth:\n  htpasswd:\n    realm: imgfs-test\n'
			printf '    path: %s\n' "$WORK/auth/htpasswd" ;;
		token)
			[ -n "${TOKEN_PORT:-}" ] || start_token_server
			printf 'auth:\n  token:\n'
			printf '    realm: http://127.0.0.1:%s/token\n' "$TOKEN_PORT"
			printf '    service: imgfs-test-registry\n'
			printf '    issuer: imgfs-test-issuer\n'
			printf '    rootcertbundle: %s\n' "$WORK/auth/token.crt" ;;
		esac
	} >"$conf"
	docker-registry serve "$conf" >>"$WORK/registry-$name.log" 2>&1 &
	PIDS+=($!)
	wait_http "http://127.0.0.1:$REG_PORT/v2/" $!
	printf -v "PORT_$name" %s "$REG_PORT"
}

# authfile FILE HOST:PORT...: a docker-style config.json for the tests'
# user on those registries.
authfile() {
	local f=$1 sep="" h b64
	shift
	b64=$(printf '%s:%s' "$REG_USER" "$REG_PASS" | base64 -w0)
	{
		printf '{"auths": {'
		for h in "$@"; do
			printf '%s"%s": {"auth": "%s"}' "$sep" "$h" "$b64"
			sep=", "
		done
		printf '}}\n'
	} >"$f"
}

# push_image LAYOUT_DIR HOST:PORT/REPO:TAG [--dest-creds U:P]: the
# documented way to put a built image into a registry.
push_image() {
	local src=$1 dst=$2
	shift 2
	skopeo copy -q --dest-tls-verify=false "$@" "oci:$src:latest" \
		"docker://$dst" || fail "skopeo cannot push $src to $dst"
}

# start_nginx ROOT: serves ROOT read-only; sets NGINX_PORT.
start_nginx() {
	local root=$1 d=$WORK/nginx
	need_cmd nginx
	NGINX_PORT=$(free_port)
	mkdir -p "$d/tmp"
	cat >"$d/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 256; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $root;
    }
}
EOF
	nginx -c "$d/nginx.conf" -p "$d" 2>>"$d/stderr.log" &
	PIDS+=($!)
	wait_http "http://127.0.0.1:$NGINX_PORT/" $!
}

# start_proxy UPSTREAM_PORT [PORT]: the fault proxy in front of a server
# on 127.0.0.1, its storage listener serving the registry's blobs; sets
# PROXY_PORT, PROXY_PID and PROXY_LOG.
start_proxy() {
	local up=$1 port=${2:-0}
	PROXY_LOG=$WORK/proxy.log
	rm -f "$WORK/proxy.port"
	python3 "$NET/faultproxy.py" --upstream "http://127.0.0.1:$up" \
		--port "$port" --port-file "$WORK/proxy.port" \
		--blob-dir "$WORK/registry/docker/registry/v2/blobs/sha256" \
		--log "$PROXY_LOG" 2>>"$WORK/proxy.err" &
	PROXY_PID=$!
	PIDS+=($!)
	PROXY_PORT=$(wait_port_file "$WORK/proxy.port" $!)
}

# fault MODE [N [ARG]]: sets the proxy's fault for the next N blob reads.
fault() {
	curl -sf -o /dev/null \
		"http://127.0.0.1:$PROXY_PORT/__fault?mode=$1&n=${2:--1}&arg=${3:-}" ||
		fail "cannot set fault $1"
}

# proxy_count EXPR: how many logged requests make the Python expression
# EXPR true (over the fields method, path, range, status, bytes, listener).
proxy_count() {
	python3 - "$PROXY_LOG" "$1" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if eval(sys.argv[2], {}, r):
        n += 1
print(n)
PY
}
