"""Another Meltano project adds both plugins from their definitions (`meltano add --from-ref`),
installs them unpinned, and runs each with a third-party plugin from PyPI: tap-pipedrive into
target-jsonl, tap-jsonl into target-pipeboard-postgres.

The definitions' pip_url points at the public repository; here it is replaced by the local
checkout's directory, so the test installs the code under test (with the newest dependency
versions the package allows, as a user gets them, not the project's pins). Installing from PyPI
takes about 15 s with a warm uv cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT_S = 300
MeltanoEnv = Callable[[Path, dict[str, str]], dict[str, str]]

# Installs both plugins and two third-party ones from PyPI into a new project (about two
# minutes): an extended check (`make test-extended`), like the Airflow and Prefect checks; the
# definitions' structure and staleness are checked by tests/test_plugin_definitions.py.
pytestmark = [pytest.mark.network, pytest.mark.extended]

# Third-party plugins, from PyPI, defined the way the Hub would (their own definitions).
TARGET_JSONL = {
    "name": "target-jsonl",
    "namespace": "target_jsonl",
    "variant": "andyh1203",
    "pip_url": "target-jsonl",
    "executable": "target-jsonl",
    "settings": [{"name": "destination_path", "kind": "string"}],
}
TAP_JSONL = {
    "name": "tap-jsonl",
    "namespace": "tap_jsonl",
    "variant": "third-party",
    "pip_url": "tap-jsonl",
    "executable": "tap-jsonl",
    "capabilities": ["catalog", "discover", "state", "about"],
    "settings": [
        {"name": "path", "kind": "string"},
        {"name": "stream_name", "kind": "string"},
        {"name": "primary_keys", "kind": "array"},
    ],
}


def _meltano(
    project: Path, env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["meltano", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if check:
        assert result.returncode == 0, (
            f"meltano {' '.join(args)}:\n{result.stdout[-3000:]}\n" + (result.stderr[-6000:])
        )
    return result


def _local_definition(name: str, directory: Path) -> Path:
    """The committed plugin.yml with its pip_url pointed at the local checkout."""
    definition: dict[str, Any] = yaml.safe_load((ROOT / name / "plugin.yml").read_text())
    assert definition["pip_url"].endswith(f"#subdirectory={name}")
    definition["pip_url"] = str(ROOT / name)
    path = directory / f"{name}.yml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def new_project(
    tmp_path_factory: pytest.TempPathFactory, clean_meltano_env: MeltanoEnv
) -> tuple[Path, MeltanoEnv]:
    """A new Meltano project (``meltano init``) with our two plugins added from their
    definitions and two third-party plugins, all installed."""
    meltano_env = clean_meltano_env
    base = tmp_path_factory.mktemp("own-project")
    env = meltano_env(base / "p", {})
    _meltano(base, env, "init", "--no_usage_stats", "p")
    project = base / "p"
    _meltano(project, env, "config", "set", "meltano", "venv.backend", "uv")
    refs = base / "refs"
    refs.mkdir()
    for kind, name in (("extractor", "tap-pipedrive"), ("loader", "target-pipeboard-postgres")):
        ref = _local_definition(name, refs)
        _meltano(
            project, env, "add", "--plugin-type", kind, name, "--from-ref", str(ref), "--no-install"
        )
    for kind, definition in (("loader", TARGET_JSONL), ("extractor", TAP_JSONL)):
        ref = refs / f"{definition['name']}.yml"
        ref.write_text(yaml.safe_dump(definition, sort_keys=False))
        _meltano(
            project,
            env,
            "add",
            "--plugin-type",
            kind,
            str(definition["name"]),
            "--from-ref",
            str(ref),
            "--no-install",
        )
    _meltano(project, env, "install")
    return project, meltano_env


def test_definitions_land_in_the_project_as_written(new_project: tuple[Path, MeltanoEnv]) -> None:
    project, _ = new_project
    document = yaml.safe_load((project / "meltano.yml").read_text())
    assert {
        kind: [p["name"] for p in plugins] for kind, plugins in document["plugins"].items()
    } == {
        "extractors": ["tap-pipedrive", "tap-jsonl"],
        "loaders": ["target-pipeboard-postgres", "target-jsonl"],
    }
    for kind, name in (("extractors", "tap-pipedrive"), ("loaders", "target-pipeboard-postgres")):
        added = next(p for p in document["plugins"][kind] if p["name"] == name)
        definition = yaml.safe_load((ROOT / name / "plugin.yml").read_text())
        assert [s["name"] for s in added["settings"]] == [s["name"] for s in definition["settings"]]
        assert added["capabilities"] == definition["capabilities"]
        assert added.get("settings_group_validation") == definition.get("settings_group_validation")
    # Unpinned: the plugin's venv holds what its own pyproject allows, not the project's pins.
    for kind, name in (("extractors", "tap-pipedrive"), ("loaders", "target-pipeboard-postgres")):
        assert (project / ".meltano" / kind / name / "venv" / "bin" / name).exists()


def test_our_tap_into_a_third_party_loader(
    new_project: tuple[Path, MeltanoEnv], pipedrive_simulator_factory: Any, tmp_path: Path
) -> None:
    project, env_for = new_project
    simulator = pipedrive_simulator_factory(deals=40)
    out = tmp_path / "jsonl"
    out.mkdir()
    env = env_for(
        project,
        {
            "TAP_PIPEDRIVE_API_URL": simulator.base_url,
            "TAP_PIPEDRIVE_API_TOKEN": simulator.api_token,
            "TAP_PIPEDRIVE__SELECT_FILTER": json.dumps(["deals", "persons", "stages"]),
            "TARGET_JSONL_DESTINATION_PATH": str(out),
            "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        },
    )
    _meltano(project, env, "run", "tap-pipedrive", "target-jsonl")
    for stream in ("deals", "persons", "stages"):
        (path,) = out.glob(f"{stream}-*.jsonl")
        records = [json.loads(line) for line in path.read_text().splitlines()]
        truth = {str(r["id"]) for r in simulator.truth(stream)}
        if stream == "deals":
            truth |= {str(r["id"]) for r in simulator.truth("archived_deals")}
        assert {str(r["id"]) for r in records} == truth, stream


def test_a_third_party_tap_into_our_target(
    new_project: tuple[Path, MeltanoEnv], postgres_url: str, pg_schema: str, tmp_path: Path
) -> None:
    project, env_for = new_project
    source = tmp_path / "orders.jsonl"
    orders = [
        {"order_id": i, "customer": f"customer {i % 7}", "amount": i * 2.5, "note": "x\u00e9"}
        for i in range(1, 251)
    ]
    source.write_text("".join(json.dumps(order) + "\n" for order in orders))
    env = env_for(
        project,
        {
            "TAP_JSONL_PATH": str(source),
            "TAP_JSONL_STREAM_NAME": "orders",
            "TAP_JSONL_PRIMARY_KEYS": '["order_id"]',
            "TARGET_PIPEBOARD_POSTGRES_DATABASE_URL": postgres_url,
            "TARGET_PIPEBOARD_POSTGRES_DEFAULT_TARGET_SCHEMA": pg_schema,
            "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        },
    )
    for _ in range(2):  # twice: the second run upserts by the key, nothing is doubled
        _meltano(project, env, "run", "tap-jsonl", "target-pipeboard-postgres")
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            sql.SQL("select order_id, customer, amount, note from {}.{} order by order_id").format(
                sql.Identifier(pg_schema), sql.Identifier("orders")
            )
        ).fetchall()
    assert [(int(r[0]), r[1], float(r[2]), r[3]) for r in rows] == [
        (o["order_id"], o["customer"], o["amount"], o["note"]) for o in orders
    ]
