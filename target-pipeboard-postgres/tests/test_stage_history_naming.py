"""Stage column naming and the ``stage_history`` setting, without a database."""

from __future__ import annotations

import pytest
from target_pipeboard_postgres.identifiers import snake_case
from target_pipeboard_postgres.stage_history import (
    Stage,
    StageHistoryConfigError,
    StageHistorySettings,
    assign_stage_columns,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("Proposal Made", "proposal_made", id="spaces"),
        pytest.param("Demo/Trial  (2 weeks)", "demo_trial_2_weeks", id="punctuation"),
        pytest.param("Négociation", "negociation", id="accents"),
        pytest.param("contractSent", "contract_sent", id="camel"),
        pytest.param("Квалификация", "", id="non-latin"),
    ],
)
def test_snake_case(name, expected):
    assert snake_case(name) == expected


def test_shared_name_across_pipelines_gets_pipeline_suffix():
    stages = [Stage(1, "Won", 10, 1), Stage(2, "Won", 20, 1), Stage(3, "Lost", 10, 2)]
    assert assign_stage_columns(stages, {10: "Sales", 20: "Partner Deals"}, {}) == {
        1: "moved_to_stage_won_sales",
        2: "moved_to_stage_won_partner_deals",
        3: "moved_to_stage_lost",
    }


def test_existing_columns_never_change_and_newcomer_is_suffixed():
    existing = {1: "moved_to_stage_won"}
    stages = [Stage(1, "Won (renamed)", 10, 1), Stage(2, "Won", 20, 1)]
    assert assign_stage_columns(stages, {20: "Partners"}, existing) == {
        2: "moved_to_stage_won_partners"
    }


def test_same_name_twice_in_one_pipeline_and_unnamed_pipeline():
    stages = [Stage(5, "Call", 1, 1), Stage(6, "Call", 1, 2), Stage(7, "Call", 2, 1)]
    columns = assign_stage_columns(stages, {}, {})
    assert columns == {
        5: "moved_to_stage_call_pipeline_1",
        6: "moved_to_stage_call_pipeline_1_6",
        7: "moved_to_stage_call_pipeline_2",
    }


def test_long_names_fit_postgres_limit_and_stay_distinct():
    base = "Waiting for the legal department of the customer to sign the contract"
    stages = [Stage(1, base + " A", 1, 1), Stage(2, base + " B", 1, 2)]
    columns = assign_stage_columns(stages, {}, {})
    assert all(len(c.encode()) <= 63 for c in columns.values())
    assert len(set(columns.values())) == 2


def test_taken_column_is_not_reused():
    columns = assign_stage_columns(
        [Stage(3, "Title", 1, 1)], {}, {}, taken=["moved_to_stage_title"]
    )
    assert columns == {3: "moved_to_stage_title_pipeline_1"}


def test_settings_parse_and_errors():
    assert StageHistorySettings.from_config(None) == StageHistorySettings()
    parsed = StageHistorySettings.from_config({"enabled": "false", "deals_stream": "crm-deals"})
    assert parsed.enabled is False
    assert parsed.deals_stream == "crm-deals"
    with pytest.raises(StageHistoryConfigError, match=r"unknown keys.*deal_stream"):
        StageHistorySettings.from_config({"deal_stream": "x"})
    with pytest.raises(StageHistoryConfigError, match="enabled must be true or false"):
        StageHistorySettings.from_config({"enabled": "yes"})
    with pytest.raises(StageHistoryConfigError, match="changes_stream must be a stream name"):
        StageHistorySettings.from_config({"changes_stream": 3})
    with pytest.raises(StageHistoryConfigError, match="must be an object"):
        StageHistorySettings.from_config("on")  # type: ignore[arg-type]


def test_stage_columns_named_before_the_fitters_were_unified_keep_their_names():
    # Stage columns used to be cut at 54 characters with trailing `_` stripped; the target's one
    # fitter keeps the `_`. Columns already assigned are read back from the mapping, never
    # renamed; only stages seen for the first time get the new form.
    base = "x" * 38 + "_then_a_long_tail_past_the_limit"
    old_style = "moved_to_stage_" + "x" * 38 + "_a7e1c2d3"
    existing = {1: old_style}
    stages = [Stage(1, base, 1, 1), Stage(2, base + " two", 1, 2)]
    new = assign_stage_columns(stages, {}, existing)
    assert 1 not in new
    assert new[2].startswith("moved_to_stage_" + "x" * 38 + "__")
    assert len(new[2].encode()) == 63
    assert new[2] != old_style
