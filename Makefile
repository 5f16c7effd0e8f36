# Two set-up commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# the slowest tests at the end, so a slow suite says where its time went
PYTEST_REPORT := --durations=15
DEMO_OUT ?= scale-demo

.PHONY: install lint typecheck test test-fast demo serve bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/check_torchvision.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python scripts/check_torchvision.py
	touch $(STAMP)

# The checks that keep the code as it is, before any test runs: ruff, and import-linter's contracts
# (who may import whom: the layers and no circles; [tool.importlinter] in pyproject.toml).
lint: install
	$(BIN)/python -m ruff check scale_toolkit cli tests benchmarks
	$(BIN)/lint-imports

# Types (mypy, settings and the not-yet-typed list in pyproject.toml): the seams between stages are checked.
typecheck: install
	$(BIN)/python -m mypy

# The suite plus every docstring example in the library and the CLI.
test: lint typecheck
	$(BIN)/python -m pytest --doctest-modules scale_toolkit cli tests $(PYTEST_REPORT) $(PYTEST_ARGS)

test-fast: lint typecheck
	$(BIN)/python -m pytest -m "not slow" --doctest-modules scale_toolkit cli tests $(PYTEST_REPORT) $(PYTEST_ARGS)

demo: install
	$(BIN)/scale demo --out $(DEMO_OUT)

# the demo's videos in a web page (http://127.0.0.1:8000/); `make demo` first
serve: install
	$(BIN)/scale serve --index $(DEMO_OUT)/index.faiss

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
