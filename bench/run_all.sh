#!/usr/bin/env bash
# `make bench`: the three benchmarks, raw output under bench/out/run-<UTC time>/ (git-ignored;
# bench/out/latest points at the newest run). Results to copy into bench/RESULTS.md are the
# *.md files there; the *.log files hold each script's stderr, the *.json files its raw figures.
#
#   bash bench/run_all.sh [--full] [tap] [stage] [target]     (no names: all three)
#   make bench BENCH_ARGS="--full tap"
#
# Default (quick) sizes finish in about 10-15 minutes on 2 shared cores; --full (or BENCH_FULL=1)
# uses the sizes RESULTS.md was measured with (about an hour, and ~5 GB of disk under bench/out
# for the 1,000,000-row Singer file). Every size can be set by an environment variable:
#
#   what                                   variable             quick     --full
#   tap: deals for throughput (0: skip)    TAP_DEALS            25000     25000
#   tap: also the PyPI tap-pipedrive       TAP_PYPI             1         1
#   stage history: deals                   STAGE_DEALS          500       2000
#   stage history: deals moved (+ edited)  STAGE_MOVED          20        50
#   stage history: PyPI tap's dealflow     STAGE_COMPARE        1         1
#   stage history: SQL expansion (0: skip) EXPANSION_DEALS      20000     100000
#   target: rows, one run per value        TARGET_ROWS          50000     "100000 1000000"
#   target: rounds, one per TARGET_ROWS    TARGET_REPEAT        1         "3 1"
#   target: also the existing targets      TARGET_COMPARE       1         1
#   target: rows for that comparison       TARGET_COMPARE_ROWS  50000     100000
#
# (quick: the comparison rides along with the TARGET_ROWS run of the same size; --full: a run of
# its own, one round.)
#
# The target benchmark and the stage-history SQL expansion need Postgres:
# PIPEBOARD_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres). When it
# does not answer they are skipped (and listed as skipped at the end).
#
# Comparison tools (the PyPI tap-pipedrive, meltanolabs- and pipelinewise-target-postgres) are
# installed by the scripts themselves, pinned, into bench/.venvs/ on first use (needs PyPI).
# The tap's API-cost figures count requests and tokens, so they do not depend on the machine's
# load; the throughput and target figures do: note the load average printed with them.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

FULL="${BENCH_FULL:-0}"
WANT=()
for arg in "$@"; do
  case "$arg" in
    --full) FULL=1 ;;
    tap | stage | target) WANT+=("$arg") ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_all.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
