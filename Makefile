# ombud — the two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_WORKERS ?= auto

.PHONY: run test lint typecheck unit install lock clean

install: $(STAMP)

# Reinstall only when the lock file or the project metadata changes.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing dependencies from requirements.lock into $(VENV) ..."
	@$(BIN)/python -m pip install --disable-pip-version-check --require-hashes --no-deps \
		-r requirements.lock > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(BIN)/python -m pip install --disable-pip-version-check --no-deps -e . \
		>> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/ombud demo --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS)

test: lint typecheck unit

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
