"""`make demo` as the README promises: simulator → tap → target → embedded Postgres, twice.

The demo script runs in a copy of the project whose plugins are the session's installed ones
(`meltano install` itself is covered by test_meltano_demo_scripts.py), with no database or
Pipedrive settings in the environment: the `dev` environment alone must make it work.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO_TIMEOUT_S = 400
MeltanoEnv = Callable[[Path, dict[str, str]], dict[str, str]]


@pytest.fixture
def demo_project(meltano_project: Path) -> Iterator[Path]:
    # Short path: the embedded server's Unix socket lives in its data directory.
    project = Path(tempfile.mkdtemp(prefix="pbdemo-"))
    shutil.copy(ROOT / "meltano.yml", project / "meltano.yml")
    shutil.copytree(ROOT / "scripts", project / "scripts")
    for name in ("tap-pipedrive", "target-pipeboard-postgres", "requirements"):
        (project / name).symlink_to(ROOT / name, target_is_directory=True)
    (project / ".meltano").mkdir()
    for kind in ("extractors", "loaders"):
        (project / ".meltano" / kind).symlink_to(meltano_project / ".meltano" / kind)
    python = str(BIN / "python")
    subprocess.run(
        [python, "scripts/plugins_installed.py", "--record", "--root", str(project)],
        cwd=project,
        check=True,
    )
    yield project
    data_dir = str(project / ".meltano" / "postgres")
    subprocess.run(
        [python, "scripts/embedded_pg.py", "stop", "--data-dir", data_dir],
        cwd=project,
        check=False,
        capture_output=True,
    )
    shutil.rmtree(project, ignore_errors=True)


def _run_demo(project: Path, meltano_env: MeltanoEnv) -> str:
    env = meltano_env(project, {})
    env.pop("MELTANO_DATABASE_URI")  # the project's own system database, as on a user's machine
    result = subprocess.run(
        ["bash", "scripts/demo.sh"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _landed(output: str) -> dict[str, int]:
    report = output.split("What landed in schema 'pipedrive':", 1)[1]
    rows = re.findall(r"^  (\w+)\s+([\d,]+)$", report, flags=re.MULTILINE)
    return {name: int(count.replace(",", "")) for name, count in rows}


def _requests(output: str) -> int:
    match = re.search(r"this run made (\d+) API requests", output)
    assert match, output
    return int(match.group(1))


def test_demo_runs_twice_and_the_second_run_is_incremental(
    demo_project: Path, clean_meltano_env: MeltanoEnv
) -> None:
    first = _run_demo(demo_project, clean_meltano_env)
    assert "first run: full extraction" in first
    landed = _landed(first)
    for table in ("deals", "persons", "organizations", "activities", "stages", "users"):
        assert landed.get(table, 0) > 0, f"{table} is empty after the demo: {landed}"
    assert landed["total"] == sum(v for k, v in landed.items() if k != "total")
    assert (demo_project / ".meltano/postgres/PG_VERSION").exists()
    assert "psql" in first

    second = _run_demo(demo_project, clean_meltano_env)
    assert "incremental run from the bookmarks of the previous run" in second
    created = int(re.search(r"(\d+) created", second).group(1))  # type: ignore[union-attr]
    again = _landed(second)
    # Nothing re-loaded twice, the records the simulator created are there, and the
    # incremental run asked for less than the full one.
    assert again["deals"] >= landed["deals"]
    assert again["total"] >= landed["total"] + min(created, 1)
    assert _requests(second) < _requests(first)
