# aegis-ship: shipping audit records to an OpenTelemetry collector (OTLP/HTTP JSON).
#   make -f aegis-ship/ship.mk ship-test     (from a clean clone; also via the root Makefile)
# ship-unit: cargo tests of the crate (backoff, Retry-After, cursor, rotation, 400/429/503).
# ship-e2e:  10,000 decisions shipped with `aegis audit ship --follow` to a REAL collector
#            (rotel, pinned, from PyPI into .venv), stopped/restarted and SIGKILLed midway.
SHIP_CARGO ?= cargo
SHIP_PYTHON ?= python3
include tools/venv.mk
SHIP_VENV := $(VENV)
export CARGO_BUILD_JOBS ?= 2

.PHONY: ship-test ship-unit ship-e2e ship-rotel

# Also links the collector binary to $(SHIP_VENV)/bin/rotel-agent: the binding tests
# (Python, Node, C/Go) start it from there (env AEGIS_ROTEL) to receive what their
# engine's `collector` option ships.
# rotel itself is pinned in requirements-dev.txt (the one venv rule, tools/venv.mk).
$(SHIP_VENV)/.ship-rotel-0.0.1a15: $(VENV_OK)
	ln -sf "$$($(SHIP_VENV)/bin/python -c 'import rotel,os;print(os.path.join(os.path.dirname(rotel.__file__),"rotel-agent"))')" $(SHIP_VENV)/bin/rotel-agent
	touch $@

# Absolute path of the collector binary, for the binding tests.
export AEGIS_ROTEL := $(abspath $(SHIP_VENV))/bin/rotel-agent

ship-rotel: $(SHIP_VENV)/.ship-rotel-0.0.1a15

ship-unit:
	$(SHIP_CARGO) test -p aegis-ship

ship-e2e: ship-rotel
	$(SHIP_CARGO) build -p aegis-cli
	$(SHIP_VENV)/bin/python aegis-ship/tests/e2e_rotel.py --aegis target/debug/aegis

ship-test: ship-unit ship-e2e
