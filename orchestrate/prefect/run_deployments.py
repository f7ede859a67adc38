"""Register the generated deployments with a Prefect server and run one flow for real.

Runs inside a Prefect virtualenv (see check_with_prefect.sh), with no PREFECT_API_URL: Prefect
starts a temporary local server.
    python run_deployments.py SCHEDULES_JSON PREFECT_DIR FLOW_TO_RUN
Exit 0 when every schedule has a deployment Prefect accepts (its cron, concurrency limit 1, the
job's steps), and FLOW_TO_RUN (a deployment name) ran to completion; the state ID's global
concurrency limit of 1 then exists on the server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def main(schedules_json: str, prefect_dir: str, flow_to_run: str) -> int:
    """Compare what Prefect loaded with what Meltano schedules, then run one flow."""
    from prefect import get_client
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.flows import load_flow_from_entrypoint

    directory = Path(prefect_dir).resolve()
    document: dict[str, Any] = yaml.safe_load((directory / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in document["deployments"]}
    schedules = json.loads(Path(schedules_json).read_text())["schedules"]["job"]
    problems: list[str] = []
    if set(deployments) != {s["name"] for s in schedules}:
        problems.append(f"deployments {sorted(deployments)} != schedules")
    flows = {}
    for schedule in schedules:
        spec = deployments.get(schedule["name"])
        if spec is None:
            continue
        path, function = spec["entrypoint"].split(":")
        flow = load_flow_from_entrypoint(f"{directory / path}:{function}")
        flows[schedule["name"]] = flow
        module = sys.modules[flow.fn.__module__]
        steps = tuple(t if isinstance(t, str) else " ".join(t) for t in schedule["job"]["tasks"])
        if steps != module.STEPS:
            problems.append(f"{schedule['name']}: steps {module.STEPS} != {steps}")
        deployment = flow.to_deployment(
            name=spec["name"],
            cron=spec["schedules"][0]["cron"],
            concurrency_limit=ConcurrencyLimitConfig(limit=spec["concurrency_limit"]),
            tags=spec["tags"],
        )
        deployment_id = deployment.apply()
        with get_client(sync_client=True) as client:
            stored = client.read_deployment(deployment_id)
        crons = [s.schedule.cron for s in stored.schedules]  # type: ignore[union-attr]
        if crons != [schedule["cron_interval"]]:
            problems.append(f"{spec['name']}: Prefect holds crons {crons}")
        if stored.global_concurrency_limit is None or stored.global_concurrency_limit.limit != 1:
            problems.append(f"{spec['name']}: runs may overlap")
        print(f"deployment {flow.name}/{stored.name}: {crons} concurrency 1 steps {list(steps)}")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1

    flow = flows[flow_to_run]
    state = flow(return_state=True)
    print(f"flow {flow.name}: {state.type.value}")
    if not state.is_completed():
        return 1
    module = sys.modules[flow.fn.__module__]
    with get_client(sync_client=True) as client:
        for step in module.STEPS:
            limit = client.read_global_concurrency_limit_by_name(
                module.concurrency_limit_name(step)
            )
            print(f"concurrency limit {limit.name}: {limit.limit}")
            if limit.limit != 1:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
