"""The SQL rules: thresholds only as named parameters, each bound from the config."""

from __future__ import annotations

import re

from photo_curate.config import CurateConfig
from photo_curate.rules import SQL_DIR, rule_params
from tasks.findings import rule_parameters


def test_every_rule_parameter_comes_from_the_config() -> None:
    params = rule_parameters(CurateConfig(), "run")
    for path in sorted(SQL_DIR.glob("*.sql")):
        wanted = rule_params(path.stem)
        assert wanted <= params.keys(), (path.name, wanted - params.keys())


def test_no_rule_is_a_format_template() -> None:
    for path in SQL_DIR.glob("*.sql"):
        text = path.read_text()
        assert not re.search(r"\{[a-z_]*\}|%\([a-z_]+\)s", text), path.name


def test_every_rule_says_why_in_a_comment() -> None:
    for path in SQL_DIR.glob("*.sql"):
        assert path.read_text().startswith("-- "), path.name
