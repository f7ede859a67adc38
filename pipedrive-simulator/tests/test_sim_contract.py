"""Contract test: every endpoint the simulator serves answers as the vendored OpenAPI specs say.

The specs are loaded once per session (parsing the YAML is the slow part). Following the specs'
README, nullability is the only relaxation: recorded real traffic has nulls the specs do not
declare; everything else (paths, status codes, envelope, field names, types) is held to the spec.
"""

from pathlib import Path

import orjson
import pipedrive_simulator
import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

SPEC_DIR = Path(__file__).resolve().parents[2] / "vendor" / "pipedrive-openapi"
SCHEMA_KEYS = ("type", "properties", "allOf", "oneOf", "anyOf", "items")


def _relax_nullability(node):
    if isinstance(node, dict):
        if any(key in node for key in SCHEMA_KEYS):
            node["nullable"] = True
        for value in node.values():
            _relax_nullability(value)
    elif isinstance(node, list):
        for value in node:
            _relax_nullability(value)


def _load(name, servers):
    with (SPEC_DIR / name).open(encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=yaml.CSafeLoader)
    _relax_nullability(spec)
    spec["servers"] = [{"url": url} for url in servers]
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="session")
def sim():
    handle = pipedrive_simulator.start(seed=7)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def specs(sim):
    base = sim.base_url
    return {
        "v2": _load("pipedrive-api-v2.openapi.yaml", [f"{base}/api/v2"]),
        "v1": _load("pipedrive-api-v1.openapi.yaml", [f"{base}/v1", f"{base}/api/v1"]),
    }


@pytest.fixture(scope="session")
def http(sim):
    session = requests.Session()
    session.headers["x-api-token"] = sim.api_token
    yield session
    session.close()


def _validate(specs, resp):
    version = "v2" if "/api/v2/" in resp.request.url else "v1"
    try:
        specs[version].validate_response(
            RequestsOpenAPIRequest(resp.request), RequestsOpenAPIResponse(resp)
        )
    except Exception as exc:  # report the schema errors, not a megabyte of payload
        cause = exc.__cause__
        details = [_brief(e) for e in getattr(cause, "schema_errors", ())]
        pytest.fail(
            f"{resp.request.method} {resp.request.url}: {type(exc).__name__} {details or exc}"
        )


def _brief(error):
    """One schema error, without the offending payload (which can be megabytes)."""
    path = "/".join(str(p) for p in getattr(error, "absolute_path", ()))
    nested = [_brief(c) for c in getattr(error, "context", None) or ()][:6]
    return f"{path}: {error.validator} {str(error.message)[-200:]} {nested if nested else ''}"


def _ids(sim):
    """Ids of records that make each single-item and per-deal endpoint interesting."""
    deals = sim.truth("deals")
    moved = max(deals, key=lambda d: len(sim.stage_history(d["id"])))
    with_items = next(d for d in deals if sim.simulator.account.line_items_of(d["id"]))
    field = next(
        f
        for f in sim.truth("deal_fields")
        if f["field_type"] == "monetary" and f["is_custom_field"]
    )
    account = sim.simulator.account
    deal_field_id = next(f.id for f in account.custom["deal"] if f.field_type == "address")
    return {
        "deal": moved["id"],
        "deal_with_items": with_items["id"],
        "person": sim.truth("persons")[0]["id"],
        "organization": sim.truth("organizations")[0]["id"],
        "activity": sim.truth("activities")[0]["id"],
        "product": sim.truth("products")[0]["id"],
        "lead": sim.truth("leads")[0]["id"],
        "archived_lead": sim.truth("archived_leads")[0]["id"],
        "note": sim.truth("notes")[0]["id"],
        "file": sim.truth("files")[0]["id"],
        "user": sim.truth("users")[0]["id"],
        "field_code": field["field_code"],
        "deal_field_id": deal_field_id,
        "person_field_id": account.custom["person"][0].id,
        "organization_field_id": account.custom["organization"][0].id,
        "product_field_id": account.custom["product"][0].id,
        "goal": next(iter(sim.simulator.coverage.tables["goals"])),
        "permission_set": next(iter(sim.simulator.coverage.tables["permission_sets"])),
    }


