# tether: the developer entry points. `make run` and `make test` are the README's quick start.
GO        ?= go
BIN       := bin
FUZZTIME  ?= 1000000x
PKGS      := ./...

.PHONY: all build run cluster chat test unit fuzz js-test chat-test bench bench-quick faults lint tidy clean

all: build

build:
	@mkdir -p $(BIN)
	@if [ -d cmd/tetherd ]; then $(GO) build -o $(BIN)/ ./cmd/...; else echo "server not built yet"; fi

run: build
	@if [ -x $(BIN)/tetherd ]; then $(BIN)/tetherd -dev; else echo "server not built yet: cmd/tetherd lands with the gateway issue"; fi

# cluster: a three-node cluster on this machine (tools/cluster.sh, docs/CLUSTER.md): one
# nats-server with JetStream, three tetherd -dev nodes on it, haproxy in front on
# 127.0.0.1:7010 (TETHER_CLUSTER_BASE moves every port), in the foreground until Ctrl-C.
cluster: build
	tools/cluster.sh $(BIN)/tetherd

# chat: the IM reference app (examples/chat, its README) with a gateway in the same
# process; open http://127.0.0.1:8080/?user=alice and ?user=bob. It needs the TypeScript
# SDK built (client/js/dist), which this does first.
chat:
	cd client/js && npm ci --no-audit --no-fund && npm run build
	$(GO) run ./examples/chat -embedded

# test: the race-enabled unit and integration tests, then every fuzz target for a bounded
# number of executions (about 10 s each on the reference machine; 20 s for the stream
# decoder). Counts, not durations: with a duration, Go's fuzzing coordinator can fail a
# target with a bare "context deadline exceeded" when its deadline races a starved worker
# (a known race in the coordinator; no input is found), which CI hit once. Minimizing a
# new interesting input is capped at 5 s (default 60 s) so the budget goes to exploring.
test: lint unit fuzz js-test chat-test

unit:
	$(GO) test -race -count=1 $(PKGS)

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeStream$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./protocol
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBodies$$' -fuzztime 250000x -fuzzminimizetime 5s ./protocol
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime 200000x -fuzzminimizetime 5s ./internal/wire
	$(GO) test -run '^$$' -fuzz '^FuzzUpgrade$$' -fuzztime 250000x -fuzzminimizetime 5s ./internal/wsproto
	$(GO) test -run '^$$' -fuzz '^FuzzDecoder$$' -fuzztime 150000x -fuzzminimizetime 5s ./internal/wsproto
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 400000x -fuzzminimizetime 5s ./internal/proxyhdr
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime 150000x -fuzzminimizetime 5s ./internal/tlsrec

# js-test: the TypeScript SDK (client/js): npm ci, build, then its Node tests (codec against
# PROTOCOL.md, the client against a real tetherd from bin/) and the headless-Chromium test.
js-test: build
	cd client/js && npm ci --no-audit --no-fund && TETHER_BIN_DIR=$(abspath $(BIN)) npm test

# chat-test: the chat example's headless-Chromium test (two users on two pages) against
# tetherd from bin/ (its Go tests run in unit).
chat-test: build
	TETHER_BIN_DIR=$(abspath $(BIN)) examples/chat/test/run.sh

# bench: the micro-benchmarks, then the standard load suite (tether-bench suite: the
# bench/floor probe in process and with a reading peer process, connect/idle/echo/
# pipelined/push/room/churn with server CPU profiles, the transports table (tetherd and
# the goroutine-per-connection baselines over tcp, tls, ws and wss: memory per idle
# connection, handshake rate, room fan-out CPU; about 1.5 of the minutes), tether-memtest),
# about 10 minutes on the 2-core reference machine. Raw results go to bench/results/, tables to the generated section of
# BENCHMARKS.md.
BENCHTIME ?= 200ms
bench:
	@mkdir -p $(BIN) bench/results
	$(GO) build -o $(BIN)/ ./cmd/tetherd ./cmd/tether-bench ./cmd/tether-memtest
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./protocol ./timingwheel | tee bench/results/micro.txt
	$(BIN)/tether-bench suite -results bench/results -md BENCHMARKS.md -micro bench/results/micro.txt \
		-tetherd $(BIN)/tetherd -memtest $(BIN)/tether-memtest

# bench-quick: the same suite scaled down 20 times (about a minute), into a scratch
# directory, to check the tooling rather than measure.
bench-quick:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/tetherd ./cmd/tether-bench ./cmd/tether-memtest
	$(BIN)/tether-bench suite -scale 20 -results /tmp/tether-bench-quick -md - -tetherd $(BIN)/tetherd -memtest $(BIN)/tether-memtest

# faults: issue 8's fault and abuse measurements against real tetherd processes (half-open
# clients in a network namespace, bad-token and wrong-secret floods, descriptor
# exhaustion, control-port lockout), about 5 minutes; needs root for the namespace.
# Results go to bench/results/issue8-*.txt; BENCHMARKS.md "Issue 8" explains them.
faults: build
	bench/faults/issue8.sh $(BIN)

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

tidy:
	$(GO) mod tidy

clean:
	rm -rf $(BIN)
