"""State shared by several machines: Meltano's system database in Postgres
(MELTANO_DATABASE_URI=postgresql+psycopg://...), as docs/operations.md describes."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import psycopg.sql


def test_state_in_a_shared_postgres_system_database(
    pipedrive_simulator_factory, pipeline_factory, meltano_database, tmp_path: Path
) -> None:
    simulator = pipedrive_simulator_factory(deals=80)
    machine_a = pipeline_factory(simulator, system_db=meltano_database.uri)
    assert machine_a.system_db.startswith("postgresql+psycopg://")
    machine_a.run()

    # The bookmarks are in Postgres, in Meltano's state table.
    with psycopg.connect(meltano_database.libpq) as conn:
        rows = conn.execute(
            "select completed_state from state where state_id = %s", (machine_a.state_id,)
        ).fetchall()
    assert len(rows) == 1
    completed = rows[0][0] if isinstance(rows[0][0], dict) else json.loads(rows[0][0])
    assert "deals" in completed["singer_state"]["bookmarks"]

    # Machine B sees the same state and its run is incremental: it starts from machine A's
    # bookmarks. Titles overwritten in Postgres stay overwritten (a full read would restore them
    # all); only the new deal and the ones at the bookmark itself (inclusive) are read again.
    machine_b = machine_a.on_another_machine(tmp_path / "machine-b")
    shown = json.loads(machine_b.meltano("state", "get", machine_a.state_id).stdout)
    assert shown["singer_state"]["bookmarks"] == completed["singer_state"]["bookmarks"]
    simulator.advance(60)
    new_deal = simulator.create("deals", title="Seen by machine B")
    tampered = machine_b.query(
        psycopg.sql.SQL("update {} set title = 'tampered' returning id").format(
            machine_b.table("deals")
        )
    )
    machine_b.run()
    assert str(new_deal["id"]) in {str(i) for i in machine_b.ids("deals")}
    still_tampered = machine_b.ids("deals", "title = 'tampered'")
    assert len(still_tampered) >= len(tampered) - 3, "machine B re-read everything"
    # No local system database was created on machine B.
    assert not (machine_b.project / ".meltano" / "meltano.db").exists()
