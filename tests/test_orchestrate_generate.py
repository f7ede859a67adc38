"""orchestrate/: Airflow DAGs, Prefect flows and deployments, Kubernetes CronJobs and the crontab
generated from `meltano schedule list`."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GENERATE = ROOT / "orchestrate" / "generate.py"
KUBERNETES_VERSION = "1.30"


def _run(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def schedules_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real `meltano schedule list --format=json` of a copy of the project with one more job
    of two steps (and a schedule env), so chaining is exercised too."""
    project = tmp_path_factory.mktemp("project")
    document = yaml.safe_load((ROOT / "meltano.yml").read_text())
    document["jobs"].append(
        {
            "name": "sync-and-reconcile",
            "tasks": [
                "tap-pipedrive target-pipeboard-postgres",
                ["tap-pipedrive--reconcile", "target-pipeboard-postgres"],
            ],
        }
    )
    document["schedules"].append(
        {
            "name": "both-hourly",
            "interval": "@hourly",
            "job": "sync-and-reconcile",
            "env": {"TAP_PIPEDRIVE_START_DATE": "2024-01-01T00:00:00Z"},
        }
    )
    (project / "meltano.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = _run(["meltano", "schedule", "list", "--format=json"], cwd=project, check=True)
    out = project / "schedules.json"
    out.write_text(result.stdout)
    return out


@pytest.fixture(scope="module")
def generated(schedules_json: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    _run(
        [
            sys.executable,
            str(GENERATE),
            "--input",
            str(schedules_json),
            "--airflow-out",
            str(out / "dags"),
            "--kubernetes-out",
            str(out / "k8s"),
            "--cron-out",
            str(out / "cron"),
            "--prefect-out",
            str(out / "prefect"),
        ],
        cwd=ROOT,
        check=True,
    )
    return out


def _dag_structure(source: str) -> dict:
    """DAG kwargs, BashOperator tasks and `>>` chains, read from the generated source."""
    tree = ast.parse(source)
    dag_kwargs: dict = {}
    tasks: dict[str, dict] = {}
    chains: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DAG":
            dag_kwargs = {kw.arg: kw.value for kw in node.keywords}
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "BashOperator"
        ):
            kwargs = {kw.arg: kw.value for kw in node.value.keywords}
            tasks[node.targets[0].id] = {
                "task_id": ast.literal_eval(kwargs["task_id"]),
                "bash_command": ast.literal_eval(kwargs["bash_command"]),
            }
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.BinOp):
            names: list[str] = []
            expr = node.value
            while isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.RShift):
                names.insert(0, expr.right.id)
                expr = expr.left
            names.insert(0, expr.id)
            chains.append(names)
    return {"dag": dag_kwargs, "tasks": tasks, "chains": chains}


def test_one_dag_per_schedule_one_task_per_step(schedules_json: Path, generated: Path) -> None:
    schedules = json.loads(schedules_json.read_text())["schedules"]["job"]
    assert {s["name"] for s in schedules} >= {
        "sync-every-30-minutes",
        "reconcile-weekly",
        "stage-history-backfill-nightly",
    }
    files = sorted(p.name for p in (generated / "dags").glob("*.py"))
    assert files == sorted(f"meltano_{s['name']}.py" for s in schedules)
    for schedule in schedules:
        source = (generated / "dags" / f"meltano_{schedule['name']}.py").read_text()
        compile(source, schedule["name"], "exec")
        structure = _dag_structure(source)
        dag = structure["dag"]
        assert ast.literal_eval(dag["dag_id"]) == f"meltano_{schedule['name']}"
        assert ast.literal_eval(dag["schedule"]) == schedule["cron_interval"]
        assert ast.literal_eval(dag["catchup"]) is False
        assert ast.literal_eval(dag["max_active_runs"]) == 1
        steps = [t if isinstance(t, str) else " ".join(t) for t in schedule["job"]["tasks"]]
        ordered = [structure["tasks"][f"step_{i}"] for i in range(1, len(steps) + 1)]
        assert len(structure["tasks"]) == len(steps)
        assert [t["bash_command"] for t in ordered] == [
            f"meltano --environment=$MELTANO_ENVIRONMENT run {step}" for step in steps
        ]
        assert len({t["task_id"] for t in ordered}) == len(steps)
        expected_chain = [[f"step_{i}" for i in range(1, len(steps) + 1)]] if len(steps) > 1 else []
        assert structure["chains"] == expected_chain
        assert f"SCHEDULE_ENV = {schedule['env']!r}" in source


