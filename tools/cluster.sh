#!/usr/bin/env bash
# tools/cluster.sh: a three-node tether cluster on this machine, in the foreground until
# Ctrl-C (`make cluster` runs it). docs/CLUSTER.md describes what it starts:
#
#   nats-server with JetStream   127.0.0.1:$((BASE+22))  (monitoring $((BASE+23)))
#   tetherd -dev node1..node3    client BASE+100*i, admin +1, control +2, HTTP API +4  (i = 1..3)
#   haproxy (PROXY v2, /readyz)  127.0.0.1:$((BASE+10))  the cluster's frontend
#
# BASE is $TETHER_CLUSTER_BASE (default 7000: frontend 7010, nodes 7100/7200/7300, NATS
# 7022), so it does not collide with `make run` (7000-7002) or a NATS on 4222.
# Usage: tools/cluster.sh [path/to/tetherd]   (default bin/tetherd)
# Environment:
#   TETHER_CLUSTER_BASE      port base (above)
#   TETHER_CLUSTER_LIFETIME  stop by itself after this many seconds (tests); default: never
#   TETHER_CLUSTER_DIR       where configuration, NATS store and logs go; default a new
#                            temporary directory, removed on exit
# Everything runs on loopback. Ctrl-C (SIGINT) or SIGTERM stops every child and waits for
# it; the script exits 0 after a clean stop, 1 if something failed to start.
set -u

TETHERD=${1:-bin/tetherd}
BASE=${TETHER_CLUSTER_BASE:-7000}
LIFETIME=${TETHER_CLUSTER_LIFETIME:-}
FRONTEND=$((BASE + 10))
NATS_PORT=$((BASE + 22))
NATS_MON=$((BASE + 23))

die() {
	echo "cluster: $*" >&2
	exit 1
}

[ -x "$TETHERD" ] || die "$TETHERD not found or not executable: run make build (or pass the tetherd binary)"
find_bin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; }; }
NATS_BIN=$(find_bin nats-server) || true
[ -n "$NATS_BIN" ] || die "nats-server not installed: apt-get install nats-server"
HAPROXY_BIN=$(find_bin haproxy) || true
[ -n "$HAPROXY_BIN" ] || die "haproxy not installed: apt-get install haproxy"

if [ -n "${TETHER_CLUSTER_DIR:-}" ]; then
	DIR=$TETHER_CLUSTER_DIR
	KEEP=1
	mkdir -p "$DIR" || die "cannot create $DIR"
else
	DIR=$(mktemp -d "${TMPDIR:-/tmp}/tether-cluster.XXXXXX") || die "cannot create a temporary directory"
	KEEP=
fi

PIDS=()
NAMES=()
stopping=

# stop sends SIGTERM to every child (tetherd drains with -drain-timeout, haproxy and
# nats-server stop), waits for each, escalates to SIGKILL after 10 s, and exits.
stop() {
	[ -n "$stopping" ] && return
	stopping=1
	trap '' INT TERM
	echo "cluster: stopping" >&2
	[ -n "${NAP:-}" ] && kill "$NAP" 2>/dev/null
	local i
	# tetherd first (they drain), then haproxy, then NATS: reverse start order.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill -TERM "${PIDS[i]}" 2>/dev/null
	done
	local deadline=$((SECONDS + 10))
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		while kill -0 "${PIDS[i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			sleep 0.1
		done
		if kill -0 "${PIDS[i]}" 2>/dev/null; then
			echo "cluster: ${NAMES[i]} did not stop in time: SIGKILL" >&2
			kill -KILL "${PIDS[i]}" 2>/dev/null
		fi
		wait "${PIDS[i]}" 2>/dev/null
	done
	if [ -z "$KEEP" ]; then rm -rf "$DIR"; fi
	echo "cluster: stopped" >&2
	exit "${1:-0}"
}
trap 'stop 0' INT TERM

# start runs a child in the background, its output in $DIR/<name>.log, in a session of
# its own (setsid: a background child is no group leader, so setsid does not fork and $!
# is the child), so the terminal's Ctrl-C reaches only this script, which then stops the
# children in order (tetherd first, NATS last).
SETSID=$(command -v setsid) || SETSID=
start() {
	local name=$1
	shift
	$SETSID "$@" >"$DIR/$name.log" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
}

# http_status prints the status code of GET http://127.0.0.1:$1$2, or 000.
http_status() {
	curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1$2" 2>/dev/null || echo 000
}

# wait_ok waits up to 15 s for GET :port/path to answer 200, failing if the child
# (index $3) exits first.
wait_ok() {
	local port=$1 path=$2 idx=$3 deadline=$((SECONDS + 15))
	until [ "$(http_status "$port" "$path")" = 200 ]; do
		if ! kill -0 "${PIDS[idx]}" 2>/dev/null; then
			echo "cluster: ${NAMES[idx]} exited; its log:" >&2
			cat "$DIR/${NAMES[idx]}.log" >&2
			stop 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "cluster: ${NAMES[idx]} not ready on :$port$path within 15 s; its log:" >&2
			cat "$DIR/${NAMES[idx]}.log" >&2
			stop 1
		fi
		sleep 0.1
	done
}

