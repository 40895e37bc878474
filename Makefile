# The two commands a newcomer needs: `make demo` and `make test`.
# Everything they need is installed here; nothing is installed by hand.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install lint clean-state

$(STAMP): setup.py
	bin/install_system_packages.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ml]'
	$(VENV)/bin/ssp infra fetch
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ssp demo

test: $(STAMP)
	bin/install_system_packages.sh --test
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
