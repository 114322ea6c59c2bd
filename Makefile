# Build and test entry points. `make test` is what CI runs (.ci/run).
#
#   make deps       install Debian packages and .venv (scripts/install-deps)
#   make lint       ruff check + ruff format --check + lint-imports (the layers)
#   make typecheck  mypy --strict on the package
#   make test       deps, lint, typecheck, then every test inside the private
#                   network namespace (scripts/netns-run)
#   make unit       tests/unit only, fast, no namespace
#   make demo       scripts/demo
#   make bench      python -m bench
#
# PYTEST_ARGS adds pytest arguments: make test PYTEST_ARGS="tests/e2e -x".

VENV := .venv
PY := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff
MYPY := $(VENV)/bin/mypy
PYTEST := $(PY) -m pytest
LINT_PATHS := gitops_mail tests bench
NETNS_RUN := scripts/netns-run

.PHONY: deps lint typecheck test unit demo bench

deps:
	@scripts/install-deps

lint: deps
	@echo "== ruff check"
	@$(RUFF) check $(LINT_PATHS)
	@echo "== ruff format --check"
	@$(RUFF) format --check $(LINT_PATHS)
	@echo "== lint-imports (layers and side-effect modules: [tool.importlinter] in pyproject.toml)"
	@PYTHONPATH=$(CURDIR) .venv-lint/bin/lint-imports --no-cache

typecheck: deps
	@echo "== mypy --strict"
	@$(MYPY) --strict

# pytest exits 5 when it collects no test: any non-zero status fails make.
test: deps lint typecheck
	@echo "== pytest (inside $(NETNS_RUN))"
	@$(NETNS_RUN) $(PYTEST) $(PYTEST_ARGS)

unit: deps
	@$(PYTEST) tests/unit $(PYTEST_ARGS)

demo: deps
	@scripts/demo

bench: deps
	@$(PY) -m bench $(BENCH_ARGS)