def test_two_step_job_is_chained(generated: Path) -> None:
    source = (generated / "dags" / "meltano_both-hourly.py").read_text()
    structure = _dag_structure(source)
    assert structure["chains"] == [["step_1", "step_2"]]
    assert ast.literal_eval(structure["dag"]["schedule"]) == "0 * * * *"
    assert structure["tasks"]["step_2"]["bash_command"].endswith(
        "run tap-pipedrive--reconcile target-pipeboard-postgres"
    )


def test_committed_files_match_meltano_yml() -> None:
    result = _run([sys.executable, str(GENERATE), "--check"], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_fails_when_stale(generated: Path, schedules_json: Path) -> None:
    stale = generated / "dags" / "meltano_reconcile-weekly.py"
    original = stale.read_text()
    stale.write_text(original.replace("0 3 * * 0", "0 4 * * 0"))
    try:
        result = _run(
            [
                sys.executable,
                str(GENERATE),
                "--check",
                "--input",
                str(schedules_json),
                "--airflow-out",
                str(generated / "dags"),
                "--kubernetes-out",
                str(generated / "k8s"),
                "--cron-out",
                str(generated / "cron"),
                "--prefect-out",
                str(generated / "prefect"),
            ],
            cwd=ROOT,
        )
    finally:
        stale.write_text(original)
    assert result.returncode == 1
    assert "stale" in result.stdout


def test_legacy_elt_schedules_are_rejected_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "schedules.json"
    bad.write_text(json.dumps({"schedules": {"job": [], "elt": [{"name": "old-elt"}]}}))
    result = _run(
        [
            sys.executable,
            str(GENERATE),
            "--input",
            str(bad),
            "--airflow-out",
            str(tmp_path / "a"),
            "--kubernetes-out",
            str(tmp_path / "k"),
            "--cron-out",
            str(tmp_path / "c"),
            "--prefect-out",
            str(tmp_path / "p"),
        ],
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "old-elt" in result.stderr


def _manifests(*paths: Path) -> list[tuple[Path, dict]]:
    return [
        (path, doc)
        for path in paths
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def test_every_manifest_is_valid_kubernetes() -> None:
    directory = ROOT / "orchestrate" / "kubernetes"
    paths = sorted(directory.glob("*.yaml")) + sorted((directory / "generated").glob("*.yaml"))
    documents = _manifests(*paths)
    assert {doc["kind"] for _, doc in documents} == {
        "CronJob",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "Ingress",
    }
    for path, doc in documents:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"]["name"], path


def test_invalid_manifest_is_caught() -> None:
    path = ROOT / "orchestrate" / "kubernetes" / "generated" / "cronjobs.yaml"
    doc = next(iter(yaml.safe_load_all(path.read_text())))
    doc["spec"]["concurrencyPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_cronjob_per_schedule_reading_the_shared_secret(
    schedules_json: Path, generated: Path
) -> None:
    schedules = json.loads(schedules_json.read_text())["schedules"]["job"]
    cron_jobs = [doc for _, doc in _manifests(generated / "k8s" / "cronjobs.yaml")]
    assert len(cron_jobs) == len(schedules)
    for schedule, cron_job in zip(schedules, cron_jobs, strict=True):
        spec = cron_job["spec"]
        assert spec["schedule"] == schedule["cron_interval"]
        assert spec["concurrencyPolicy"] == "Forbid"
        container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"][-2:] == ["run", schedule["job"]["name"]]
        sources = container["envFrom"]
        assert {"secretRef": {"name": "pipeboard-secrets"}} in sources
        assert {"configMapRef": {"name": "pipeboard-config"}} in sources
        assert container["env"] == [
            {"name": k, "value": v} for k, v in sorted(schedule["env"].items())
        ]
    secret = _manifests(ROOT / "orchestrate" / "kubernetes" / "secret.example.yaml")[0][1]
    # The shared state backend: Meltano's system database in Postgres (psycopg 3 driver).
    assert secret["stringData"]["MELTANO_DATABASE_URI"].startswith("postgresql+psycopg://")
    config = _manifests(ROOT / "orchestrate" / "kubernetes" / "configmap.yaml")[0][1]
    assert config["data"]["TAP_PIPEDRIVE_REDIS_URL"].startswith("redis://")


def test_the_webhook_receiver_is_served_ready_on_healthz_behind_tls() -> None:
    directory = ROOT / "orchestrate" / "kubernetes"
    docs = {doc["kind"]: doc for _, doc in _manifests(directory / "webhooks.yaml")}
    pod = docs["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"][0].endswith("/tap-pipedrive-webhooks")
    assert container["command"][1] == "serve"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["envFrom"] == [{"secretRef": {"name": "pipeboard-webhooks"}}]
    # The Service selects the pods; the Ingress sends only the events path to it, over TLS.
    assert docs["Service"]["spec"]["selector"] == pod["metadata"]["labels"]
    ingress = docs["Ingress"]["spec"]
    assert ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]
    (path,) = ingress["rules"][0]["http"]["paths"]
    assert path["path"] == "/pipedrive/webhooks"
    assert path["backend"]["service"]["name"] == docs["Service"]["metadata"]["name"]
    public = container["command"][container["command"].index("--public-url") + 1]
    assert public == f"https://{ingress['rules'][0]['host']}"
    secrets = [
        doc
        for _, doc in _manifests(directory / "secret.example.yaml")
        if doc["metadata"]["name"] == "pipeboard-webhooks"
    ]
    assert set(secrets[0]["stringData"]) == {
        "PIPEBOARD_WEBHOOK_USER",
        "PIPEBOARD_WEBHOOK_PASSWORD",
        "PIPEBOARD_WEBHOOK_DATABASE_URL",
    }


def test_parallel_sync_pods_cover_every_stream_once(generated: Path, tmp_path: Path) -> None:
    cron_job = _manifests(generated / "k8s" / "sync-parallel.yaml")[0][1]
    job = cron_job["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"]
    script = job["template"]["spec"]["containers"][0]["command"][2]
    # Run each pod's script with a `meltano` that records its arguments and stream selection.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    recorder = fake_bin / "meltano"
    recorder.write_text(
        '#!/bin/sh\necho "$TAP_PIPEDRIVE__SELECT_FILTER|$MELTANO_RUN_STATE_ID_SUFFIX|$*"\n'
    )
    recorder.chmod(0o755)

    def pod(index: int) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{fake_bin}:/usr/bin:/bin",
            "JOB_COMPLETION_INDEX": str(index),
            "MELTANO_ENVIRONMENT": "prod",
        }
        return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)

    selected: list[str] = []
    excluded: list[str] = []
    groups = []
    for index in range(job["completions"]):
        result = pod(index)
        assert result.returncode == 0, result.stderr
        selection, group, args = result.stdout.strip().split("|")
        patterns = json.loads(selection)
        # The state ID suffix is a variable, which the plugins see too (their metrics group).
        assert group
        assert args == "--environment=prod run tap-pipedrive target-pipeboard-postgres"
        groups.append(group)
        for pattern in patterns:
            (excluded if pattern.startswith("!") else selected).append(pattern.lstrip("!"))
    assert len(set(groups)) == len(groups)
    assert groups[0] == "deals"
    assert groups[-1] == "rest"
    # No stream is read by two pods; the rest pod reads everything the others do not.
    assert len(selected) == len(set(selected))
    assert sorted(excluded) == sorted(selected)
    assert {"deals", "deal_products", "persons"} <= set(selected)
    out_of_range = pod(job["completions"])
    assert out_of_range.returncode == 2
    assert "no stream group" in out_of_range.stderr


