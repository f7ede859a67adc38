"""Custom fields: readable columns typed per field type, labels, parts, stable across changes."""

from __future__ import annotations

import pytest

DEALS_ONLY = ("deals", "deal_fields")

EXPECTED_COLUMNS = {
    "Setup fee": {"setup_fee": "number", "setup_fee_currency": "string"},
    "Trial period": {"trial_period": "string", "trial_period_until": "string"},
    "Support hours": {
        "support_hours": "string",
        "support_hours_until": "string",
        "support_hours_timezone_id": "integer",
        "support_hours_timezone_name": "string",
    },
    "Preferred call time": {
        "preferred_call_time": "string",
        "preferred_call_time_timezone_id": "integer",
    },
    "Delivery address": {
        "delivery_address": "string",
        "delivery_address_locality": "string",
        "delivery_address_country": "string",
        "delivery_address_postal_code": "string",
        "delivery_address_route": "string",
    },
    "Region": {"region": "string"},
    "Products of interest": {"products_of_interest": "array"},
    "Seats": {"seats": "number"},
    "Renewal date": {"renewal_date": "string"},
    "Solutions engineer": {"solutions_engineer": "integer"},
    "Champion": {"champion": "integer"},
    "Billing phone": {"billing_phone": "string"},
    "Decision criteria": {"decision_criteria": "string"},
    "Industry vertical": {"industry_vertical": "string"},
}


def _defs(sim, stream="deal_fields"):
    return {d["field_code"]: d for d in sim.truth(stream) if d["is_custom_field"]}


def _expected_value(defn, value):
    """The tap's contract for one custom field value, written independently of the tap."""
    ftype = defn["field_type"]
    labels = {o["id"]: o["label"] for o in defn.get("options") or ()}
    if ftype == "enum":
        return None if value is None else labels[value]
    if ftype == "set":
        return None if value is None else [labels[v] for v in value]
    return value


def _deal_run(run, config, state=None, catalog_with=None):
    catalog = catalog_with(config, DEALS_ONLY) if catalog_with else None
    return run(config, state=state, catalog=catalog)


def test_columns_types_and_values_of_every_field_type(
    pipedrive_simulator, run, config_for, catalog_with
):
    sim = pipedrive_simulator
    config = config_for(sim, include_archived_deals=False)
    result = _deal_run(run, config, catalog_with=catalog_with)
    assert result.error is None
    props = result.schema("deals")["properties"]
    for columns in EXPECTED_COLUMNS.values():
        for column, json_type in columns.items():
            assert json_type in props[column]["type"], column
    assert props["renewal_date"]["format"] == "date"
    assert props["products_of_interest"]["items"] == {"type": "string"}
    assert all("x-pipedrive-key" in p for name, p in props.items() if name != "_sdc_deleted_at")
    assert not any(len(name) == 40 for name in props), "no raw hash keys by default"
    assert "custom_fields" not in props

    defs = _defs(sim)
    by_name = {d["field_name"]: d for d in defs.values()}
    for name, columns in EXPECTED_COLUMNS.items():
        first = next(iter(columns))
        assert props[first]["x-pipedrive-key"] == by_name[name]["field_code"]

    emitted = {r["id"]: r for r in result.records("deals")}
    truth = {r["id"]: r for r in sim.truth("deals")}
    assert emitted.keys() == truth.keys()
    checked_types = set()
    for deal_id, source in truth.items():
        row = emitted[deal_id]
        for key, value in source["custom_fields"].items():
            defn = defs[key]
            ftype = defn["field_type"]
            column = props and next(
                c
                for c, p in props.items()
                if (p.get("x-pipedrive-key") == key and "x-pipedrive-subfield" not in p)
                or (
                    p.get("x-pipedrive-key") == key
                    and p.get("x-pipedrive-subfield") in ("value", "start")
                )
            )
            if ftype == "monetary":
                assert row[column] == (value and value["value"])
                assert row[f"{column}_currency"] == (value and value["currency"])
            elif ftype in ("daterange", "timerange"):
                assert row[column] == (value and value["start"])
                assert row[f"{column}_until"] == (value and value["end"])
            elif ftype == "time":
                assert row[column] == (value and value["value"])
                assert row[f"{column}_timezone_name"] == (value and value["timezone_name"])
            elif ftype == "address":
                assert row[column] == (value and value["value"])
                assert row[f"{column}_country"] == (value and value.get("country"))
                assert row[f"{column}_locality"] == (value and value.get("locality"))
            else:
                assert row[column] == _expected_value(defn, value), (deal_id, column)
            if value is not None:
                checked_types.add(ftype)
    assert checked_types >= {
        "varchar",
        "text",
        "phone",
        "double",
        "monetary",
        "enum",
        "set",
        "user",
        "people",
        "date",
        "daterange",
        "time",
        "timerange",
        "address",
    }