[[ ${#WANT[@]} -gt 0 ]] || WANT=(tap stage target)

if [[ "$FULL" == 1 ]]; then
  : "${TAP_DEALS:=25000}" "${STAGE_DEALS:=2000}" "${STAGE_MOVED:=50}" "${EXPANSION_DEALS:=100000}"
  : "${TARGET_ROWS:=100000 1000000}" "${TARGET_REPEAT:=3 1}" "${TARGET_COMPARE_ROWS:=100000}"
else
  : "${TAP_DEALS:=25000}" "${STAGE_DEALS:=500}" "${STAGE_MOVED:=20}" "${EXPANSION_DEALS:=20000}"
  : "${TARGET_ROWS:=50000}" "${TARGET_REPEAT:=1}" "${TARGET_COMPARE_ROWS:=50000}"
fi
: "${TAP_PYPI:=1}" "${STAGE_COMPARE:=1}" "${TARGET_COMPARE:=1}"
DATABASE_URL="${PIPEBOARD_BENCH_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

# The project's interpreter: `python` on PATH (make puts .venv/bin first), else .venv/bin/python.
PY=python
if ! "$PY" -c 'import tap_pipedrive, pipedrive_simulator, target_pipeboard_postgres' 2>/dev/null; then
  PY="$ROOT/.venv/bin/python"
  "$PY" -c 'import tap_pipedrive, pipedrive_simulator, target_pipeboard_postgres' 2>/dev/null || {
    echo "run_all.sh: the project's packages are not installed: run 'make setup' (or 'make bench')" >&2
    exit 1
  }
fi

RUN_DIR="$ROOT/bench/out/run-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RUN_DIR"
ln -sfn "$(basename "$RUN_DIR")" "$ROOT/bench/out/latest"
export PYTHONUNBUFFERED=1

{
  echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); mode: $([[ $FULL == 1 ]] && echo full || echo quick)"
  echo "machine: $(nproc) cores, $(uname -sr), $("$PY" --version 2>&1), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
} | tee "$RUN_DIR/machine.txt"

FAILED=()
SKIPPED=()
SECONDS=0

# run NAME CMD...: stdout to NAME.md (or .jsonl), stderr to NAME.log; remember a failure.
run() {
  local name="$1" out="$2"
  shift 2
  echo
  echo "== $name: $*"
  echo "   (load average: $(cut -d' ' -f1-3 /proc/loadavg); output: $RUN_DIR/$out)"
  local started=$SECONDS
  if "$@" >"$RUN_DIR/$out" 2>"$RUN_DIR/$name.log"; then
    echo "   done in $((SECONDS - started)) s"
  else
    echo "   FAILED (exit $?) after $((SECONDS - started)) s; last lines of $RUN_DIR/$name.log:"
    tail -n 15 "$RUN_DIR/$name.log" | sed 's/^/   | /'
    FAILED+=("$name")
  fi
}

db_answers() {
  "$PY" - "$DATABASE_URL" <<'EOF' 2>/dev/null
import sys
import psycopg
psycopg.connect(sys.argv[1], connect_timeout=5).close()
EOF
}
HAVE_DB=0
if db_answers; then HAVE_DB=1; fi

wants() { [[ " ${WANT[*]} " == *" $1 "* ]]; }

if wants tap; then
  args=(--deals-throughput "$TAP_DEALS")
  [[ "$TAP_PYPI" == 1 ]] && args+=(--pypi)
  rm -f bench/out/tap_pypi.json
  run tap tap.md "$PY" bench/tap_bench.py "${args[@]}"
  [[ -f bench/out/tap_pypi.json ]] && cp bench/out/tap_pypi.json "$RUN_DIR/"
fi

if wants stage; then
  args=(--deals "$STAGE_DEALS" --moved "$STAGE_MOVED" --database-url "$DATABASE_URL")
  [[ "$STAGE_COMPARE" == 1 ]] && args+=(--compare)
  if [[ "$EXPANSION_DEALS" != 0 ]]; then
    if [[ "$HAVE_DB" == 1 ]]; then
      args+=(--expansion-deals "$EXPANSION_DEALS")
    else
      SKIPPED+=("stage-history SQL expansion (no Postgres at $DATABASE_URL)")
    fi
  fi
  rm -f bench/out/stage_history.json
  run stage_history stage_history.md "$PY" bench/stage_history_bench.py "${args[@]}"
  [[ -f bench/out/stage_history.json ]] && cp bench/out/stage_history.json "$RUN_DIR/"
fi

if wants target; then
  if [[ "$HAVE_DB" == 1 ]]; then
    read -r -a rows_list <<<"$TARGET_ROWS"
    read -r -a repeat_list <<<"$TARGET_REPEAT"
    for i in "${!rows_list[@]}"; do
      rows="${rows_list[$i]}"
      repeat="${repeat_list[$i]:-${repeat_list[-1]}}"
      # In quick mode the comparison rides along with the one run of the same size.
      extra=()
      if [[ "$TARGET_COMPARE" == 1 && "$FULL" != 1 && "$rows" == "$TARGET_COMPARE_ROWS" ]]; then
        extra=(--compare)
      fi
      rm -f bench/out/target_results.json
      run "target_${rows}" "target_${rows}.jsonl" "$PY" bench/target_bench.py \
        --rows "$rows" --repeat "$repeat" --database-url "$DATABASE_URL" "${extra[@]}"
      cp bench/out/target_results.json "$RUN_DIR/target_${rows}.json" 2>/dev/null
    done
    if [[ "$TARGET_COMPARE" == 1 && "$FULL" == 1 ]]; then
      rm -f bench/out/target_results.json
      run "target_${TARGET_COMPARE_ROWS}_compare" "target_${TARGET_COMPARE_ROWS}_compare.jsonl" \
        "$PY" bench/target_bench.py --rows "$TARGET_COMPARE_ROWS" --repeat 1 --compare \
        --database-url "$DATABASE_URL"
      cp bench/out/target_results.json "$RUN_DIR/target_${TARGET_COMPARE_ROWS}_compare.json" 2>/dev/null
    fi
  else
    SKIPPED+=("target benchmark (no Postgres at $DATABASE_URL; set PIPEBOARD_BENCH_DATABASE_URL)")
  fi
fi

echo
echo "== finished in $((SECONDS / 60)) min $((SECONDS % 60)) s; figures in $RUN_DIR (also bench/out/latest):"
for f in "$RUN_DIR"/*; do
  [[ -s "$f" ]] && echo "   $(basename "$f")"
done
for s in "${SKIPPED[@]}"; do echo "   skipped: $s"; done
if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "   FAILED: ${FAILED[*]} (see their .log files)"
  exit 1
fi
