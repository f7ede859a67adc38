"""Per-record streams of deals, organizations and mail threads (deal participants, followers
and discounts, organization relationships, mail messages): the simulator's records arrive
exactly over real HTTP, a rerun reads only the parents changed since, and a participant added
or removed is reflected in Postgres after the next run."""

from __future__ import annotations

import io
import json
import typing as t

import psycopg
import pytest
import requests
from pipedrive_simulator.coverage_data import MAIL_FOLDERS
from psycopg import sql
from tap_pipedrive.change_feed import DEFAULT_REFRESH_MINUTES
from target_pipeboard_postgres.target import TargetPipeboardPostgres

PER_RECORD = [
    "deal_participants",
    "deal_followers",
    "deal_discounts",
    "organization_relationships",
    "mail_messages",
]
PARENTS = ["deals", "organizations", "mail_threads"]


@pytest.fixture
def account(pipedrive_simulator_factory: t.Any) -> t.Any:
    return pipedrive_simulator_factory(seed=11, deals=80)


def _deals(sim: t.Any) -> list[dict[str, t.Any]]:
    """Every deal the tap reads a list for: live and archived, not deleted."""
    every = sim.truth("deals") + sim.truth("archived_deals")
    return [d for d in every if not d.get("is_deleted")]


def _live(records: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    return [r for r in records if r.get("_sdc_deleted_at") is None]


def _followers(sim: t.Any, deal: dict[str, t.Any]) -> set[int]:
    users = sim.simulator.account.gen.user_ids
    found = {deal.get("owner_id") or users[0]}
    if deal["id"] % 3 == 0:
        found.add(users[deal["id"] % len(users)])
    return found


def _relationships(sim: t.Any, org_id: int) -> set[tuple[int, int, str, int]]:
    out = set()
    for rel in sim.simulator.coverage.rows("organization_relationships"):
        owner, linked = rel["rel_owner_org_id"], rel["rel_linked_org_id"]
        if org_id not in (owner, linked):
            continue
        other = linked if org_id == owner else owner
        if rel["type"] == "related":
            kind = "related"
        else:
            kind = "daughter" if org_id == owner else "parent"
        out.add((org_id, rel["id"], kind, other))
    return out


def test_the_simulators_records_arrive_exactly(account, run, config_for, catalog_with):
    sim = account
    config = config_for(sim)
    result = run(config, catalog=catalog_with(config, [*PER_RECORD, *PARENTS]))
    assert result.error is None
    coverage = sim.simulator.coverage
    deals = _deals(sim)
    assert deals

    participants = _live(result.records("deal_participants"))
    assert {(r["deal_id"], r["id"], r["person_id"]["value"]) for r in participants} == {
        (d["id"], p["id"], p["person_id"]) for d in deals for p in coverage.participants(d)
    }
    # Positions number each deal's set from 0.
    for deal in deals:
        mine = sorted(r["position"] for r in participants if r["deal_id"] == deal["id"])
        assert mine == list(range(len(coverage.participants(deal))))

    followers = _live(result.records("deal_followers"))
    assert {(r["deal_id"], r["user_id"]) for r in followers} == {
        (d["id"], u) for d in deals for u in _followers(sim, d)
    }

    discounts = {r["id"]: r for r in _live(result.records("deal_discounts"))}
    expected = [x for d in deals for x in coverage.discounts(d)]
    assert expected, "the seeded account has discounts"
    assert sorted(discounts) == sorted(x["id"] for x in expected)
    for row in expected:
        got = discounts[row["id"]]
        for key in ("type", "amount", "deal_id", "description", "created_by"):
            assert got[key] == row[key], (row["id"], key)

    organizations = [o for o in sim.truth("organizations") if not o.get("is_deleted")]
    relationships = _live(result.records("organization_relationships"))
    assert relationships, "the seeded account has relationships"
    assert {
        (r["organization_id"], r["id"], r["calculated_type"], r["calculated_related_org_id"])
        for r in relationships
    } == {x for o in organizations for x in _relationships(sim, o["id"])}

    threads = coverage.rows("mail_threads")
    messages = {r["id"]: r for r in result.records("mail_messages")}
    truth = [m for th in threads for m in coverage.mail_messages(th)]
    assert sorted(messages) == sorted(m["id"] for m in truth)
    for message in truth:
        got = messages[message["id"]]
        assert got["mail_thread_id"] == message["mail_thread_id"]
        for side in ("from", "to", "cc", "bcc"):
            assert [p["email_address"] for p in got[side]] == [
                p["email_address"] for p in message[side]
            ], (message["id"], side)
    assert any(m["cc"] for m in truth)
    assert any(m["bcc"] for m in truth)


def test_a_rerun_reads_only_the_parents_changed_since(account, run, config_for, catalog_with):
    sim = account
    # Mail threads are a list nothing reports changes of (re-read every
    # refresh_interval_minutes): 0 reads them on every run, so the changed thread is seen now.
    config = {**config_for(sim), "refresh_interval_minutes": 0}
    catalog = catalog_with(config, [*PER_RECORD, *PARENTS])
    first = run(config, catalog=catalog)
    assert first.error is None

    sim.advance(3600)
    deal = next(d for d in sim.truth("deals") if not d.get("is_deleted") and d["id"] % 6 == 0)
    sim.update("deals", deal["id"], title="Changed deal")
    org = next(o for o in sim.truth("organizations") if o["id"] == 5)
    sim.update("organizations", org["id"], name="Changed organization")
    coverage = sim.simulator.coverage
    thread = coverage.rows("mail_threads")[2]
    coverage.put("mail_threads", {"id": thread["id"], "snippet": "A new message"})
    sim.reset_stats()
    second = run(config, state=first.state, catalog=catalog)
    assert second.error is None
    sent = {k: v["requests"] for k, v in sim.stats()["endpoints"].items()}
    assert sent["GET /v1/deals/{id}/participants"] == 1
    assert sent["GET /api/v2/deals/{id}/followers"] == 1
    assert sent["GET /api/v2/deals/{id}/discounts"] == 1
    assert sent["GET /v1/organizationRelationships"] == 1
    assert sent["GET /v1/mailbox/mailThreads/{id}/mailMessages"] == 1
    for stream in ("deal_participants", "deal_followers", "deal_discounts"):
        assert {r["deal_id"] for r in second.records(stream)} == {deal["id"]}, stream
    assert {r["organization_id"] for r in second.records("organization_relationships")} == {5}
    assert {r["mail_thread_id"] for r in second.records("mail_messages")} == {thread["id"]}

    # Nothing changed: no per-record request at all.
    sim.advance(3600)
    sim.reset_stats()
    third = run(config, state=second.state, catalog=catalog)
    assert third.error is None
    sent = set(sim.stats()["endpoints"])
    assert not {e for e in sent if "{id}" in e or "Relationships" in e}, sent


def _load(messages: list[dict[str, t.Any]], postgres_url: str, schema: str) -> None:
    text = "\n".join(json.dumps(m) for m in messages) + "\n"
    target = TargetPipeboardPostgres(
        config={"database_url": postgres_url, "default_target_schema": schema},
        parse_env_config=False,
    )
    target.listen(io.StringIO(text))


def _live_pairs(
    postgres_url: str, schema: str, table: str, first: sql.Composable, second: sql.Composable
) -> set[tuple[int, int]]:
    """(parent, member) of the rows of ``table`` not retired."""
    query = sql.SQL("SELECT {}, {} FROM {} WHERE _sdc_deleted_at IS NULL").format(
        first, second, sql.Identifier(schema, table)
    )
    with psycopg.connect(postgres_url) as conn:
        return {(a, b) for a, b in conn.execute(query).fetchall()}


def _participants_in(postgres_url: str, schema: str) -> set[tuple[int, int]]:
    person = sql.SQL("(person_id->>'value')::int")
    return _live_pairs(postgres_url, schema, "deal_participants", sql.Identifier("deal_id"), person)


def test_an_added_and_a_removed_participant_are_reflected_after_the_next_run(
    account, run, config_for, catalog_with, postgres_url, pg_schema
):
    sim = account
    config = config_for(sim)
    catalog = catalog_with(config, ["deals", "deal_participants"])
    first = run(config, catalog=catalog)
    assert first.error is None
    _load(first.messages, postgres_url, pg_schema)
    coverage = sim.simulator.coverage

    def truth() -> set[tuple[int, int]]:
        return {(d["id"], p["person_id"]) for d in _deals(sim) for p in coverage.participants(d)}

    assert _participants_in(postgres_url, pg_schema) == truth()

    sim.advance(3600)
    deals = _deals(sim)
    two = next(d for d in deals if len(coverage.participants(d)) == 2)
    one = next(d for d in deals if len(coverage.participants(d)) == 1)
    grows = next(d for d in deals if d["id"] not in (two["id"], one["id"]))
    coverage.remove_participant(two, coverage.participants(two)[0]["id"])  # the first removed
    coverage.remove_participant(one, coverage.participants(one)[0]["id"])  # none left
    coverage.add_participant(grows, 1)
    sim.advance(120)
    second = run(config, state=first.state, catalog=catalog)
    assert second.error is None
    assert {r["deal_id"] for r in second.records("deal_participants")} == {
        two["id"],
        one["id"],
        grows["id"],
    }
    _load(second.messages, postgres_url, pg_schema)
    assert _participants_in(postgres_url, pg_schema) == truth()
    assert not any(deal_id == one["id"] for deal_id, _ in truth())


@pytest.mark.parametrize("stream", PER_RECORD)
def test_each_stream_works_alone(account, run, config_for, catalog_with, stream):
    config = config_for(account)
    result = run(config, catalog=catalog_with(config, [stream]))
    assert result.error is None
    assert result.records(stream), stream
    assert {m["stream"] for m in result.types("RECORD")} == {stream}


FOLLOWERS = (
    ("person_followers", "persons", "person_id"),
    ("organization_followers", "organizations", "organization_id"),
    ("product_followers", "products", "product_id"),
)


def _followers_in(postgres_url: str, schema: str, table: str, column: str) -> set[tuple[int, int]]:
    return _live_pairs(
        postgres_url, schema, table, sql.Identifier(column), sql.Identifier("user_id")
    )


def test_a_removed_follower_or_product_variation_is_retired_after_the_next_run(
    account, run, config_for, catalog_with, postgres_url, pg_schema
):
    sim = account
    config = config_for(sim)
    streams = [stream for stream, _, _ in FOLLOWERS]
    parents = ["persons", "organizations", "products"]
    catalog = catalog_with(config, [*streams, "product_variations", *parents])
    first = run(config, catalog=catalog)
    assert first.error is None
    _load(first.messages, postgres_url, pg_schema)
    coverage = sim.simulator.coverage

    def variations() -> set[tuple[int, int]]:
        live = [p for p in sim.truth("products") if not p.get("is_deleted")]
        return {(p["id"], v["id"]) for p in live for v in coverage.variations(p)}

    def stored_variations() -> set[tuple[int, int]]:
        query = sql.SQL("SELECT product_id, id FROM {} WHERE _sdc_deleted_at IS NULL").format(
            sql.Identifier(pg_schema, "product_variations")
        )
        with psycopg.connect(postgres_url) as conn:
            return {(a, b) for a, b in conn.execute(query).fetchall()}

    assert stored_variations() == variations()
    assert variations()

    def truth(parent: str) -> set[tuple[int, int]]:
        live = [r for r in sim.truth(parent) if not r.get("is_deleted")]
        return {(r["id"], f["user_id"]) for r in live for f in coverage.followers(parent, r)}

    for stream, parent, column in FOLLOWERS:
        assert _followers_in(postgres_url, pg_schema, stream, column) == truth(parent), stream

    sim.advance(3600)
    removed: dict[str, list[tuple[int, int]]] = {}
    with requests.Session() as http:
        http.headers["x-api-token"] = sim.api_token
        for _, parent, _ in FOLLOWERS:
            live = [r for r in sim.truth(parent) if not r.get("is_deleted")]
            two = next(r for r in live if len(coverage.followers(parent, r)) == 2)
            one = next(r for r in live if len(coverage.followers(parent, r)) == 1)
            removed[parent] = []
            for rec in (two, one):  # the first of two removed; the only one removed
                user_id = coverage.followers(parent, rec)[0]["user_id"]
                url = f"{sim.base_url}/api/v2/{parent}/{rec['id']}/followers/{user_id}"
                resp = http.delete(url)
                assert resp.status_code == 200, resp.text
                removed[parent].append((rec["id"], user_id))
            assert not coverage.followers(parent, one)
        # One of a product's two variations removed; both of another's.
        products = [
            p for p in sim.truth("products") if not p.get("is_deleted") and coverage.variations(p)
        ]
        for product, count in ((products[0], 1), (products[1], 2)):
            for variation in coverage.variations(product)[:count]:
                url = f"{sim.base_url}/api/v2/products/{product['id']}/variations/{variation['id']}"
                resp = http.delete(url)
                assert resp.status_code == 200, resp.text
        assert not coverage.variations(products[1])
    sim.advance(120)
    second = run(config, state=first.state, catalog=catalog)
    assert second.error is None
    _load(second.messages, postgres_url, pg_schema)
    for stream, parent, column in FOLLOWERS:
        stored = _followers_in(postgres_url, pg_schema, stream, column)
        assert stored == truth(parent), stream
        assert not set(removed[parent]) & stored, stream
    assert stored_variations() == variations()
    assert not any(product_id == products[1]["id"] for product_id, _ in stored_variations())


THREADS = "GET /v1/mailbox/mailThreads"
MESSAGES = "GET /v1/mailbox/mailThreads/{id}/mailMessages"


def test_mail_folders_are_re_read_one_per_run_on_the_interval(
    account, run, config_for, catalog_with
):
    # Each folder costs a request (20 tokens): on refresh_interval_minutes one folder is re-read
    # per run, the one read longest ago, so no idle run pays for all four.
    sim = account
    config = config_for(sim)
    catalog = catalog_with(config, ["mail_threads", "mail_messages"])
    first = run(config, catalog=catalog)
    assert first.error is None
    assert sim.stats()["endpoints"][THREADS]["requests"] == 4
    coverage = sim.simulator.coverage
    thread = coverage.rows("mail_threads")[2]
    folder = thread["folders"][0]

    def due_runs(state: dict[str, t.Any]) -> tuple[list[str], list[t.Any], dict[str, t.Any]]:
        """Five runs half an hour apart: the folder each read, and the threads whose
        messages were read."""
        folders, threads = [], []
        for _ in range(5):
            sim.reset_stats()
            result = run(config, state=state, catalog=catalog)
            assert result.error is None
            sent = {k: v["requests"] for k, v in sim.stats()["endpoints"].items()}
            assert sent.get(THREADS, 0) <= 1, sent
            mail = sum(v["tokens"] for k, v in sim.stats()["endpoints"].items() if "mail" in k)
            assert mail <= 20 + 20 * sent.get(MESSAGES, 0)
            read = {f for r in result.records("mail_threads") for f in r["folders"]}
            folders.extend(sorted(read) if sent.get(THREADS) else [])
            threads.extend(r["mail_thread_id"] for r in result.records("mail_messages"))
            state = result.state
            sim.advance(1800)
        return folders, threads, state

    sim.advance(DEFAULT_REFRESH_MINUTES * 60 + 60)
    coverage.put("mail_threads", {"id": thread["id"], "snippet": "A new message"})
    folders, threads, state = due_runs(first.state)
    assert len(folders) == 4
    assert set(folders) == set(MAIL_FOLDERS)
    # The changed thread's messages are read once, when its folder is; no other thread's.
    assert set(threads) == {thread["id"]}
    assert folder in folders

    # A state from before folders were re-read one at a time (one refresh time, one mark for
    # every folder) counts for each folder: no thread's messages are read again.
    legacy = json.loads(json.dumps(state))
    threads_state = legacy["bookmarks"]["mail_threads"]
    times = threads_state.pop("refreshed_parts")
    threads_state["refreshed_at"] = min(times.values())
    messages_state = legacy["bookmarks"]["mail_messages"]
    marks = messages_state["threads_read_through"]
    newest = max(marks.values())
    messages_state["threads_read_through"] = newest
    messages_state["threads_at_mark"] = sorted(
        {
            i
            for f, ids in messages_state["threads_at_mark"].items()
            if marks[f] == newest
            for i in ids
        }
    )
    sim.advance(DEFAULT_REFRESH_MINUTES * 60)
    folders, threads, _ = due_runs(legacy)
    assert sorted(folders) == sorted(MAIL_FOLDERS)
    assert threads == []
