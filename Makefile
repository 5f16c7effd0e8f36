# Two set-up commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist: one worker per core, up to 4 (each imports torch: ~0.5 GB); tests/conftest.py divides the
# cores' torch threads among them; --dist loadfile keeps a file's tests on one worker (module fixtures are
# built once). On 2 cores: pytest 8 min instead of 15-16.5 (fresh-clone CI, same quiet machine).
# PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
PYTEST_PARALLEL := $(if $(filter-out 0 1,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile,)
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
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) --doctest-modules scale_toolkit cli tests $(PYTEST_REPORT) $(PYTEST_ARGS)

test-fast: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow" --doctest-modules scale_toolkit cli tests $(PYTEST_REPORT) $(PYTEST_ARGS)

demo: install
	$(BIN)/scale demo --out $(DEMO_OUT)

# the demo's videos in a web page (http://127.0.0.1:8000/); `make demo` first
serve: install
	$(BIN)/scale serve --index $(DEMO_OUT)/index.faiss

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
