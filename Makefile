# farmwatch: `make demo` runs three emulated model farms end to end; `make test` runs the tests.
VENV ?= .venv
# grafana-client pulls in urllib3-future, which replaces the urllib3 module: keep it out of the
# main venv (what the services run with) and test the Grafana push in a venv of its own.
GRAFANA_VENV ?= .venv-grafana
PY := $(VENV)/bin/python
CODE := edge collector farmwatch_shared farmwatch_emulators farmwatch_local dashboards

.PHONY: setup system-deps test-deps venv test lint demo bench clean

setup: system-deps venv

system-deps:
	@sh scripts/install-system-deps.sh

test-deps:
	@sh scripts/install-system-deps.sh --tests

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

$(GRAFANA_VENV)/.installed: pyproject.toml
	python3 -m venv $(GRAFANA_VENV)
	$(GRAFANA_VENV)/bin/pip install --quiet --upgrade pip
	$(GRAFANA_VENV)/bin/pip install --quiet -e '.[dev,grafana]'
	touch $@

lint: setup test-deps
	$(VENV)/bin/ruff check $(CODE) tests benchmarks
	$(VENV)/bin/ruff format --check $(CODE) tests benchmarks
	$(VENV)/bin/mypy --strict $(CODE)

test: lint $(GRAFANA_VENV)/.installed
	$(GRAFANA_VENV)/bin/pytest tests/test_grafana_push.py
	$(VENV)/bin/pytest --ignore=tests/test_grafana_push.py

demo: setup
	$(PY) -m farmwatch_local.demo

bench: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) $(GRAFANA_VENV) var .pytest_cache .mypy_cache .ruff_cache