def _cases(ids):
    all_custom = {"include_option_labels": "true"}
    return [
        ("/api/v2/deals", {"limit": 100}),
        ("/api/v2/deals", {"limit": 50, "status": "open,won,lost,deleted", **all_custom}),
        (
            "/api/v2/deals",
            {
                "limit": 20,
                "sort_by": "update_time",
                "sort_direction": "desc",
                "updated_since": "2025-01-01T00:00:00Z",
                "include_fields": "products_count,smart_bcc_email",
            },
        ),
        ("/api/v2/deals/archived", {"limit": 50}),
        (f"/api/v2/deals/{ids['deal']}", all_custom),
        ("/api/v2/deals/products", {"deal_ids": f"{ids['deal_with_items']},1,2,3,4,5"}),
        (f"/api/v2/deals/{ids['deal_with_items']}/products", {}),
        ("/api/v2/persons", {"limit": 100, **all_custom}),
        (f"/api/v2/persons/{ids['person']}", {}),
        ("/api/v2/organizations", {"limit": 100, **all_custom}),
        (f"/api/v2/organizations/{ids['organization']}", {}),
        ("/api/v2/activities", {"limit": 100}),
        (f"/api/v2/activities/{ids['activity']}", {}),
        ("/api/v2/products", {"limit": 100}),
        (f"/api/v2/products/{ids['product']}", {}),
        ("/api/v2/pipelines", {}),
        ("/api/v2/pipelines/1", {}),
        ("/api/v2/stages", {}),
        ("/api/v2/stages/1", {}),
        *[
            (f"/api/v2/{e}Fields", {"limit": 500})
            for e in ("deal", "person", "organization", "product", "activity")
        ],
        ("/api/v2/dealFields/" + ids["field_code"], {}),
        ("/api/v2/personFields/name", {}),
        ("/api/v2/organizationFields/name", {}),
        ("/api/v2/productFields/name", {}),
        ("/api/v2/activityFields/subject", {}),
        ("/v1/notes", {"limit": 100}),
        (f"/v1/notes/{ids['note']}", {}),
        ("/v1/users", {}),
        ("/v1/users/me", {}),
        (f"/v1/users/{ids['user']}", {}),
        ("/v1/leads", {"limit": 100}),
        ("/v1/leads/archived", {"limit": 100}),
        (f"/v1/leads/{ids['lead']}", {}),
        (f"/v1/leads/{ids['archived_lead']}", {}),
        ("/v1/files", {"limit": 100}),
        (f"/v1/files/{ids['file']}", {}),
        (f"/v1/deals/{ids['deal']}/flow", {}),
        (f"/v1/deals/{ids['deal']}/changelog", {"limit": 2}),
        (f"/v1/persons/{ids['person']}/changelog", {"limit": 2}),
        (f"/v1/organizations/{ids['organization']}/changelog", {"limit": 500}),
        ("/v1/recents", {"since_timestamp": "2026-05-01 00:00:00", "limit": 200}),
        ("/v1/activityTypes", {}),
        ("/v1/currencies", {}),
        *[
            (f"/v1/{e}Fields", {"limit": 500})
            for e in ("deal", "person", "organization", "product")
        ],
        ("/v1/activityFields", {}),
        ("/v1/leadFields", {"limit": 500}),
        ("/v1/noteFields", {}),
        (f"/v1/dealFields/{ids['deal_field_id']}", {}),
        (f"/v1/personFields/{ids['person_field_id']}", {}),
        (f"/v1/organizationFields/{ids['organization_field_id']}", {}),
        (f"/v1/productFields/{ids['product_field_id']}", {}),
        ("/api/v1/notes", {"limit": 10}),
        ("/api/v1/leads/archived", {"limit": 2}),
        *_coverage_cases(ids),
    ]


def _coverage_cases(ids):
    """The less central endpoints (coverage_data / routes_coverage)."""
    return [
        ("/v1/callLogs", {"limit": 50}),
        ("/v1/leadLabels", {}),
        ("/v1/leadSources", {}),
        ("/v1/filters", {}),
        ("/v1/filters", {"type": "deals"}),
        ("/v1/goals/find", {}),
        ("/v1/goals/find", {"is_active": "false"}),
        (
            f"/v1/goals/{ids['goal']}/results",
            {"period.start": "2026-01-01", "period.end": "2026-12-31"},
        ),
        ("/v1/roles", {"limit": 100}),
        ("/v1/roles/1/assignments", {"limit": 100}),
        ("/v1/roles/1/settings", {}),
        ("/v1/permissionSets", {}),
        (f"/v1/permissionSets/{ids['permission_set']}/assignments", {"limit": 100}),
        *[
            ("/v1/mailbox/mailThreads", {"folder": f, "limit": 50})
            for f in ("inbox", "drafts", "sent", "archive")
        ],
        (f"/v1/users/{ids['user']}/permissions", {}),
        ("/api/v2/projects", {"limit": 100}),
        ("/api/v2/projects", {"limit": 2}),
        ("/api/v2/projects/archived", {"limit": 100}),
        ("/api/v2/projectFields", {"limit": 500}),
        ("/api/v2/boards", {}),
        ("/api/v2/phases", {"board_id": 1}),
        ("/api/v2/projectTemplates", {"limit": 100}),
        ("/api/v2/tasks", {"limit": 100}),
        ("/api/v2/deals/installments", {"deal_ids": "3,13,23,4"}),
        (f"/api/v2/persons/{ids['person']}/followers", {}),
        (f"/api/v2/organizations/{ids['organization']}/followers", {}),
        ("/api/v2/products/3/followers", {}),
        ("/api/v2/products/3/variations", {"limit": 100}),
        *[
            (f"/v1/mailbox/mailThreads/{thread}/mailMessages", {})
            for thread in (1, 2, 3, 6)  # with cc and bcc parties
        ],
        ("/v1/deals/4/participants", {"limit": 100}),  # two participants
        ("/v1/deals/4/participants", {"limit": 1}),  # two pages
        ("/api/v2/deals/4/followers", {}),
        ("/api/v2/deals/6/discounts", {}),  # a percentage and an amount
        ("/v1/organizationRelationships", {"org_id": 5}),  # the parent of 4
        ("/v1/organizationRelationships", {"org_id": 4}),  # the daughter of 5
        ("/v1/organizationRelationships", {"org_id": 1}),  # related to the seventh
    ]


