"""The `curate` command as a user runs it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CURATE = Path(sys.executable).parent / "curate"


def curate(*args: str, home: Path, **kw) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CURATE_HOME=str(home))
    return subprocess.run(
        [str(CURATE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
        **kw,
    )


def _one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "/no/such/folder"], "no such folder"),
        (["run", "__FILE__"], "is a file"),
        (["run", "__DIR__", "--config", "__BADCFG__"], "rules.dark_p99"),
        (["run", "__DIR__", "--config", "/no/such.yaml"], "config file not found"),
        (["run"], "required"),
        (["frobnicate"], "invalid choice"),
        (["sql", "SELECT 1"], "no catalog"),
        (["report"], "no runs"),
        (["undo", "nope"], "no run nope"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    f = tmp_path / "photo.jpg"
    f.write_bytes(b"x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  dark_p99: very dark\n")
    subs = {"__FILE__": str(f), "__DIR__": str(tmp_path), "__BADCFG__": str(bad)}
    p = curate(*[subs.get(a, a) for a in args], home=tmp_path / "home")
    assert p.returncode == 2, p.stderr
    assert fragment in _one_line_error(p)


@pytest.mark.slow
def test_run_sql_history_report(collection: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    p = curate("run", str(collection), home=home)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "duplicates" in p.stdout and "run id:" in p.stdout
    run_id = p.stdout.strip().split()[-1]
    assert (home / "reports" / run_id / "index.html").exists()
    q = curate("sql", "SELECT kind, count(*) AS n FROM findings GROUP BY kind ORDER BY kind",
               "--format", "json", home=home)  # fmt: skip
    kinds = {r["kind"]: r["n"] for r in json.loads(q.stdout)}
    assert kinds["invalid"] == 3 and kinds["duplicate"] > 10
    bad = curate("sql", "SELECT * FROM no_such_table", home=home)
    assert bad.returncode == 2 and "no_such_table" in _one_line_error(bad)
    h = curate("history", home=home)
    assert run_id in h.stdout and "completed" in h.stdout
    r = curate("report", run_id, home=home)
    assert r.returncode == 0 and r.stdout.strip().endswith("index.html")
    csv_out = curate("sql", "SELECT path FROM images WHERE NOT is_valid ORDER BY path",
                     "--format", "csv", home=home).stdout  # fmt: skip
    assert csv_out.splitlines()[0] == "path" and "Downloads/empty.jpg" in csv_out
