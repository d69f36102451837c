# Python binding (aegis-py): build and test. Include from the top-level Makefile
# (`include aegis-py/py.mk`) or run directly from the repository root:
#   make -f aegis-py/py.mk py-test
# Needs rustup's cargo and python3 (>= 3.9) on PATH.

include tools/venv.mk
PY_VENV    := $(VENV)
PY_BIN     := $(PY_VENV)/bin
PY_PYTHON  := $(VPY)
PY_STAMP   := $(VENV_OK)

.PHONY: py-build py-test py-typecheck py-example

# Builds the extension (release, 2 jobs) and installs it into the venv (editable).
py-build: $(PY_STAMP)
	VIRTUAL_ENV=$(abspath $(PY_VENV)) PYO3_PYTHON=$(abspath $(PY_PYTHON)) CARGO_BUILD_JOBS=2 \
		$(PY_BIN)/maturin develop --release -m aegis-py/Cargo.toml

# py-test needs ship-rotel (aegis-ship/ship.mk, included by the root Makefile): the
# collector test ships to a real rotel collector (AEGIS_ROTEL).
py-test: py-build ship-rotel
	$(PY_PYTHON) -m pytest -q aegis-py/tests

# mypy --strict over the package, a usage file and the example, and stubtest of the
# native module's stub.
py-typecheck: py-build
	$(PY_BIN)/mypy --strict aegis-py/python/aegis aegis-py/tests/typing_usage.py examples/python/agent.py
	$(PY_PYTHON) -m mypy.stubtest aegis._aegis

py-example: py-build
	$(PY_PYTHON) examples/python/agent.py
