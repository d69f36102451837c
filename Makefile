# Aegis — one Makefile for every language. `make demo`, `make test`.
# Everything it needs comes from the registries: cargo (crates.io), pip into .venv
# (PyPI), npm ci (npm registry). CARGO_BUILD_JOBS keeps builds within 2 cores.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export CARGO_BUILD_JOBS ?= 2
CARGO ?= cargo
PYTHON ?= python3
include tools/venv.mk
AEGIS := target/release/aegis
DEMO_OUT := out/demo
BUNDLES := finance support analytics marketing hr-files chains ssrf trifecta

.PHONY: all build demo test check test-rust redis fleet-test lint vectors-check policy-test audit-doc-test cross-test bench clean venv fuzz fuzz-smoke

include aegis-py/py.mk
include aegis-ffi/ffi.mk
include aegis-node/node.mk
include aegis-ship/ship.mk

all: build

build:
	$(CARGO) build --release -p aegis-cli

venv: $(VENV_OK)

# A realistic agent session per bundle: every request decided, every decision
# recorded in a hash-chained audit log, and every log verified.
demo: build py-build ffi-build node-build
	@rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	@for b in $(BUNDLES); do \
	  echo "== $$b: policies/$$b/requests.jsonl"; \
	  $(AEGIS) eval -p policies/$$b --audit $(DEMO_OUT)/$$b.audit.jsonl policies/$$b/requests.jsonl \
	    | $(PYTHON) tools/show_decisions.py; \
	  $(AEGIS) audit verify $(DEMO_OUT)/$$b.audit.jsonl; \
	done
	@echo "audit logs: $(DEMO_OUT)/*.audit.jsonl"
	@echo "== Python agent (examples/python/agent.py) with @secure_tool guarding payments, files and SQL"
	$(PY_PYTHON) examples/python/agent.py
	@echo "== Go service (examples/go) guarding a payment through the C ABI"
	cd examples/go && $(GO) run . ../../policies/finance
	@echo "== Node agent (examples/node/agent.mjs) with secureTool"
	node examples/node/agent.mjs

test: test-rust lint vectors-check policy-test audit-doc-test py-test py-typecheck ffi-test node-dts-check node-test ship-test cross-test fleet-test fuzz-smoke
	@echo "make test: all suites passed"

# The fast inner loop: the core's and the CLI's tests (the shared vectors included, run
# by aegis-core/tests/vectors.rs), clippy and rustfmt — no bindings, no collector.
check:
	$(CARGO) test -q -p aegis-core -p aegis-cli 2>&1 | grep -E '^(test result|error|failures:)|FAILED|panicked' || true
	$(CARGO) test -q -p aegis-core -p aegis-cli >/dev/null 2>&1
	$(CARGO) clippy -p aegis-core -p aegis-cli --all-targets -- -D warnings
	$(CARGO) fmt --all -- --check || { echo "run: cargo fmt --all"; exit 1; }
	@echo "make check: passed"

# The same odd inputs through the CLI, Python, Node, C and Go (tests/cross/): the same
# decision bytes or the same refusal code from each.
cross-test: build py-build node-build ffi-build
	@mkdir -p target/ffi-test
	$(CC) -std=c11 -Wall -Wextra -Werror -O1 -I aegis-ffi/include tests/cross/c_runner.c \
	  target/release/libaegis.a -lpthread -ldl -lm -o target/ffi-test/cross_c
	$(PY_PYTHON) tests/cross/run.py $(AEGIS)

# A fleet of 4 processes in 3 languages (Python ×2, Node, Go) on one real redis-server
# (tests/fleet/race.py): a 10 s race on one budget checked against every member's audit
# file, `aegis state kill`/`revive` latency, and faults (frozen, gone, back empty).
fleet-test: build py-build node-build ffi-build redis
	cd tests/fleet/go && $(GO) vet . && $(GO) build $(GO_RELINK) -o $(CURDIR)/target/fleet-worker-go .
	$(PY_PYTHON) tests/fleet/race.py $(AEGIS) target/fleet-worker-go

# Debian's redis-server, for the fleet-state tests (each test starts its own on a free
# loopback port with a password, and stops it). Installed when missing.
REDIS_SERVER ?= redis-server
redis:
	@command -v $(REDIS_SERVER) >/dev/null || { \
	  echo "installing redis-server (Debian package)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	  $$SUDO systemctl disable --now redis-server >/dev/null 2>&1 || $$SUDO service redis-server stop >/dev/null 2>&1 || true; }
	@$(REDIS_SERVER) --version

test-rust: redis
	$(CARGO) test --workspace --exclude aegis-bench 2>&1 | tee out.test-rust.log | grep -E '^(test result|running|error|failures:)|FAILED|panicked' || true
	@! grep -qE 'FAILED|^error' out.test-rust.log
	@rm -f out.test-rust.log

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all -- --check || { echo "run: cargo fmt --all"; exit 1; }

# The generated vectors must match their authored sources (independent Python oracle).
vectors-check: $(VENV_OK)
	$(VPY) tests/vectors/generate.py --self-test
	$(VPY) tests/vectors/generate.py --check

policy-test: build
	$(AEGIS) test policies/ --coverage --junit out/policy-tests.junit.xml

# The third-party verifier printed in docs/audit.md must accept a log and reject tampering.
audit-doc-test: build
	$(PYTHON) tools/test_audit_doc.py $(AEGIS)

bench: ship-rotel
	$(CARGO) bench -p aegis-bench
	cargo bench --manifest-path benches/compare/Cargo.toml
	benches/bindings/run.sh

# Fuzzing (libFuzzer via cargo-fuzz, nightly): `make fuzz FUZZ_SECONDS=1800` for a long
# run of every target; CI runs the short smoke run. Crashes land in fuzz/artifacts/.
FUZZ_SECONDS ?= 300
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke:
	fuzz/run.sh 20

clean:
	$(CARGO) clean
	rm -rf out $(VENV)
