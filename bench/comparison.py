"""Comparison tools from PyPI for the benchmarks: pinned virtualenvs under bench/.venvs/, and
the PyPI ``tap-pipedrive`` (singer-io) pointed at the simulator.

The scripts import this module (``python bench/<script>.py`` puts bench/ on ``sys.path``).
A virtualenv is (re)built when its pinned requirements change; it records them in
``.bench-requirements``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"

# The PyPI tap with its dependency tree as resolved when the figures in RESULTS.md were taken.
PYPI_TAP_VERSION = "2.1.0"
PYPI_TAP_REQUIREMENTS = (
    f"tap-pipedrive=={PYPI_TAP_VERSION}",
    "singer-python==6.1.1",
    "requests==2.33.0",
    "pendulum==3.1.0",
    "backoff==2.2.1",
    "ciso8601==2.4.1",
    "jsonschema==2.6.0",
    "simplejson==3.20.2",
    "python-dateutil==2.9.0.post0",
    "pytz==2026.6",
    "tzdata==2026.6",
    "six==1.17.0",
    "urllib3==2.8.0",
    "idna==3.20",
    "charset-normalizer==3.5.3",
    "certifi==2026.10.19.post1",
)
PYPI_TAP_VENV = VENVS / "pypi-tap-pipedrive"

# It has no setting for the API host: the wrapper sets its hard-coded BASE_URL first.
PYPI_TAP_WRAPPER = """
import sys
import tap_pipedrive.config, tap_pipedrive.tap
tap_pipedrive.config.BASE_URL = tap_pipedrive.tap.BASE_URL = sys.argv.pop(1)
from tap_pipedrive.cli import main
main()
"""

# Its streams in the order its sync runs them (tap_pipedrive.tap.PipedriveTap.streams).
PYPI_TAP_STREAMS = (
    "currency",
    "activity_types",
    "stages",
    "filters",
    "pipelines",
    "notes",
    "users",
    "activities",
    "deals",
    "files",
    "organizations",
    "persons",
    "products",
    "dealflow",
    "deal_products",
    "deal_fields",
)


def ensure_venv(name: str, requirements: tuple[str, ...] | list[str]) -> Path:
    """bench/.venvs/<name> with exactly ``requirements`` installed from PyPI; its directory."""
    venv = VENVS / name
    marker = venv / ".bench-requirements"
    wanted = "\n".join(requirements) + "\n"
    if marker.exists() and marker.read_text() == wanted and (venv / "bin" / "python").exists():
        return venv
    VENVS.mkdir(exist_ok=True)
    (VENVS / ".gitignore").write_text("*\n")
    if venv.exists():
        shutil.rmtree(venv)
    print(f"creating {venv} ({', '.join(requirements[:1])} ...)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *requirements,
        ],
        check=True,
    )
    marker.write_text(wanted)
    return venv


def ensure_pypi_tap() -> Path:
    """The PyPI tap's virtualenv (created on first use)."""
    return ensure_venv(PYPI_TAP_VENV.name, PYPI_TAP_REQUIREMENTS)


def pypi_tap_schema(stream: str) -> dict[str, Any]:
    """The JSON schema the PyPI tap ships for ``stream`` (before its custom-field discovery)."""
    path = next(
        ensure_pypi_tap().glob(f"lib/python*/site-packages/tap_pipedrive/schemas/{stream}.json")
    )
    return dict(json.loads(path.read_text()))


def shipped_catalog(streams: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """A catalog of ``streams`` built from the shipped schema files, every stream selected."""
    return {
        "streams": [
            {
                "tap_stream_id": s,
                "stream": s,
                "key_properties": ["id"],
                "schema": pypi_tap_schema(s),
                "metadata": [{"breadcrumb": [], "metadata": {"selected": True}}],
            }
            for s in streams
        ]
    }


def select_streams(catalog: dict[str, Any], streams: set[str]) -> dict[str, Any]:
    """A copy of ``catalog`` with exactly ``streams`` selected."""
    result = json.loads(json.dumps(catalog))
    for entry in result["streams"]:
        roots = [m for m in entry["metadata"] if m["breadcrumb"] == []]
        if not roots:
            roots = [{"breadcrumb": [], "metadata": {}}]
            entry["metadata"].append(roots[0])
        roots[0]["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return result


@dataclass
class PypiRun:
    """One process of the PyPI tap: exit code, Singer messages (or the catalog it discovered),
    stderr, wall seconds."""

    returncode: int
    messages: list[dict[str, Any]]
    stderr: str
    seconds: float
    catalog: dict[str, Any] | None = field(repr=False, default=None)

    @property
    def error(self) -> str | None:
        """The tap's CRITICAL log line (what it died of), if it failed."""
        if self.returncode == 0:
            return None
        critical = [x for x in self.stderr.splitlines() if x.startswith("CRITICAL ")]
        return critical[-1][len("CRITICAL ") :] if critical else self.stderr.strip()[-300:]

    @property
    def failed_stream(self) -> str | None:
        """The stream whose request failed (the last failed request timer the tap logged)."""
        failed = None
        for line in self.stderr.splitlines():
            if "METRIC:" in line and '"status": "failed"' in line:
                failed = json.loads(line.split("METRIC:", 1)[1])["tags"].get("endpoint")
        return failed

    def records(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.messages:
            if m.get("type") == "RECORD":
                counts[m["stream"]] = counts.get(m["stream"], 0) + 1
        return counts

    def last_state(self, default: dict[str, Any] | None = None) -> dict[str, Any]:
        states = [m["value"] for m in self.messages if m.get("type") == "STATE"]
        return states[-1] if states else dict(default or {})


def run_pypi_tap(
    base_url: str,
    api_token: str,
    workdir: Path,
    *,
    catalog: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    discover: bool = False,
    start_date: str = "2000-01-01T00:00:00Z",
) -> PypiRun:
    """Run the PyPI tap once against ``base_url``; files go to ``workdir``."""
    python = ensure_pypi_tap() / "bin" / "python"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "wrapper.py").write_text(PYPI_TAP_WRAPPER)
    (workdir / "config.json").write_text(
        json.dumps({"api_token": api_token, "start_date": start_date})
    )
    args = [str(python), str(workdir / "wrapper.py"), base_url]
    args += ["--config", str(workdir / "config.json")]
    if discover:
        args.append("--discover")
    if catalog is not None:
        (workdir / "catalog.json").write_text(json.dumps(catalog))
        args += ["--catalog", str(workdir / "catalog.json")]
    if state is not None:
        (workdir / "state.json").write_text(json.dumps(state))
        args += ["--state", str(workdir / "state.json")]
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if discover:
        found = json.loads(proc.stdout) if proc.returncode == 0 else None
        return PypiRun(proc.returncode, [], proc.stderr, seconds, found)
    messages = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    return PypiRun(proc.returncode, messages, proc.stderr, seconds)


def pypi_tap_installed_version() -> str:
    """The installed version of the PyPI tap (to label results)."""
    out = subprocess.run(
        [str(ensure_pypi_tap() / "bin" / "python"), "-m", "pip", "show", "tap-pipedrive"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split("Version: ")[1].split()[0]
