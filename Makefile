# farmwatch: `make demo` runs three emulated model farms end to end; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
CODE := edge collector farmwatch_shared farmwatch_emulators farmwatch_local dashboards

.PHONY: setup system-deps venv test lint demo bench clean

setup: system-deps venv

system-deps:
	@sh scripts/install-system-deps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

lint: setup
	$(VENV)/bin/ruff check $(CODE) tests dashboards benchmarks
	$(VENV)/bin/ruff format --check $(CODE) tests dashboards benchmarks
	$(VENV)/bin/mypy --strict $(CODE)

test: lint
	$(VENV)/bin/pytest

demo: setup
	$(PY) -m farmwatch_local.demo

bench: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
