#!/usr/bin/env bash
# The chat example's browser test (its Go tests run with the rest: go test ./...).
# It reuses client/js's node_modules (playwright-core), dist (the SDK the page loads)
# and test harness (tetherd from TETHER_BIN_DIR, else built from the repository), so
# it installs and builds those first when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ ! -d client/js/node_modules/playwright-core ]; then (cd client/js && npm ci --no-audit --no-fund); fi
if [ ! -f client/js/dist/index.js ]; then (cd client/js && npm run build --silent); fi
cd examples/chat && exec node --test --test-timeout=180000 test/
