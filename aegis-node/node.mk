# Node binding targets. Include from the root Makefile (`include aegis-node/node.mk`)
# or run directly from the repo root: make -f aegis-node/node.mk node-test
NODE_DIR := aegis-node
NAPI_BUILD := npx napi build --platform --release --js index.js --dts index.d.ts

# node-test needs ship-rotel (the real collector for test/collector.test.js, path in
# AEGIS_ROTEL): the root Makefile includes aegis-ship/ship.mk itself; run directly, this
# file includes it.
ifneq ($(firstword $(MAKEFILE_LIST)),Makefile)
include aegis-ship/ship.mk
endif

.PHONY: node-build node-dts-check node-test

node-build:
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	cd $(NODE_DIR) && CARGO_BUILD_JOBS=$${CARGO_BUILD_JOBS:-2} $(NAPI_BUILD)

# Rebuilds and fails if the committed generated loader or typings changed.
node-dts-check: node-build
	git diff --exit-code -- $(NODE_DIR)/index.d.ts $(NODE_DIR)/index.js

node-test: node-build ship-rotel
	cd $(NODE_DIR) && node --test test/
	cd $(NODE_DIR) && npx tsc --noEmit -p test/tsconfig.json
	node examples/node/agent.mjs > /dev/null
