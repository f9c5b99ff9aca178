# Two commands on a fresh machine:  `make quickstart`  and  `make test`.
# Installs use pip only, from the hash-pinned lock files (`make lock` refreshes them with uv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet --custom-compile-command "make lock"

.PHONY: install quickstart test lint bench lock docs docs-serve docs-reference screens clean

$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)  ## install, then close a month on SQLite with the sample data, in ./quickstart
	$(BIN)/billctl quickstart quickstart --force

test: $(STAMP)  ## every test: unit, SQLite, PostgreSQL, Redis (needs the local servers, see README)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff, the layering contracts (import-linter) and the type check (mypy)
	$(BIN)/ruff check billctl tests benchmarks scripts
	$(BIN)/lint-imports
	$(BIN)/mypy

docs-reference: $(STAMP)  ## rewrite the generated reference pages (commands, settings, exit codes, JSON output)
	$(BIN)/python scripts/gen_reference.py

screens: $(STAMP)  ## re-record the terminal screens the docs and the README show (runs the quickstart)
	$(BIN)/python scripts/screens.py

docs: $(STAMP)  ## build the documentation site into site/ (strict: a broken link or a missing page fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)  ## serve the documentation at http://127.0.0.1:8000 while you edit it
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

bench: $(STAMP)  ## benchmarks against the local PostgreSQL (minutes)
	$(BIN)/python -m benchmarks

lock: $(STAMP)  ## refresh the lock files from pyproject.toml, keeping current pins; UPGRADE=1 takes newer releases
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev -c requirements.lock $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) \
		-o requirements-dev.lock

clean:
	rm -rf $(VENV) quickstart site dist build .pytest_cache .hypothesis