command -v curl >/dev/null || die "curl not installed (the readiness checks use it): apt-get install curl"

mkdir -p "$DIR/jetstream"
start nats "$NATS_BIN" -js -sd "$DIR/jetstream" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON" -n tether-dev
wait_ok "$NATS_MON" /healthz 0

backends=
for i in 1 2 3; do
	p=$((BASE + 100 * i))
	start "node$i" "$TETHERD" -dev \
		-addr "127.0.0.1:$p" -admin "127.0.0.1:$((p + 1))" -control "127.0.0.1:$((p + 2))" -ws-addr - \
		-http-addr "127.0.0.1:$((p + 4))" \
		-nats "nats://127.0.0.1:$NATS_PORT" -nats-name "node$i" \
		-proxy-protocol tcp -proxy-trusted 127.0.0.1/32 \
		-drain-timeout 3s -drain-spread 1s -log-level info
	backends+="    server node$i 127.0.0.1:$p port $((p + 1))"$'\n'
done
for i in 1 2 3; do
	wait_ok $((BASE + 100 * i + 1)) /readyz "$i"
done

# haproxy: the shape of docs/DEPLOY.md section 3 on loopback, with fast checks.
cat >"$DIR/haproxy.cfg" <<EOF
global
    log stderr format raw local0 info
    # no maxconn: haproxy derives it from the open-files limit (ulimit -n)
    hard-stop-after 5s

defaults
    mode tcp
    log global
    option dontlognull
    timeout connect 2s
    timeout client 75s
    timeout server 75s
    timeout client-fin 5s
    timeout server-fin 5s
    timeout check 2s

frontend tether
    bind 127.0.0.1:$FRONTEND
    default_backend tether_cluster

backend tether_cluster
    balance leastconn
    retries 3
    option redispatch 1
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 500ms fall 2 rise 2 send-proxy-v2
$backends
EOF
"$HAPROXY_BIN" -c -q -f "$DIR/haproxy.cfg" || die "haproxy refuses $DIR/haproxy.cfg"
start haproxy "$HAPROXY_BIN" -W -db -f "$DIR/haproxy.cfg"
deadline=$((SECONDS + 10))
until grep -q "Loading success" "$DIR/haproxy.log" 2>/dev/null; do
	if ! kill -0 "${PIDS[4]}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
		echo "cluster: haproxy did not start; its log:" >&2
		cat "$DIR/haproxy.log" >&2
		stop 1
	fi
	sleep 0.1
done

cat <<EOF
tether cluster: three tetherd -dev nodes on NATS behind haproxy (docs/CLUSTER.md)

  frontend     127.0.0.1:$FRONTEND            clients connect here (haproxy, PROXY v2, leastconn)
  node1        client 127.0.0.1:$((BASE + 100))  admin http://127.0.0.1:$((BASE + 101))  control 127.0.0.1:$((BASE + 102))  http://127.0.0.1:$((BASE + 104))/v1/
  node2        client 127.0.0.1:$((BASE + 200))  admin http://127.0.0.1:$((BASE + 201))  control 127.0.0.1:$((BASE + 202))  http://127.0.0.1:$((BASE + 204))/v1/
  node3        client 127.0.0.1:$((BASE + 300))  admin http://127.0.0.1:$((BASE + 301))  control 127.0.0.1:$((BASE + 302))  http://127.0.0.1:$((BASE + 304))/v1/
  nats         nats://127.0.0.1:$NATS_PORT  (JetStream; monitoring http://127.0.0.1:$NATS_MON)
  logs         $DIR/{nats,node1,node2,node3,haproxy}.log
  pids         nats=${PIDS[0]} node1=${PIDS[1]} node2=${PIDS[2]} node3=${PIDS[3]} haproxy=${PIDS[4]}

-dev: any token is its own user id; the control ports need no secret (loopback only).
A client dials the frontend; a service may dial any node's control port.
Stop with Ctrl-C.
EOF

# Wait for a signal, the lifetime, or a child dying.
end=
[ -n "$LIFETIME" ] && end=$((SECONDS + LIFETIME))
while :; do
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
			echo "cluster: ${NAMES[i]} exited unexpectedly; its log is $DIR/${NAMES[i]}.log" >&2
			KEEP=1
			stop 1
		fi
	done
	if [ -n "$end" ] && [ $SECONDS -ge "$end" ]; then
		echo "cluster: lifetime of ${LIFETIME}s reached" >&2
		stop 0
	fi
	sleep 0.5 &
	NAP=$!
	wait $NAP 2>/dev/null
done
