"""The prod environment takes its credentials from the environment only: missing ones stop the
run with an error that names the setting, and never fall back to the embedded database."""

from __future__ import annotations

import pytest


def test_prod_without_a_pipedrive_token_names_what_is_missing(
    pipedrive_simulator, pipeline_factory
) -> None:
    pipeline = pipeline_factory(pipedrive_simulator)
    pipeline.extra_env["TAP_PIPEDRIVE_API_TOKEN"] = ""
    result = pipeline.meltano(
        "run",
        "sync",
        environment="prod",
        env={"TAP_PIPEDRIVE_API_URL": pipedrive_simulator.base_url},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "No credentials: set api_token" in output


# Extended stage (`make test-extended`): about 40 s of Meltano start-ups; the
# missing-token case above runs in the suite.
@pytest.mark.extended
def test_prod_without_a_database_names_what_is_missing(
    pipedrive_simulator, pipeline_factory
) -> None:
    pipeline = pipeline_factory(pipedrive_simulator)
    pipeline.extra_env["TARGET_PIPEBOARD_POSTGRES_DATABASE_URL"] = ""
    result = pipeline.meltano(
        "run",
        "sync",
        environment="prod",
        env={"TAP_PIPEDRIVE_API_URL": pipedrive_simulator.base_url},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "No database connection configured" in output
    assert "database_url" in output
    # No silent fallback: nothing was created under the project's .meltano/postgres.
    assert not (pipeline.project / ".meltano" / "postgres").exists()
    # The token given through the environment never shows in the output.
    assert pipedrive_simulator.api_token not in output
