"""The SDK's standard target test suite, against real Postgres, each test in its own schema.

All of `singer_sdk.testing`'s target tests run: its default suite, plus
`TargetRecordMissingRequiredProperty`, which the SDK defines but leaves out of that suite. By
default this target does not validate records against their JSON schema (`validate_records`
is off for speed), so a record lacking a `required` property that is not a key is loaded with
NULL there, which is what that test expects (no error); with `validate_records: true` it is
refused instead. test_target_paths.py checks both, and what landed.

The one exclusion:
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
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import TargetRecordMissingRequiredProperty
from target_pipeboard_postgres.target import TargetPipeboardPostgres

_OUTSIDE_THE_DEFAULT_SUITE = SingerTestSuite(
    kind="target", tests=[TargetRecordMissingRequiredProperty]
)

_StandardTests = get_target_test_class(
    TargetPipeboardPostgres,
    config={"database_url": "postgresql://placeholder/replaced-by-the-runner-fixture"},
    custom_suites=[_OUTSIDE_THE_DEFAULT_SUITE],
)


class TestTargetPipeboardPostgresStandard(_StandardTests):  # type: ignore[misc,valid-type]
    """Every standard target test, run against the test session's Postgres."""

    @pytest.fixture
    def runner(self, target_config: dict[str, Any]) -> TargetTestRunner:
        return TargetTestRunner(target_class=TargetPipeboardPostgres, config=target_config)
