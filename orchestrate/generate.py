"""Generate the Airflow DAGs, Prefect flows, Kubernetes CronJobs and crontab from the schedules.

    python orchestrate/generate.py            run `meltano schedule list --format=json`, write files
    python orchestrate/generate.py --check    exit 1 when the committed files are stale
    python orchestrate/generate.py --input schedules.json --airflow-out DIR --kubernetes-out DIR
        --cron-out DIR --prefect-out DIR

meltano.yml stays the one place where schedules are defined: after editing a schedule there, run
this and commit the result (a test fails while the generated files are stale).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import airflow_dags
import crontab
import kubernetes_manifests
import prefect_flows
from schedules import ScheduleError, parse_schedules, read_meltano_schedules

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
AIRFLOW_OUT = HERE / "airflow" / "dags" / "generated"
KUBERNETES_OUT = HERE / "kubernetes" / "generated"
CRON_OUT = HERE / "cron"
PREFECT_OUT = HERE / "prefect"


def _sync(out: Path, files: dict[str, str], pattern: str, check: bool) -> bool:
    """Write ``files`` into ``out`` (removing stale ones); with ``check``, only compare."""
    existing = {path.name: path.read_text() for path in out.glob(pattern)}
    if check:
        return existing == files
    out.mkdir(parents=True, exist_ok=True)
    for name in set(existing) - set(files):
        (out / name).unlink()
    for name, text in files.items():
        (out / name).write_text(text)
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--input", type=Path, help="schedule JSON (default: ask meltano)")
    parser.add_argument("--airflow-out", type=Path, default=AIRFLOW_OUT)
    parser.add_argument("--kubernetes-out", type=Path, default=KUBERNETES_OUT)
    parser.add_argument("--cron-out", type=Path, default=CRON_OUT)
    parser.add_argument("--prefect-out", type=Path, default=PREFECT_OUT)
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)

    if args.input:
        payload = json.loads(args.input.read_text())
    else:
        payload = read_meltano_schedules(PROJECT_ROOT)
    try:
        jobs = parse_schedules(payload)
    except ScheduleError as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2

    outputs = [
        (args.airflow_out, airflow_dags.render_all(jobs), "meltano_*.py"),
        (args.kubernetes_out, kubernetes_manifests.render_all(jobs), "*.yaml"),
        (args.cron_out, crontab.render_all(jobs), "*.crontab"),
        (args.prefect_out / "flows", prefect_flows.render_flows(jobs), "meltano_*.py"),
        (
            args.prefect_out,
            {"prefect.yaml": prefect_flows.render_prefect_yaml(jobs)},
            "prefect.yaml",
        ),
    ]
    current = [_sync(out, files, pattern, args.check) for out, files, pattern in outputs]
    if args.check and not all(current):
        print("orchestrate/ generated files are stale: run python orchestrate/generate.py")
        return 1
    if not args.check:
        written = sum(len(files) for _, files, _ in outputs)
        directories = ", ".join(str(out) for out, _, _ in outputs)
        print(f"wrote {written} files to {directories}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