def test_renamed_added_and_deleted_fields_between_runs(
    pipedrive_simulator, run, config_for, catalog_with
):
    sim = pipedrive_simulator
    config = config_for(sim, include_archived_deals=False)
    first = _deal_run(run, config, catalog_with=catalog_with)
    by_name = {d["field_name"]: k for k, d in _defs(sim).items()}
    region, competitor = by_name["Region"], by_name["Competitor"]

    sim.advance(60)
    sim.rename_field("deals", region, "Sales region")
    sim.delete_field("deals", competitor)
    risk = sim.add_field("deals", "Churn risk", "enum", options=["Low", "High"])
    high = next(o["id"] for o in _defs(sim)[risk]["options"] if o["label"] == "High")
    sim.update("deals", 3, **{risk: high})

    second = _deal_run(run, config, state=first.state, catalog_with=catalog_with)
    assert second.error is None
    props = second.schema("deals")["properties"]
    assert props["region"]["x-pipedrive-key"] == region  # the renamed field keeps its column
    assert "sales_region" not in props
    assert "competitor" not in props  # a deleted field is gone
    assert props["churn_risk"]["x-pipedrive-key"] == risk  # a new field appears by itself
    changed = {r["id"]: r for r in second.records("deals")}
    assert changed[3]["churn_risk"] == "High"

    # Without the state of earlier runs (a fresh install) the current name is used.
    fresh = _deal_run(run, config, catalog_with=catalog_with)
    assert fresh.schema("deals")["properties"]["sales_region"]["x-pipedrive-key"] == region


def test_new_option_label_is_emitted(pipedrive_simulator, run, config_for, catalog_with):
    sim = pipedrive_simulator
    config = config_for(sim, include_archived_deals=False)
    first = _deal_run(run, config, catalog_with=catalog_with)
    by_name = {d["field_name"]: k for k, d in _defs(sim).items()}
    sim.advance(60)
    option = sim.add_field_option("deals", by_name["Region"], "Antarctica")
    products = by_name["Products of interest"]
    core = next(o["id"] for o in _defs(sim)[products]["options"] if o["label"] == "Core")
    sim.update("deals", 2, **{by_name["Region"]: option, products: [core, option - 0]})
    second = _deal_run(run, config, state=first.state, catalog_with=catalog_with)
    row = {r["id"]: r for r in second.records("deals")}[2]
    assert row["region"] == "Antarctica"
    assert row["products_of_interest"][0] == "Core"


def test_relabelled_option_is_emitted_with_its_new_label(
    pipedrive_simulator, run, config_for, catalog_with
):
    sim = pipedrive_simulator
    config = config_for(sim, include_archived_deals=False)
    catalog = catalog_with(config, ("deals", "leads"))
    defs = _defs(sim)
    by_name = {d["field_name"]: k for k, d in defs.items()}
    region, products = by_name["Region"], by_name["Products of interest"]
    emea = next(o["id"] for o in defs[region]["options"] if o["label"] == "EMEA")
    core, api = (
        next(o["id"] for o in defs[products]["options"] if o["label"] == label)
        for label in ("Core", "API")
    )
    lead = sim.truth("leads")[0]["id"]
    sim.update("deals", 2, **{region: emea, products: [core, api]})
    sim.update("leads", lead, **{region: emea, products: [api]})
    first = run(config, catalog=catalog)
    assert {r["id"]: r for r in first.records("deals")}[2]["region"] == "EMEA"
    assert {r["id"]: r for r in first.records("leads")}[lead]["region"] == "EMEA"

    sim.advance(60)
    sim.rename_field_option("deals", region, emea, "Europe")
    sim.rename_field_option("deals", products, core, "Core platform")
    # Relabelling changes no record's update_time; these two change for another reason.
    sim.update("deals", 2, title="Touched")
    sim.update("leads", lead, title="Touched lead")
    second = run(config, state=first.state, catalog=catalog)
    assert second.error is None
    deal = {r["id"]: r for r in second.records("deals")}[2]
    assert deal["region"] == "Europe"
    assert deal["products_of_interest"] == ["Core platform", "API"]
    touched = {r["id"]: r for r in second.records("leads")}[lead]
    assert touched["region"] == "Europe"
    assert touched["products_of_interest"] == ["API"]