def _prefect_flow(source: str) -> dict:
    """Module constants, the @flow and @task decorators and the step command of a generated
    Prefect flow, read from its source."""
    tree = ast.parse(source)
    constants: dict = {}
    decorators: dict[str, dict] = {}
    command = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in {"SCHEDULE_ENV", "STEPS"}:
                constants[name] = ast.literal_eval(node.value)
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name):
                    decorators[decorator.func.id] = {
                        "function": node.name,
                        **{kw.arg: ast.literal_eval(kw.value) for kw in decorator.keywords},
                    }
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "subprocess.run"
            and isinstance(node.args[0], ast.List)
        ):
            command = ast.unparse(node.args[0])
    return {**constants, "decorators": decorators, "command": command}


def _state_id_functions(source: str, environment: str, schedule_env: dict) -> dict:
    """The generated ``state_id`` and ``concurrency_limit_name``, executed on their own (Prefect
    is not installed in the test environment)."""
    tree = ast.parse(source)
    functions = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name in {"state_id", "concurrency_limit_name"}
    ]
    namespace: dict = {"os": os, "re": __import__("re")}
    namespace.update({"ENVIRONMENT": environment, "SCHEDULE_ENV": schedule_env})
    exec(compile(ast.Module(body=functions, type_ignores=[]), "flow", "exec"), namespace)
    return namespace


