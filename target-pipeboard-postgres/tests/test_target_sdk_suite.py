"""The SDK's standard target test suite, against real Postgres, each test in its own schema.

All of `singer_sdk.testing`'s target tests run. The one exclusion:
- `TargetMultipleStateMessages` is left out of the SDK's own suite (a TODO in
  `singer_sdk/testing/suites.py`) and asserts one particular drain schedule (states 1, 3 and 5
  of 5). This target emits a STATE as soon as every record before it is committed, which is
  tested precisely in test_target_state.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.runners import TargetTestRunner
from target_pipeboard_postgres.target import TargetPipeboardPostgres

_StandardTests = get_target_test_class(
    TargetPipeboardPostgres,
    config={"database_url": "postgresql://placeholder/replaced-by-the-runner-fixture"},
)


class TestTargetPipeboardPostgresStandard(_StandardTests):  # type: ignore[misc,valid-type]
    """Every standard target test, run against the test session's Postgres."""

    @pytest.fixture
    def runner(self, target_config: dict[str, Any]) -> TargetTestRunner:
        return TargetTestRunner(target_class=TargetPipeboardPostgres, config=target_config)
