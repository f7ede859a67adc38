"""The Singer SDK's standard tap tests, against a simulator started for this module."""

from __future__ import annotations

import atexit

import pipedrive_simulator
import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from tap_pipedrive.tap import TapPipedrive

# Two SDK suite warnings are expected and ignored here only: schemas come from Pipedrive's spec,
# which lists optional properties an account may never send (e.g. deals' acv/arr/mrr, notes'
# project/task links), and some object attributes are null in every seeded record
# (activities.location).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Fields in transformed catalog but not in records"),
    pytest.mark.filterwarnings("ignore:No records were available to test"),
]

# The SDK builds its test class at import time from a config dict, so the simulator has to be
# up before the fixtures run; it is stopped when the test process exits.
_SIM = pipedrive_simulator.start(seed=7, deals=120)
atexit.register(_SIM.stop)

_CONFIG = {
    "api_url": _SIM.base_url,
    "api_token": _SIM.api_token,
    "start_date": "2020-01-01T00:00:00Z",
    "retry_initial_wait_seconds": 0.01,
}


def _all_selected() -> dict:
    """The discovered catalog with every stream selected, opt-in ones included."""
    catalog = TapPipedrive(config=_CONFIG, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = True
    return catalog


TestTapPipedrive = get_tap_test_class(
    TapPipedrive,
    config=_CONFIG,
    suite_config=SuiteConfig(max_records_limit=200),
    catalog=_all_selected(),
)
