"""Reconciliation runs: full reads framed by ACTIVATE_VERSION so targets retire vanished rows."""

from __future__ import annotations


def test_reconcile_reads_everything_and_activates_a_version(
    pipedrive_simulator, run, config_for, catalog_with
):
    sim = pipedrive_simulator
    config = config_for(sim)
    catalog = catalog_with(config, ["persons", "deals", "deal_products", "stages"])
    first = run(config, catalog=catalog)
    assert first.error is None

    sim.advance(60)
    sim.delete("persons", 8)  # vanishes from the person list: only a full read can tell
    sim.update("persons", 9, name="Changed")
    reconcile = run({**config, "reconcile": True}, state=first.state, catalog=catalog)
    assert reconcile.error is None

    persons = reconcile.records("persons")
    assert sorted(r["id"] for r in persons) == sorted(r["id"] for r in sim.truth("persons"))
    assert 8 not in {r["id"] for r in persons}

    for stream in ("persons", "deals", "stages", "deal_products"):
        kinds = [
            (m["type"], m.get("version"))
            for m in reconcile.messages
            if m.get("stream") == stream and m["type"] in ("RECORD", "ACTIVATE_VERSION")
        ]
        versions = {v for kind, v in kinds}
        assert len(versions) == 1, stream  # one table version
        assert None not in versions, stream
        assert kinds[0][0] == "ACTIVATE_VERSION", stream
        assert kinds[-1][0] == "ACTIVATE_VERSION", stream  # sent after the last record

    # Every deal of the account, and the line items of every deal, are in the full read.
    deals = {r["id"] for r in reconcile.records("deals")}
    assert deals == {r["id"] for r in sim.truth("deals") + sim.truth("archived_deals")}
    visible_items = {r["id"] for r in sim.truth("deal_products") if r["deal_id"] in deals}
    assert set(reconcile.ids("deal_products")) == visible_items

    # The next ordinary run continues incrementally from the earlier bookmark.
    after = run(config, state=reconcile.state, catalog=catalog)
    assert after.error is None
    assert after.ids("persons") == [9]
