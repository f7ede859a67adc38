#!/usr/bin/env bash
# The README's `make demo`: Pipedrive simulator -> tap-pipedrive -> target-pipeboard-postgres ->
# embedded Postgres under .meltano/postgres. Run it again and the second run is incremental
# (Meltano keeps the bookmarks in .meltano/meltano.db).
#
# Needs only the project's virtualenv on PATH (make demo does that): no Postgres, Redis or Docker.
set -euo pipefail

cd "$(dirname "$0")/.."
PROJECT_ROOT="$(pwd)"
ENVIRONMENT="dev"
SCHEMA="${DEMO_SCHEMA:-pipedrive}"
SEED="${DEMO_SEED:-42}"
PG_DATA="${PROJECT_ROOT}/.meltano/postgres"

for tool in pipedrive-simulator meltano python; do
  command -v "$tool" >/dev/null || { echo "demo: '$tool' is not on PATH; run it through 'make demo'" >&2; exit 1; }
done

mkdir -p .meltano/logs
SIM_LOG=".meltano/logs/simulator.log"
: >"$SIM_LOG"
pipedrive-simulator --host 127.0.0.1 --port 0 --seed "$SEED" >"$SIM_LOG" 2>&1 &
SIM_PID=$!
stop_simulator() { kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; }
trap stop_simulator EXIT

# First line of the simulator's output: "serving http://127.0.0.1:PORT token=TOKEN".
first_line=""
for _ in $(seq 1 300); do
  first_line="$(head -n 1 "$SIM_LOG")"
  [[ "$first_line" == serving* ]] && break
  kill -0 "$SIM_PID" 2>/dev/null || { echo "demo: the simulator exited:" >&2; cat "$SIM_LOG" >&2; exit 1; }
  sleep 0.1
done
[[ "$first_line" == serving* ]] || { echo "demo: the simulator did not start within 30 s" >&2; exit 1; }
read -r _ api_url token_field <<<"$first_line"
export TAP_PIPEDRIVE_API_URL="$api_url"
export TAP_PIPEDRIVE_API_TOKEN="${token_field#token=}"
echo "demo: Pipedrive simulator (seed $SEED) at $api_url"

# Install the plugins only when they are missing or their definitions changed.
python scripts/plugins_installed.py --quiet || {
  echo "demo: installing the plugins (meltano install)"
  # Bytecode compiled once here, not by every run (uv leaves it to the first import).
  UV_COMPILE_BYTECODE=1 meltano --environment="$ENVIRONMENT" install >.meltano/logs/demo-install.log 2>&1 || {
    cat .meltano/logs/demo-install.log >&2
    exit 1
  }
}
python scripts/plugins_installed.py --record

STATE_ID="$ENVIRONMENT:tap-pipedrive-to-target-pipeboard-postgres"
loaded="$(python scripts/embedded_pg.py total --data-dir "$PG_DATA" --schema "$SCHEMA" 2>/dev/null || echo 0)"
if [[ "$loaded" == "0" ]]; then
  # The database is new or was removed: bookmarks from an earlier run would skip its history.
  meltano --environment="$ENVIRONMENT" state clear --force "$STATE_ID" >/dev/null 2>&1 || true
fi
if meltano --environment="$ENVIRONMENT" state get "$STATE_ID" 2>/dev/null | grep -q bookmarks; then
  # The simulator starts from the same seeded account each time: move its clock on and change
  # some records, so this incremental run has something new to pick up.
  changes="$(python scripts/simulator_control.py "$api_url" changes --seconds 3600 --count 25)"
  echo "demo: incremental run from the bookmarks of the previous run (state ID $STATE_ID); $changes"
else
  echo "demo: first run: full extraction"
fi
RUN_LOG=".meltano/logs/demo-run.log"
echo "demo: meltano --environment=$ENVIRONMENT run tap-pipedrive target-pipeboard-postgres (log: $RUN_LOG)"
if ! meltano --environment="$ENVIRONMENT" run tap-pipedrive target-pipeboard-postgres >"$RUN_LOG" 2>&1; then
  tail -n 40 "$RUN_LOG" >&2
  echo "demo: the run failed; the whole log is in $RUN_LOG" >&2
  exit 1
fi
echo "demo: $(python scripts/simulator_control.py "$api_url" stats)"
stop_simulator
trap - EXIT

python scripts/embedded_pg.py report --data-dir "$PG_DATA" --schema "$SCHEMA"
