# The two commands a newcomer needs: `make demo` and `make test`.
# Everything they need is installed here; nothing is installed by hand.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Airflow 3 does not install beside ssp's pins (it needs SQLAlchemy 2.1): it gets a virtual environment of
# its own, for the DAG test (tests/test_users_dag.py) and for running dags/ locally
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

.PHONY: demo test install lint clean-state airflow

$(STAMP): setup.py
	bin/install_system_packages.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ml]'
	$(VENV)/bin/ssp infra fetch
	touch $(STAMP)

install: $(STAMP)

$(AIRFLOW_STAMP): dags/airflow-requirements.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r dags/airflow-requirements.txt
	touch $(AIRFLOW_STAMP)

airflow: $(AIRFLOW_STAMP)

demo: $(STAMP)
	$(VENV)/bin/ssp demo

test: $(STAMP) $(AIRFLOW_STAMP)
	bin/install_system_packages.sh --test
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