def test_lead_custom_fields_land_as_the_deal_columns(
    pipedrive_simulator, run, config_for, catalog_with
):
    """Leads carry the deal custom fields (v1: top-level hash keys, only those set)."""
    sim = pipedrive_simulator
    config = config_for(sim)
    result = run(config, catalog=catalog_with(config, ("deals", "leads")))
    assert result.error is None
    deal_props = result.schema("deals")["properties"]
    props = result.schema("leads")["properties"]
    assert not any(len(name) == 40 for name in props), "no raw hash keys by default"
    defs = _defs(sim)
    by_name = {d["field_name"]: d for d in defs.values()}
    for name, columns in EXPECTED_COLUMNS.items():
        for column, json_type in columns.items():
            assert json_type in props[column]["type"], column
            assert props[column]["x-pipedrive-key"] == by_name[name]["field_code"], column
    # The same columns as on deals, so the two tables read alike.
    custom = {c for c, p in props.items() if p.get("x-pipedrive-key") in defs}
    assert custom == {c for c, p in deal_props.items() if p.get("x-pipedrive-key") in defs}

    rows = {r["id"]: r for r in result.records("leads")}
    expected_ids = {r["id"] for r in sim.truth("leads") + sim.truth("archived_leads")}
    assert rows.keys() == expected_ids
    assert any(r["is_archived"] for r in rows.values())
    assert not any(len(key) == 40 for r in rows.values() for key in r)
    store = sim.simulator.account.stores["leads"]
    checked_types = set()
    for lead_id, row in rows.items():
        values = store.get(lead_id)["custom_fields"]
        for key, defn in defs.items():
            value = values.get(key)
            column = next(
                c
                for c, p in props.items()
                if p.get("x-pipedrive-key") == key
                and p.get("x-pipedrive-subfield") in (None, "value", "start")
            )
            ftype = defn["field_type"]
            if ftype == "monetary":
                assert row[column] == (value and value["value"]), column
                assert row[f"{column}_currency"] == (value and value["currency"]), column
            elif ftype in ("daterange", "timerange"):
                assert row[column] == (value and value["start"]), column
                assert row[f"{column}_until"] == (value and value["end"]), column
            elif ftype == "time":
                assert row[column] == (value and value["value"]), column
                assert row[f"{column}_timezone_id"] == (value and value["timezone_id"]), column
            elif ftype == "address":
                assert row[column] == (value and value["value"]), column
                assert row[f"{column}_postal_code"] == (value and value.get("postal_code"))
            else:
                assert row[column] == _expected_value(defn, value), (lead_id, column)
            if value is not None:
                checked_types.add(ftype)
    assert checked_types == {d["field_type"] for d in defs.values()}


def test_hash_keys_setting(pipedrive_simulator, run, config_for, catalog_with):
    sim = pipedrive_simulator
    config = config_for(sim, include_archived_deals=False, custom_field_names="hash")
    result = _deal_run(run, config, catalog_with=catalog_with)
    props = result.schema("deals")["properties"]
    for key, defn in _defs(sim).items():
        assert key in props
        if defn["field_type"] == "monetary":
            assert f"{key}_currency" in props


@pytest.mark.parametrize(
    ("name", "field_type", "expected"),
    [
        pytest.param("Title", "varchar", "title_", id="collides-with-standard"),
        pytest.param("Région (EUR) ünïcode", "varchar", "region_eur_unicode", id="accents"),
        pytest.param("x" * 80, "address", "xxxx", id="longer-than-63-bytes"),
    ],
)
def test_column_names_are_safe(
    pipedrive_simulator, run, config_for, catalog_with, name, field_type, expected
):
    sim = pipedrive_simulator
    key = sim.add_field("deals", name, field_type)
    config = config_for(sim, include_archived_deals=False)
    tap_run = _deal_run(run, config, catalog_with=catalog_with)
    props = tap_run.schema("deals")["properties"]
    columns = [c for c, p in props.items() if p.get("x-pipedrive-key") == key]
    assert columns
    assert all(len(c.encode()) <= 63 for c in props)
    base = next(c for c in columns if props[c].get("x-pipedrive-subfield") in (None, "value"))
    assert base.startswith(expected)
    assert len(set(props)) == len(props)
    if field_type == "varchar" and name == "Title":
        assert props["title"]["x-pipedrive-key"] == "title"