def test_every_endpoint_matches_the_specs(sim, specs, http):
    cases = _cases(_ids(sim))
    for path, params in cases:
        resp = http.get(sim.base_url + path, params=params)
        assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text[:300]}"
        assert resp.json()["success"] is True
        _validate(specs, resp)
    _exercise_webhooks(sim, specs, http)
    _exercise_follower_removal(sim, specs, http)
    # Every served endpoint (except the removed legacy ones, which the specs no longer have)
    # was exercised above.
    served = {r.endpoint for r in sim.simulator.router.routes if r.handler.__name__ != "removed"}
    exercised = set(sim.stats()["endpoints"])
    assert served - exercised == set()


def _exercise_webhooks(sim, specs, http):
    """POST, GET and DELETE /v1/webhooks (and their 400 and 404) as the v1 spec shapes them."""
    body = {
        "subscription_url": "https://hooks.example.com/pipedrive",
        "event_action": "*",
        "event_object": "deal",
        "name": "contract",
        "version": "2.0",
        "http_auth_user": "u",
        "http_auth_password": "p",
    }
    created = http.post(sim.base_url + "/v1/webhooks", json=body)
    assert created.status_code == 201, created.text
    _validate(specs, created)
    bad = http.post(sim.base_url + "/v1/webhooks", json={**body, "subscription_url": "nope"})
    assert bad.status_code == 400
    _validate(specs, bad)
    listed = http.get(sim.base_url + "/v1/webhooks")
    assert listed.status_code == 200
    _validate(specs, listed)
    hook_id = created.json()["data"]["id"]
    deleted = http.delete(f"{sim.base_url}/v1/webhooks/{hook_id}")
    assert deleted.status_code == 200
    _validate(specs, deleted)
    missing = http.delete(f"{sim.base_url}/v1/webhooks/{hook_id}")
    assert missing.status_code == 404
    _validate(specs, missing)


def _exercise_follower_removal(sim, specs, http):
    """DELETE /api/v2/{entity}/{id}/followers/{follower_id} and
    /api/v2/products/{id}/variations/{product_variation_id} as the v2 spec shapes them; the
    follower or variation is gone from the list after, and a second removal is a 404."""
    ids = _ids(sim)
    lists = [
        (f"{sim.base_url}/api/v2/{kind}/{ident}/followers", "user_id")
        for kind, ident in (
            ("persons", ids["person"]),
            ("organizations", ids["organization"]),
            ("products", 3),
            ("deals", 4),
        )
    ]
    lists.append((f"{sim.base_url}/api/v2/products/3/variations", "id"))
    for url, key in lists:
        ident = http.get(url).json()["data"][0][key]
        deleted = http.delete(f"{url}/{ident}")
        assert deleted.status_code == 200, deleted.text
        _validate(specs, deleted)
        assert deleted.json()["data"] == {key: ident}
        assert ident not in {r[key] for r in http.get(url).json()["data"]}
        assert http.delete(f"{url}/{ident}").status_code == 404


def test_custom_fields_of_every_type_are_present(sim, http):
    body = http.get(sim.base_url + "/api/v2/deals", params={"limit": 500}).json()
    account = sim.simulator.account
    types_seen = set()
    for deal in body["data"]:
        for fdef in account.custom["deal"]:
            assert len(fdef.key) == 40
            if deal["custom_fields"][fdef.key] is not None:
                types_seen.add(fdef.field_type)
    assert types_seen == {f.field_type for f in account.custom["deal"]}
    assert len(account.custom["deal"]) >= 40


def test_the_validator_rejects_a_response_that_breaks_the_spec(sim, specs, http):
    resp = http.get(sim.base_url + "/api/v2/deals", params={"limit": 2})
    doc = resp.json()
    doc["data"][0]["title"] = 12345
    resp._content = orjson.dumps(doc)
    with pytest.raises(pytest.fail.Exception, match="title"):
        _validate(specs, resp)
