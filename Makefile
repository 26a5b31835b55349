# ombud — the two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_WORKERS ?= auto

.PHONY: run test lint typecheck unit install lock clean eval-guards bench policy-test registry-check

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

# The demo keeps two regions' subjects apart: eu in the main database, us in a file of its own.
run: $(STAMP)
	OMBUD_PRIVACY__REGIONS='["eu", "us"]' \
	OMBUD_PRIVACY__REGION_DATABASES='{"us": "sqlite:///./var/ombud-us.db"}' \
	$(BIN)/ombud demo --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS)

test: lint typecheck policy-test registry-check unit

# The default policy bundle's Rego unit tests.
policy-test: $(STAMP)
	$(BIN)/ombud policy test

# The model files declared in models/ (schema, names, versions, artifact digests).
registry-check: $(STAMP)
	$(BIN)/ombud registry check models

# Guard quality on the held-out test split (recall, false positives, over-redaction).
eval-guards: $(STAMP)
	$(BIN)/python bench/eval_injection.py --split test
	$(BIN)/python bench/eval_pii.py --split test

# Benchmarks (need wrk: apt-get install wrk); results go in docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python bench/predict.py
	$(BIN)/python bench/guards.py
	$(BIN)/python bench/batching_http.py

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache

# Scan the pinned set in requirements.lock for known vulnerabilities, without installing it.
# Needs network access to the advisory database, so it is not part of `make test`.
# --strict: a package that could not be checked fails the audit instead of passing silently.
TOOLS_VENV    := .venv-tools
PIP_AUDIT     := pip-audit==2.10.1
AUDIT_SERVICE ?= pypi

.PHONY: audit-deps
audit-deps:
	@test -x $(TOOLS_VENV)/bin/pip-audit || { $(PYTHON) -m venv $(TOOLS_VENV) && \
		$(TOOLS_VENV)/bin/python -m pip install --disable-pip-version-check --quiet $(PIP_AUDIT); }
	$(TOOLS_VENV)/bin/pip-audit --requirement requirements.lock --require-hashes --disable-pip \
		--strict --vulnerability-service $(AUDIT_SERVICE) --progress-spinner off
