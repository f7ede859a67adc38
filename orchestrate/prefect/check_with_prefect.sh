#!/usr/bin/env bash
# Optional CI stage: Prefect itself registers the generated deployments and runs the sync flow,
# which runs `meltano run` against the Pipedrive simulator into Postgres (rows are compared).
# Prefect is heavy, so it lives in its own virtualenv (.meltano/prefect-venv), never in .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${PREFECT_VENV:-.meltano/prefect-venv}"
if [[ ! -x "$VENV/bin/prefect" ]]; then
  .venv/bin/uv venv --quiet --python .venv/bin/python "$VENV"
  .venv/bin/uv pip install --quiet --python "$VENV/bin/python" "prefect>=3,<4"
fi
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python orchestrate/prefect/check_with_prefect.py "$(cd "$VENV" && pwd)/bin/python"
