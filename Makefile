# tether: the developer entry points. `make run` and `make test` are the README's quick start.
GO        ?= go
BIN       := bin
FUZZTIME  ?= 20s
PKGS      := ./...

.PHONY: all build run test unit fuzz bench lint tidy clean

all: build

build:
	@mkdir -p $(BIN)
	@if [ -d cmd/tetherd ]; then $(GO) build -o $(BIN)/ ./cmd/...; else echo "server not built yet"; fi

run: build
	@if [ -x $(BIN)/tetherd ]; then $(BIN)/tetherd -dev; else echo "server not built yet: cmd/tetherd lands with the gateway issue"; fi

# test: the race-enabled unit and integration tests, then every fuzz target for a bounded time.
test: lint unit fuzz

unit:
	$(GO) test -race -count=1 $(PKGS)

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeStream$$' -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBodies$$' -fuzztime 10s ./protocol
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime 10s ./server/control/wire

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

tidy:
	$(GO) mod tidy

clean:
	rm -rf $(BIN)