def test_one_prefect_flow_and_deployment_per_schedule(
    schedules_json: Path, generated: Path
) -> None:
    schedules = json.loads(schedules_json.read_text())["schedules"]["job"]
    prefect = generated / "prefect"
    document = yaml.safe_load((prefect / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in document["deployments"]}
    assert sorted(deployments) == sorted(s["name"] for s in schedules)
    assert sorted(p.name for p in (prefect / "flows").glob("*.py")) == sorted(
        f"meltano_{s['name']}.py" for s in schedules
    )
    for schedule in schedules:
        deployment = deployments[schedule["name"]]
        assert deployment["schedules"] == [
            {"cron": schedule["cron_interval"], "timezone": "UTC", "active": True}
        ]
        assert deployment["concurrency_limit"] == 1
        assert f"job:{schedule['job']['name']}" in deployment["tags"]
        assert deployment["work_pool"] == {"name": "pipeboard"}
        path, function = deployment["entrypoint"].split(":")
        source = (prefect / path).read_text()
        compile(source, path, "exec")
        flow = _prefect_flow(source)
        assert flow["decorators"]["flow"]["function"] == function
        assert flow["decorators"]["flow"]["name"] == f"meltano_{schedule['name']}"
        assert flow["decorators"]["task"]["retries"] == 1
        assert flow["decorators"]["task"]["retry_delay_seconds"] == 300
        steps = [t if isinstance(t, str) else " ".join(t) for t in schedule["job"]["tasks"]]
        assert list(flow["STEPS"]) == steps
        assert flow["SCHEDULE_ENV"] == schedule["env"]
        assert flow["command"] == (
            "['meltano', f'--environment={ENVIRONMENT}', 'run', *step.split()]"
        )
        # Every step runs under the global concurrency limit of its state ID.
        assert "with concurrency(name, occupy=1, strict=True):" in source
        assert "upsert_global_concurrency_limit_by_name(name, 1)" in source


def test_prefect_steps_are_serialised_per_meltano_state_id(generated: Path) -> None:
    source = (generated / "prefect" / "flows" / "meltano_both-hourly.py").read_text()
    assert _prefect_flow(source)["STEPS"] == (
        "tap-pipedrive target-pipeboard-postgres",
        "tap-pipedrive--reconcile target-pipeboard-postgres",
    )
    functions = _state_id_functions(source, "prod", {})
    assert functions["state_id"]("tap-pipedrive target-pipeboard-postgres") == (
        "prod:tap-pipedrive-to-target-pipeboard-postgres"
    )
    assert functions["state_id"]("tap-pipedrive--reconcile target-pipeboard-postgres") == (
        "prod:tap-pipedrive--reconcile-to-target-pipeboard-postgres"
    )
    assert functions["concurrency_limit_name"]("tap-pipedrive target-pipeboard-postgres") == (
        "meltano-state-prod-tap-pipedrive-to-target-pipeboard-postgres"
    )
    suffixed = _state_id_functions(source, "prod", {"MELTANO_RUN_STATE_ID_SUFFIX": "deals"})
    assert suffixed["state_id"]("tap-pipedrive target-pipeboard-postgres") == (
        "prod:tap-pipedrive-to-target-pipeboard-postgres:deals"
    )


def test_check_fails_when_a_prefect_deployment_is_stale(
    generated: Path, schedules_json: Path
) -> None:
    stale = generated / "prefect" / "prefect.yaml"
    original = stale.read_text()
    stale.write_text(original.replace("concurrency_limit: 1", "concurrency_limit: 2", 1))
    try:
        result = _run(
            [
                sys.executable,
                str(GENERATE),
                "--check",
                "--input",
                str(schedules_json),
                "--airflow-out",
                str(generated / "dags"),
                "--kubernetes-out",
                str(generated / "k8s"),
                "--cron-out",
                str(generated / "cron"),
                "--prefect-out",
                str(generated / "prefect"),
            ],
            cwd=ROOT,
        )
    finally:
        stale.write_text(original)
    assert result.returncode == 1
    assert "stale" in result.stdout
