"""The per-stream parallel sync of orchestrate/kubernetes/generated/sync-parallel.yaml, run for
real: the pods' script, two indexes at once, sharing one Redis (the tap's limiter and budget)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import redis
import yaml

MANIFEST = (
    Path(__file__).resolve().parents[2] / "orchestrate/kubernetes/generated/sync-parallel.yaml"
)


def test_parallel_pods_each_sync_one_stream_with_shared_redis(
    pipedrive_simulator_factory, pipeline_factory, redis_url: str, tmp_path: Path
) -> None:
    simulator = pipedrive_simulator_factory(deals=80)
    pipeline = pipeline_factory(simulator)
    account = f"pipeboard-test-{uuid.uuid4().hex[:10]}"
    pipeline.extra_env.update(
        {"TAP_PIPEDRIVE_REDIS_URL": redis_url, "TAP_PIPEDRIVE_COMPANY_DOMAIN": account}
    )
    job = yaml.safe_load(MANIFEST.read_text())["spec"]["jobTemplate"]["spec"]
    script = job["template"]["spec"]["containers"][0]["command"][2]
    assert "0) group=deals;" in script
    assert "1) group=persons;" in script

    # Meltano creates its tables in a new system database on first use: done once, before the
    # parallel pods start (docs/operations.md), so they do not race to create them.
    pipeline.meltano("state", "list")
    # Each pod has its own filesystem (Meltano writes its catalog and logs under .meltano/), the
    # same Postgres, the same system database and the same Redis.
    pods = []
    for index in (0, 1):
        pod = pipeline.on_another_machine(tmp_path / f"pod-{index}")
        pods.append(
            subprocess.Popen(
                ["/bin/sh", "-c", script],
                cwd=pod.project,
                env=pod.env({"JOB_COMPLETION_INDEX": str(index), "MELTANO_ENVIRONMENT": "dev"}),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [pod.communicate(timeout=300)[0] for pod in pods]
    for pod, output in zip(pods, outputs, strict=True):
        assert pod.returncode == 0, output[-4000:]
    charged = simulator.stats()["total"]["tokens"]

    for group in ("deals", "persons"):
        pipeline.assert_matches_truth(group)
        state = pipeline.stored_state(f"{pipeline.state_id}:{group}")
        assert state is not None, group
        assert group in state["singer_state"]["bookmarks"]
    pipeline.assert_no_duplicates("deal_products")  # the deals pod reads its child stream too
    # Each pod read only its own stream.
    tables = {
        row[0]
        for row in pipeline.query(
            "select table_name from information_schema.tables where table_schema = %s",
            pipeline.schema,
        )
    }
    assert "organizations" not in tables
    assert "activities" not in tables
    # Both pods counted their tokens in the one Redis: the account's shared daily counter holds
    # every token the simulator charged to either pod, so a run's budget check sees both.
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"*{account}*"))
    try:
        counters = [key for key in keys if b":tokens:" in key]
        assert len(counters) == 1, keys
        assert charged > 0
        assert int(client.get(counters[0]) or 0) == charged
    finally:
        if keys:
            client.delete(*keys)
