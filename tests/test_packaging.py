"""A plain (non-editable) install carries everything a run reads: the SQL rules, the catalog's
view definitions and the report template go into the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_holds_the_sql_rules_and_the_template(tmp_path: Path) -> None:
    tree = tmp_path / "tree"  # built from a copy: the build writes next to its sources
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("photo_curate", "tasks", "flows", "sql"):
        shutil.copytree(ROOT / part, tree / part, ignore=skip)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / part, tree / part)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("photo_curate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for rule in sorted((ROOT / "sql").rglob("*.sql")):
        assert f"photo_curate/sql/{rule.relative_to(ROOT / 'sql')}" in names, rule.name
    assert "photo_curate/templates/report.html.j2" in names
    assert {"flows/curate.py", "tasks/photos.py", "photo_curate/cli.py"} <= names
