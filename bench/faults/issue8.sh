#!/bin/sh
# issue8.sh BIN_DIR [RESULTS_DIR] [SUFFIX]: runs every issue 8 fault measurement of
# tether-bench (package bench/faults) against BIN_DIR/tetherd, each into
# RESULTS_DIR/issue8-<tag>SUFFIX.txt (default bench/results). Needs root for halfopen
# (a network namespace). About 5 minutes. Example, from the module root:
#   go build -o /tmp/m/ ./cmd/... && sudo bench/faults/issue8.sh /tmp/m
set -u
bin=${1:?usage: issue8.sh BIN_DIR [RESULTS_DIR] [SUFFIX]}
out=${2:-bench/results}
sfx=${3:-}
bench=${BENCH:-$bin/tether-bench}
mkdir -p "$out"
run() { # run FILE-TAG COMMAND FLAGS...
	tag=$1
	name=$2
	shift 2
	{
		echo "# $(date -u +%FT%TZ) $(go version 2>/dev/null) nproc=$(nproc) GOMAXPROCS=${GOMAXPROCS:-default}; load before $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "# tether-bench $name -tetherd $bin/tetherd $*"
		"$bench" "$name" -tetherd "$bin/tetherd" "$@" 2>/dev/null
		echo "# exit $?; load after $(cut -d' ' -f1-3 /proc/loadavg)"
	} >"$out/issue8-$tag$sfx.txt"
	cat "$out/issue8-$tag$sfx.txt"
}
run loginflood loginflood -duration 15s
[ "${SKIP_NOBAN:-}" ] || run loginflood-noban loginflood -duration 15s -tetherd-args "-flap-threshold -1"
run secretflood secretflood -duration 15s
run emfile emfile -nofile 256
run lockout lockout -idle 1024
run lockout-refill lockout -idle 1024 -refill
[ "${SKIP_HALFOPEN:-}" ] || run halfopen halfopen -trials 20 -heartbeat 5s -tick 50ms
