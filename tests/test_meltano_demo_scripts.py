"""The helpers behind `make demo`: install only when needed, and the report of what landed."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_is_needed_until_recorded_and_again_after_a_dependency_change(
    tmp_path: Path,
) -> None:
    plugins = _load("plugins_installed")
    shutil.copy(ROOT / "meltano.yml", tmp_path / "meltano.yml")
    for name in plugins.INPUTS[1:]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    executables = plugins.executables(tmp_path)
    assert {path.name for path in executables} == {"tap-pipedrive", "target-pipeboard-postgres"}
    assert not plugins.is_current(tmp_path)  # nothing installed

    for path in executables:  # what `meltano install` leaves behind
        path.parent.mkdir(parents=True)
        path.touch()
    assert not plugins.is_current(tmp_path)  # installed, but never recorded
    assert plugins.main(["--record", "--root", str(tmp_path)]) == 0
    assert plugins.is_current(tmp_path)
    assert plugins.main(["--quiet", "--root", str(tmp_path)]) == 0

    pyproject = tmp_path / "tap-pipedrive" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# a new dependency\n")
    assert not plugins.is_current(tmp_path)
    assert plugins.main(["--quiet", "--root", str(tmp_path)]) == 1


def test_report_counts_the_loaded_tables_only(postgres_url: str, pg_schema: str) -> None:
    embedded_pg = _load("embedded_pg")
    with psycopg.connect(postgres_url) as conn:
        for table, rows in (("deals", 3), ("persons", 0), ("_pipeboard_columns", 5)):
            name = sql.Identifier(pg_schema, table)
            conn.execute(sql.SQL("create table {} (id int)").format(name))
            for i in range(rows):
                conn.execute(sql.SQL("insert into {} values (%s)").format(name), (i,))
    assert embedded_pg.table_counts(postgres_url, pg_schema) == [("deals", 3), ("persons", 0)]
