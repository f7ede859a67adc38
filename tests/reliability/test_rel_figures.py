"""The figures the docs record are the ones a run of this suite measured, not typed by hand.

``rel_figures_measured.json`` is the JSON a full run of tests/reliability wrote; the figures
tables of docs/reliability.md and README.md must be exactly what rel_figures.py makes of it
(``python tests/reliability/rel_figures.py --write FILE`` records a new run).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rel_figures import (
    DOCUMENTS,
    FAULTS,
    MEASURED,
    TABLES,
    Figures,
    mismatches,
    recorded_table,
    with_table,
)


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MEASURED.read_text())
    return data


def test_docs_and_readme_tables_are_the_measured_figures(measured: dict[str, Any]) -> None:
    assert mismatches(measured) == [], (
        "a figures table was edited by hand or not regenerated; run "
        "`python tests/reliability/rel_figures.py --write <figures.json of a full run>`"
    )


def test_the_measured_run_lost_duplicated_and_leaked_nothing(measured: dict[str, Any]) -> None:
    counts = measured["counts"]
    assert (counts["rows_lost"], counts["rows_duplicated"], counts["secrets_leaked"]) == (0, 0, 0)
    assert counts["rows_checked"] > 0
    assert counts["secret_scans_bytes"] > 0
    # 20+ target kill points, each landing after some batches were committed, before all.
    kills = measured["observed"]["kill_committed_records"]
    assert counts["kill_points_survived"] == len(kills) >= 20
    assert all(0 < k < 1600 for k in kills), kills
    # A full run: every kind of fault the suite injects was injected, each with a description.
    assert set(measured["faults_injected"]) == set(FAULTS)
    assert all(n > 0 for n in measured["faults_injected"].values())


def test_a_table_is_replaced_between_its_markers_only() -> None:
    figures = Figures()
    figures.add("kill_points_survived", 3)
    figures.fault("pg_disk_full", 2)
    figures.observe("kill_committed_records", 700)
    data = figures.as_json()
    for name in DOCUMENTS:
        text = f"before\n<!-- rel_figures:{name} -->\nold table\n<!-- /rel_figures -->\nafter\n"
        updated = with_table(name, text, data)
        assert recorded_table(name, updated) == TABLES[name](data)
        assert updated.startswith("before\n")
        assert updated.endswith("\nafter\n")
    assert "| database faults injected (disk full 2) | 2 |" in TABLES["readme"](data)
    assert "| Target SIGKILL points survived, each mid-load" in TABLES["docs"](data)
    with pytest.raises(ValueError, match="markers"):
        with_table("docs", "no markers here", data)
