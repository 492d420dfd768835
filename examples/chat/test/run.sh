#!/usr/bin/env bash
# The chat example's tests: the Go tests (service logic against an in-process gateway,
# both history stores), then the headless-Chromium test, which reuses client/js's
# node_modules (playwright-core), dist (the SDK the page loads) and test harness
# (tetherd from TETHER_BIN_DIR, else built from the repository).
set -euo pipefail
cd "$(dirname "$0")/../../.."
go test -race -count=1 ./examples/chat/
if [ ! -d client/js/node_modules/playwright-core ]; then (cd client/js && npm ci --no-audit --no-fund); fi
(cd client/js && npm run build --silent)
cd examples/chat && node --test --test-timeout=180000 test/
