"""Run the generated Prefect sync flow for real: Prefect -> meltano run -> simulator -> Postgres.

    .venv/bin/python orchestrate/prefect/check_with_prefect.py PREFECT_PYTHON

Starts the Pipedrive simulator, installs a copy of the Meltano project in a temporary directory,
makes a fresh Postgres schema (PIPEBOARD_TEST_DATABASE_URL or 127.0.0.1:5432), then has Prefect
(the interpreter PREFECT_PYTHON, its own virtualenv) register every generated deployment and run
the sync flow (run_deployments.py). Exit 0 when the flow completed and the deals and persons the
simulator holds landed in the schema, each once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from pipedrive_simulator.handle import start
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FLOW = "sync-every-30-minutes"
DATABASE_URL = os.environ.get(
    "PIPEBOARD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _meltano_env(project: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_PIPEDRIVE", "TARGET_PIPEBOARD", "MELTANO_", "PREFECT_"))
    }
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_DATABASE_URI": f"sqlite:///{project}/.meltano/meltano.db",
        }
    )
    return env


def main(prefect_python: str) -> int:
    """Set up, run the flow under Prefect, compare what landed with the simulator."""
    work = Path(tempfile.mkdtemp(prefix="pipeboard-prefect-"))
    project = work / "project"
    project.mkdir()
    shutil.copy(ROOT / "meltano.yml", project / "meltano.yml")
    for name in ("tap-pipedrive", "target-pipeboard-postgres", "requirements"):
        (project / name).symlink_to(ROOT / name, target_is_directory=True)
    env = _meltano_env(project)
    subprocess.run(
        ["meltano", "install"],  # noqa: S607 - meltano from the venv, first on PATH
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    schedules = work / "schedules.json"
    listed = subprocess.run(
        ["meltano", "schedule", "list", "--format=json"],  # noqa: S607
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    schedules.write_text(listed.stdout)

    schema = f"prefect_{uuid.uuid4().hex[:8]}"
    simulator = start(deals=60)
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    try:
        env.update(
            {
                "MELTANO_PROJECT_ROOT": str(project),
                "MELTANO_ENVIRONMENT": "dev",
                "TAP_PIPEDRIVE_API_URL": simulator.base_url,
                "TAP_PIPEDRIVE_API_TOKEN": simulator.api_token,
                "TARGET_PIPEBOARD_POSTGRES_DATABASE_URL": DATABASE_URL,
                "TARGET_PIPEBOARD_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
                "PREFECT_HOME": str(work / "prefect-home"),
                # Prefect's temporary server starts slowly on a busy 2-core machine.
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            }
        )
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603 - the Prefect venv's interpreter, our script
            [
                prefect_python,
                str(ROOT / "orchestrate" / "prefect" / "run_deployments.py"),
                str(schedules),
                str(ROOT / "orchestrate" / "prefect"),
                FLOW,
            ],
            cwd=work,
            env=env,
            text=True,
            capture_output=True,
        )
        print(result.stdout)
        if result.returncode != 0:
            print(result.stderr[-6000:], file=sys.stderr)
            return 1
        problems = []
        with psycopg.connect(DATABASE_URL) as conn:
            for entity, extra in (("deals", "archived_deals"), ("persons", None)):
                truth = {str(r["id"]) for r in simulator.truth(entity)}
                if extra:
                    truth |= {str(r["id"]) for r in simulator.truth(extra)}
                rows = conn.execute(
                    sql.SQL("select id::text from {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(entity)
                    )
                ).fetchall()
                ids = [row[0] for row in rows]
                print(f"{entity}: {len(ids)} rows landed, simulator holds {len(truth)}")
                if sorted(ids) != sorted(truth):
                    problems.append(entity)
        print(f"Prefect flow {FLOW} ran in {time.monotonic() - started:.0f} s (server included)")
        if problems:
            print(f"rows differ from the simulator: {problems}", file=sys.stderr)
            return 1
        return 0
    finally:
        simulator.stop()
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
