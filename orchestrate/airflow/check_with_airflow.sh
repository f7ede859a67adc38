#!/usr/bin/env bash
# Optional CI stage: Airflow itself loads the generated DAGs and they match `meltano schedule list`.
# Airflow is heavy, so it lives in its own virtualenv (.meltano/airflow-venv), never in .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${AIRFLOW_VENV:-.meltano/airflow-venv}"
if [[ ! -x "$VENV/bin/airflow" ]]; then
  .venv/bin/uv venv --quiet --python .venv/bin/python "$VENV"
  .venv/bin/uv pip install --quiet --python "$VENV/bin/python" "apache-airflow>=3,<4"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/meltano schedule list --format=json >"$work/schedules.json" 2>/dev/null
AIRFLOW_HOME="$work/airflow" AIRFLOW__CORE__LOAD_EXAMPLES=False \
  "$VENV/bin/python" orchestrate/airflow/load_dags.py "$work/schedules.json" orchestrate/airflow/dags/generated
