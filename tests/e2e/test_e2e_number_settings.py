"""Number settings set through environment variables (Kubernetes Secrets and ConfigMaps, .env).

Meltano 4.4 cannot pass a `kind: decimal` setting that comes from an environment variable (it
stops with "Object of type Decimal is not JSON serializable"), so meltano.yml declares number
settings `kind: string` and the plugins convert the strings Meltano hands them.
"""

from __future__ import annotations

import pytest
import requests

# Extended stage (`make test-extended`): number settings through Meltano's environment (about
# 80 s of meltano runs); their coercion is unit-tested in tap-pipedrive/tests/test_tap_units.py.
pytestmark = pytest.mark.extended

NUMBERS_FROM_THE_ENVIRONMENT = {
    "TAP_PIPEDRIVE_MAX_BUDGET_SHARE": "0.5",
    "TAP_PIPEDRIVE_RETRY_INITIAL_WAIT_SECONDS": "0.25",
    "TAP_PIPEDRIVE_RETRY_MAX_WAIT_SECONDS": "2.5",
    "TAP_PIPEDRIVE_BURST_WINDOW_SECONDS": "2",
    "TARGET_PIPEBOARD_POSTGRES_BATCH_WAIT_LIMIT_SECONDS": "5",
}


def test_run_with_fractional_settings_from_the_environment(
    pipedrive_simulator_factory, pipeline_factory
) -> None:
    simulator = pipedrive_simulator_factory(deals=40)
    pipeline = pipeline_factory(simulator)
    pipeline.extra_env.update(NUMBERS_FROM_THE_ENVIRONMENT)

    pipeline.run()

    for entity in ("deals", "persons", "organizations"):
        pipeline.assert_matches_truth(entity)
    assert pipeline.stored_state() is not None


def test_a_budget_share_from_the_environment_is_the_one_the_tap_applies(
    pipedrive_simulator_factory, pipeline_factory
) -> None:
    simulator = pipedrive_simulator_factory(deals=40, plan="essential")
    daily = int(
        requests.get(
            f"{simulator.base_url}/api/v2/pipelines",
            headers={"x-api-token": simulator.api_token},
            timeout=10,
        ).headers["x-daily-ratelimit-token-limit"]
    )
    share = f"{60 / daily:.6f}"  # a cap of about 60 tokens: a few requests, not a full run
    cap = int(daily * float(share))
    pipeline = pipeline_factory(simulator)

    result = pipeline.meltano(
        "run",
        "tap-pipedrive",
        "target-pipeboard-postgres",
        env={
            **NUMBERS_FROM_THE_ENVIRONMENT,
            "TAP_PIPEDRIVE_MAX_BUDGET_SHARE": share,
            "MELTANO_CLI_LOG_LEVEL": "info",
        },
        check=False,
    )

    output = result.stdout + result.stderr
    # The run stopped at the cap the fraction from the environment sets (with the default
    # share, 1.0, it would have read the whole account).
    assert result.returncode != 0, output[-3000:]
    assert f"max_budget_share={float(share)} of the daily budget ({daily}) allows {cap}" in output


def test_a_number_setting_that_is_not_a_number_is_named(
    pipedrive_simulator, pipeline_factory
) -> None:
    pipeline = pipeline_factory(pipedrive_simulator)

    result = pipeline.meltano(
        "run",
        "tap-pipedrive",
        "target-pipeboard-postgres",
        env={"TARGET_PIPEBOARD_POSTGRES_BATCH_WAIT_LIMIT_SECONDS": "5s"},
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Setting `batch_wait_limit_seconds`: expected a number, got '5s'" in output
