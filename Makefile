# The README's commands. Everything a fresh machine needs is installed from the project's files.
# Packages are installed with their bytecode compiled (uv does not compile by default): otherwise
# every process compiles its imports again where PYTHONDONTWRITEBYTECODE is set, which doubles
# the tap's start-up (about 0.5 s CPU more per run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
PKGS   := -e ./pipedrive-simulator -e ./tap-pipedrive -e ./target-pipeboard-postgres
STAMP  := $(VENV)/.pipeboard-installed
PYTEST_ARGS ?=
# Two workers: most tests wait on subprocesses, Postgres and HTTP, so two run well on two cores;
# a test module stays on one worker (its module fixtures are shared).
PYTEST_WORKERS ?= 2

.PHONY: setup demo test lint typecheck bench lock clean

setup: $(STAMP)

$(STAMP): requirements/dev.in requirements/constraints.txt tap-pipedrive/pyproject.toml \
          target-pipeboard-postgres/pyproject.toml pipedrive-simulator/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Pipeboard needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
	  { echo "Could not create a virtualenv: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python \
	  -c requirements/constraints.txt $(PKGS) -r requirements/dev.in
	@touch $@

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile \
	  $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash bench/run_all.sh $(BENCH_ARGS)

# Re-pin every dependency (see README: "Updating dependencies").
lock:
	$(UV) pip compile --quiet --python-version 3.11 --universal -o requirements/constraints.txt \
	  requirements/dev.in tap-pipedrive/pyproject.toml target-pipeboard-postgres/pyproject.toml \
	  pipedrive-simulator/pyproject.toml

clean:
	rm -rf $(VENV) .meltano .pytest_cache .mypy_cache .ruff_cache
