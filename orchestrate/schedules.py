"""The schedules of the Meltano project, as `meltano schedule list --format=json` reports them.

meltano.yml is the one place where schedules are defined; the Airflow DAGs and the Kubernetes
CronJobs are generated from this list (see generate.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ScheduledJob:
    """A Meltano schedule that runs a job: its cron interval and the job's steps in order."""

    schedule: str
    interval: str
    job: str
    steps: tuple[str, ...]
    env: dict[str, str]

    @property
    def slug(self) -> str:
        """The schedule name reduced to lowercase letters, digits and dashes (a DNS label)."""
        return re.sub(r"[^a-z0-9-]+", "-", self.schedule.lower()).strip("-")[:52]


class ScheduleError(ValueError):
    """The schedule list is not what `meltano schedule list --format=json` prints."""


def parse_schedules(payload: dict[str, Any]) -> list[ScheduledJob]:
    """The job schedules of a ``meltano schedule list --format=json`` document."""
    try:
        job_schedules = payload["schedules"]["job"]
    except (KeyError, TypeError) as exc:
        raise ScheduleError("expected a JSON object with schedules.job (meltano 4 format)") from exc
    if payload["schedules"].get("elt"):
        names = [entry.get("name") for entry in payload["schedules"]["elt"]]
        raise ScheduleError(f"legacy elt schedules are not supported, make them jobs: {names}")
    jobs: list[ScheduledJob] = []
    for entry in job_schedules:
        name = entry.get("name")
        interval = entry.get("cron_interval") or entry.get("interval")
        if not name or not interval:
            raise ScheduleError(f"schedule without name or interval: {entry!r}")
        job = entry.get("job") or {}
        steps = tuple(_step_text(step) for step in job.get("tasks") or ())
        if not steps:
            raise ScheduleError(f"schedule {name!r}: job {job.get('name')!r} has no tasks")
        env = {str(k): str(v) for k, v in (entry.get("env") or {}).items()}
        jobs.append(ScheduledJob(name, interval, job["name"], steps, env))
    return jobs


def _step_text(step: str | list[str]) -> str:
    # A job step is either "tap target" or a list of blocks that run as one `meltano run`.
    return step if isinstance(step, str) else " ".join(step)


def read_meltano_schedules(project_root: Path) -> dict[str, Any]:
    """Run ``meltano schedule list --format=json`` in the project."""
    result = subprocess.run(
        ["meltano", "schedule", "list", "--format=json"],  # noqa: S607 - meltano from the venv
        cwd=project_root,
        capture_output=True,
        text=True,
        check=True,
    )
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload
