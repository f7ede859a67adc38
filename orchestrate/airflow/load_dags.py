"""Load the generated DAGs with Airflow and compare them with the Meltano schedules.

Runs inside an Airflow virtualenv (see check_with_airflow.sh):
    python load_dags.py SCHEDULES_JSON DAGS_DIR
Exit 0 when every schedule has a DAG with its cron expression and one task per job step, chained
in order, and Airflow reports no import error.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any


def main(schedules_json: str, dags_dir: str) -> int:
    """Compare what Airflow loaded with what Meltano schedules."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=dags_dir)
    problems: list[str] = [
        f"import error in {path}: {err}" for path, err in bag.import_errors.items()
    ]
    schedules: list[dict[str, Any]] = json.loads(Path(schedules_json).read_text())["schedules"][
        "job"
    ]
    for schedule in schedules:
        dag = bag.dags.get("meltano_" + schedule["name"])
        if dag is None:
            problems.append(f"no DAG for schedule {schedule['name']!r}")
            continue
        expression = getattr(dag.timetable, "expression", None)
        if expression != schedule["cron_interval"]:
            problems.append(f"{dag.dag_id}: cron {expression!r} != {schedule['cron_interval']!r}")
        steps = [s if isinstance(s, str) else " ".join(s) for s in schedule["job"]["tasks"]]
        tasks = sorted(dag.tasks, key=lambda task: int(task.task_id.split("_")[1]))
        commands = [task.bash_command for task in tasks]
        expected = [f"meltano --environment=$MELTANO_ENVIRONMENT run {step}" for step in steps]
        if commands != expected:
            problems.append(f"{dag.dag_id}: commands {commands} != {expected}")
        for before, after in itertools.pairwise(tasks):
            if before.task_id not in after.upstream_task_ids:
                problems.append(f"{dag.dag_id}: {after.task_id} does not follow {before.task_id}")
        if dag.max_active_runs != 1 or dag.catchup:
            problems.append(f"{dag.dag_id}: runs may overlap or catch up")
        print(f"{dag.dag_id}: {expression} -> {[task.task_id for task in tasks]}")
    extra = set(bag.dags) - {"meltano_" + s["name"] for s in schedules}
    problems += [f"DAG {dag_id} has no schedule in meltano.yml" for dag_id in sorted(extra)]
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print(f"{len(bag.dags)} DAGs loaded by Airflow, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
