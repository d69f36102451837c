# The repository's one Python virtual environment (.venv) and its one rule. Every .mk
# file includes this (so each still runs on its own: `make -f aegis-py/py.mk py-test`);
# nothing else creates or fills .venv. It holds the vector generator's needs, the
# Python binding's test tools and the rotel collector, all pinned.
ifndef AEGIS_VENV_MK
AEGIS_VENV_MK := 1

VENV ?= .venv
VPY := $(VENV)/bin/python
VENV_OK := $(VENV)/.ok
VENV_REQUIREMENTS := requirements-dev.txt aegis-py/requirements-test.txt

$(VENV_OK): $(VENV_REQUIREMENTS)
	test -x $(VPY) || python3 -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet $(addprefix -r ,$(VENV_REQUIREMENTS))
	touch $@

endif
