"""Config: typed, validated, one-line errors for bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photo_curate.config import (
    CurateConfig,
    RulesConfig,
    config_from_mapping,
    load_config,
    recorded_config,
)
from photo_curate.errors import UserError


def test_defaults_are_valid_and_round_trip() -> None:
    cfg = CurateConfig()
    assert config_from_mapping(cfg.model_dump(mode="json")) == cfg
    assert cfg.actions.act_on == ["duplicate", "invalid"]
    assert cfg.actions.action == "quarantine"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"rules": {"dark_p99": "dark'; DROP TABLE images; --"}}, "rules.dark_p99"),
        ({"rules": {"duplicate_similarity": 1.5}}, "rules.duplicate_similarity"),
        ({"rules": {"no_such_rule": 1}}, "unknown setting"),
        ({"actions": {"action": "shred"}}, "actions.action"),
        ({"actions": {"act_on": ["dark", "cats"]}}, "actions.act_on"),
        ({"fastdup": {"threads": -1}}, "fastdup.threads"),
        ({"sources": {"max_ratio": 0.5}}, "sources.max_ratio"),
        ({"sources": {"download_workers": "many"}}, "sources.download_workers"),
        ({"sources": {"retry": 2}}, "unknown setting"),
        ({"rules": {"duplicate_similarity": 0.8, "near_duplicate_similarity": 0.9}}, "near"),
    ],
)
def test_bad_values_are_one_line_user_errors(data: dict, fragment: str) -> None:
    with pytest.raises(UserError) as err:
        config_from_mapping(data)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg


def test_yaml_toml_json_files(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("rules:\n  dark_p99: 42\n")
    (tmp_path / "c.toml").write_text("[rules]\ndark_p99 = 43\n")
    (tmp_path / "c.json").write_text('{"rules": {"dark_p99": 44}}')
    assert load_config(tmp_path / "c.yaml").rules.dark_p99 == 42
    assert load_config(tmp_path / "c.toml").rules.dark_p99 == 43
    assert load_config(tmp_path / "c.json").rules.dark_p99 == 44


def test_unparsable_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed\n")
    with pytest.raises(UserError, match="not valid yaml"):
        load_config(bad)
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        load_config(listy)


def test_a_recorded_config_reads_back_typed_with_todays_defaults() -> None:
    """An old run's config: a setting removed since is dropped, one added since takes its
    default, a section that no longer validates takes its defaults; the rest is kept."""
    old = {
        "rules": {"dark_p99": 70, "a_setting_removed_since": 3},
        "actions": {"action": "delete", "protected": ["Keep"]},
        "fastdup": {"threads": "many"},
    }
    got = recorded_config({"config": json.dumps(old)})
    assert got.rules.dark_p99 == 70 and got.rules.dark_mean == RulesConfig().dark_mean
    assert got.actions.action == "delete" and got.actions.protected == ["Keep"]
    assert got.fastdup == CurateConfig().fastdup
    assert recorded_config({"config": CurateConfig().to_json()}) == CurateConfig()
    assert recorded_config({}) == recorded_config({"config": "not json"}) == CurateConfig()
