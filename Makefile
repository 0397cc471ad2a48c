# jaybird: `make test` sets up everything the suite needs and runs it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck pytest peers venv bench bench-parser clean serve

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Third-party peers the interop tests start (Debian packages; installed when root).
peers:
	bash scripts/install-peers.sh

lint: venv
	$(VENV)/bin/ruff check jaybird tests bench
	$(VENV)/bin/ruff format --check jaybird tests bench

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv peers
	$(VENV)/bin/pytest -q -p no:cacheprovider

test: lint typecheck pytest

# Run the server with its built-in defaults (localhost, ports 5222/5223, state in ./data).
serve: venv
	$(VENV)/bin/jaybird serve --data-dir ./data

bench-parser: venv
	$(PY) bench/parser.py

# Prosody, ejabberd and jaybird under the same load (bench/README.md); BENCH_ARGS="--quick" for a smoke run.
bench: venv peers
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
