# aegis-ship: shipping audit records to an OpenTelemetry collector (OTLP/HTTP JSON).
#   make -f aegis-ship/ship.mk ship-test     (from a clean clone; also via the root Makefile)
# ship-unit: cargo tests of the crate (backoff, Retry-After, cursor, rotation, 400/429/503).
# ship-e2e:  10,000 decisions shipped with `aegis audit ship --follow` to a REAL collector
#            (rotel, pinned, from PyPI into .venv), stopped/restarted and SIGKILLed midway.
SHIP_CARGO ?= cargo
SHIP_PYTHON ?= python3
SHIP_VENV ?= .venv
SHIP_ROTEL := rotel==0.0.1a15
export CARGO_BUILD_JOBS ?= 2

.PHONY: ship-test ship-unit ship-e2e ship-rotel

$(SHIP_VENV)/.ship-rotel-0.0.1a15:
	test -x $(SHIP_VENV)/bin/python || $(SHIP_PYTHON) -m venv $(SHIP_VENV)
	$(SHIP_VENV)/bin/python -m pip install --quiet --pre '$(SHIP_ROTEL)'
	touch $@

ship-rotel: $(SHIP_VENV)/.ship-rotel-0.0.1a15

ship-unit:
	$(SHIP_CARGO) test -p aegis-ship

ship-e2e: ship-rotel
	$(SHIP_CARGO) build -p aegis-cli
	$(SHIP_VENV)/bin/python aegis-ship/tests/e2e_rotel.py --aegis target/debug/aegis

ship-test: ship-unit ship-e2e
