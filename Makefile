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

.PHONY: setup demo test test-extended lint typecheck bench lock clean sdk-canary

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

# Heavy checks outside `make test` (marked `extended`): the plugin definitions installed from
# PyPI into a new Meltano project. The Airflow and Prefect checks are in orchestrate/.
test-extended: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile \
	  -m extended $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash bench/run_all.sh $(BENCH_ARGS)

# The seam tests and the SDK's standard suites against the newest singer-sdk the registry offers,
# in a virtualenv of its own (not part of `make test`; see README: "Updating dependencies").
# The packages' `singer-sdk` range is overridden; everything else resolves to its newest version.
CANARY_VENV  ?= .venv-sdk-canary
CANARY_BIN   := $(CANARY_VENV)/bin
CANARY_TESTS := tap-pipedrive/tests/test_tap_sdk_seam.py tap-pipedrive/tests/test_tap_standard.py \
                tests/test_sdk_seams.py \
                target-pipeboard-postgres/tests/test_target_sdk_suite.py \
                $(wildcard target-pipeboard-postgres/tests/test_target_sdk_seam.py)

sdk-canary:
	@test -x $(CANARY_BIN)/python || $(PYTHON) -m venv $(CANARY_VENV)
	$(CANARY_BIN)/python -m pip install --quiet --disable-pip-version-check uv
	echo singer-sdk > $(CANARY_VENV)/override.txt
	$(CANARY_BIN)/uv pip install --quiet --upgrade --python $(CANARY_BIN)/python \
	  --override $(CANARY_VENV)/override.txt $(PKGS) -r requirements/dev.in
	@$(CANARY_BIN)/python -c 'import importlib.metadata as m; \
	  print("sdk-canary: singer-sdk", m.version("singer-sdk"), "(pinned:", \
	  [l.split("==")[1].strip() for l in open("requirements/constraints.txt") if l.startswith("singer-sdk==")][0] + ")")'
	PATH="$(CURDIR)/$(CANARY_BIN):$$PATH" $(CANARY_BIN)/python -m pytest -p no:cacheprovider \
	  -n $(PYTEST_WORKERS) --dist loadfile $(CANARY_TESTS)

# Re-pin every dependency (see README: "Updating dependencies").
lock:
	$(UV) pip compile --quiet --python-version 3.11 --universal -o requirements/constraints.txt \
	  requirements/dev.in tap-pipedrive/pyproject.toml target-pipeboard-postgres/pyproject.toml \
	  pipedrive-simulator/pyproject.toml

clean:
	rm -rf $(VENV) $(CANARY_VENV) .meltano .pytest_cache .mypy_cache .ruff_cache
