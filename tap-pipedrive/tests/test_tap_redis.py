"""Redis: the burst window and token count shared across processes; the dictionary cache."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import redis
from tap_pipedrive.store import KEY_PREFIX


def _cleanup(client, account):
    for key in client.scan_iter(f"{KEY_PREFIX}:{account}:*"):
        client.delete(key)


def test_parallel_processes_share_the_burst_limit_and_token_count(
    pipedrive_simulator, config_for, catalog_with, redis_url, redis_prefix, tmp_path: Path
):
    sim = pipedrive_simulator
    sim.set_plan("essential")  # 20 requests per 2 s window per token
    # Each process alone stays under the limit (5 field lists + 12 pages); together they don't.
    config = config_for(
        sim, page_size=50, redis_url=redis_url, company_domain=redis_prefix, cache_ttl_seconds=0
    )
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog_with(config, ["persons"])))
    client = redis.Redis.from_url(redis_url)
    _cleanup(client, f"domain:{redis_prefix}")
    sim.reset_stats()
    tap = Path(sys.executable).with_name("tap-pipedrive")
    args = [
        str(tap),
        "--config",
        str(tmp_path / "config.json"),
        "--catalog",
        str(tmp_path / "catalog.json"),
    ]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0]
        for out in outputs:
            ids = [json.loads(x)["record"]["id"] for x in out.splitlines() if '"RECORD"' in x]
            assert sorted(ids) == sorted(r["id"] for r in sim.truth("persons"))
        stats = sim.stats()["total"]
        assert stats["requests"] > 20  # more than one window's worth, so sharing mattered
        # Unshared, the two processes would draw a dozen 429s here (34 requests in the first
        # window of 20). Shared, none, except that on a starved machine a process can stall
        # between taking its slot and sending, so its request lands in a later window: at most
        # one 429 then, which the tap waits out.
        assert stats["responses_429"] <= 1
        today = dt.datetime.now(dt.UTC).date().isoformat()
        shared = int(client.get(f"{KEY_PREFIX}:domain:{redis_prefix}:tokens:{today}"))
        assert shared == stats["tokens"]
    finally:
        _cleanup(client, f"domain:{redis_prefix}")


def test_dictionaries_are_cached_per_account_without_the_token(
    pipedrive_simulator, run, config_for, redis_url, redis_prefix
):
    sim = pipedrive_simulator
    config = config_for(sim, redis_url=redis_url, company_domain=redis_prefix)
    client = redis.Redis.from_url(redis_url)
    account = f"domain:{redis_prefix}"
    try:
        first = run(config)
        assert first.error is None
        keys = {k.decode() for k in client.scan_iter(f"{KEY_PREFIX}:{account}:cache:*")}
        names = {k.rsplit(":", 1)[-1] for k in keys}
        assert names == {
            "deal_fields",
            "person_fields",
            "organization_fields",
            "product_fields",
            "activity_fields",
            "project_fields",
            "users",
            "pipelines",
            "stages",
        }
        for key in keys:
            # Field definitions stay twice refresh_interval_minutes (default 12 h; re-read
            # once the interval is over, see streams.fields), with the API's time of the read;
            # the other dictionaries cache_ttl_seconds (default 1 h).
            limit = 2 * 720 * 60 if key.endswith("_fields") else 3600
            assert 0 < client.ttl(key) <= limit
            if key.endswith("_fields"):
                assert client.ttl(key) > 720 * 60
                entry = json.loads(client.get(key))
                assert entry["read_at"] == sim.now.strftime("%Y-%m-%dT%H:%M:%SZ")
                assert isinstance(entry["records"], list)
                assert entry["records"]
            assert sim.api_token not in key
            assert sim.api_token.encode() not in client.get(key)

        sim.reset_stats()
        second = run(config)
        assert second.error is None
        endpoints = sim.stats()["endpoints"]
        for cached in ("/api/v2/dealFields", "/api/v2/stages", "/api/v2/pipelines", "/v1/users"):
            assert endpoints.get(f"GET {cached}", {}).get("requests", 0) == 0, cached
        assert sorted(second.ids("stages")) == sorted(first.ids("stages"))
        assert second.schema("deals") == first.schema("deals")
    finally:
        _cleanup(client, account)


def test_works_without_redis(pipedrive_simulator, run, config_for):
    sim = pipedrive_simulator
    result = run(config_for(sim))
    assert result.error is None
    assert result.tap.api.redis is None
    assert not result.tap.api.cache.enabled
