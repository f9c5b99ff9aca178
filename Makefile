# Two commands on a fresh machine:  `make quickstart`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install quickstart test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)  ## install, then close a month on SQLite with the sample data, in ./quickstart
	$(BIN)/billctl quickstart quickstart --force

test: $(STAMP)  ## every test: unit, SQLite, PostgreSQL, Redis (needs the local servers, see README)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check billctl tests benchmarks

bench: $(STAMP)  ## benchmarks against the local PostgreSQL (minutes)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) quickstart .pytest_cache .hypothesis
