"""The SQL rules in `sql/`: one named rule per file, thresholds bound as named parameters.

A rule is plain SQL that any DuckDB client can read; values from the config are only ever
passed as `$name` parameters, never formatted into the text.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

_HERE = Path(__file__).resolve().parent
# the source tree's sql/, or the copy a wheel installs inside the package
SQL_DIR = next((d for d in (_HERE.parent / "sql", _HERE / "sql") if d.is_dir()), _HERE / "sql")
_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


@cache
def rule_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def rule_params(name: str) -> set[str]:
    """The named parameters a rule uses (comments excluded)."""
    body = "\n".join(line.split("--", 1)[0] for line in rule_sql(name).splitlines())
    return set(_PARAM.findall(body))


def params_for(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Exactly the parameters rule `name` names (DuckDB rejects unused ones)."""
    wanted = rule_params(name)
    missing = wanted - params.keys()
    if missing:
        raise KeyError(f"rule {name} needs parameters {sorted(missing)}")
    return {k: params[k] for k in wanted}


def rule_as_table(
    con: duckdb.DuckDBPyConnection, table: str, name: str, params: dict[str, Any]
) -> None:
    """Materialise a rule's result as a temp table (for the rules that build on it)."""
    con.execute(
        f'CREATE OR REPLACE TEMP TABLE "{table}" AS {rule_sql(name)}', params_for(name, params)
    )
