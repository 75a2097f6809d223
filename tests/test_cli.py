"""The `curate` command as a user runs it: exit codes, one-line errors, no tracebacks, the
checks before start-up, the questions before a permanent delete, and the small verbs."""

from __future__ import annotations

import json
import os
import pty
import random
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import tree_digest

CURATE = Path(sys.executable).parent / "curate"


def curate(*args: str, home: Path, env: dict[str, str] | None = None, **kw):
    env = dict(env or os.environ, CURATE_HOME=str(home))
    return subprocess.run(
        [str(CURATE), *args], capture_output=True, text=True, env=env, timeout=600,
        check=False, **kw,
    )  # fmt: skip


def _one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "/no/such/folder"], "no such folder"),
        (["run", "__IMAGE__"], "is a file (JPEG image), not a folder"),
        (["run", "__NOTES__"], "neither a folder, an archive nor a URL manifest"),
        (["run", "__DIR__", "--config", "__BADCFG__"], "rules.dark_p99"),
        (["run", "__DIR__", "--config", "__BROKEN__"], "not valid yaml: line 3, column 15:"),
        (["run", "__DIR__", "--config", "/no/such.yaml"], "config file not found"),
        (["run", "__DIR__", "--home", "/proc/x"], "--home /proc/x: cannot be created"),
        (["run", "__DIR__", "--home", "__IMAGE__"], "exists and is not a folder"),
        (["run", "__DIR__", "--home", "__IMAGE__/home"], "exists and is not a folder"),
        (["run"], "required"),
        (["frobnicate"], "invalid choice"),
        (["sql", "SELECT 1"], "no catalog"),
        (["report"], "no runs"),
        (["apply"], "no runs"),
        (["undo", "nope"], "no run nope"),
        (["undo"], "has moved files that are still away"),
    ],
)
def test_user_mistakes_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64)
    notes = tmp_path / "notes.txt"
    notes.write_text("buy milk\nhttps://example.com/a.jpg\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  dark_p99: very dark\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  dark_p99: 40\n   bright_mean: 3\n")
    subs = {"__IMAGE__": str(image), "__NOTES__": str(notes), "__DIR__": str(tmp_path),
            "__BADCFG__": str(bad), "__BROKEN__": str(broken)}  # fmt: skip
    before = sorted(p.name for p in tmp_path.iterdir())
    p = curate(*[subs.get(a, a).replace("__IMAGE__", str(image)) for a in args],
               home=tmp_path / "home")  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert fragment in _one_line_error(p)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no HOME, no downloads


def test_checks_come_before_prefect_and_a_server(tmp_path: Path) -> None:
    """Every mistake a run can be told is told before Prefect, pyarrow or DuckDB is imported
    (so in well under a second, whatever the machine), PREFECT_HOME included."""
    script = (
        "import sys; from photo_curate.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "print(rc, sorted(m for m in ('prefect', 'pyarrow', 'duckdb') if m in sys.modules))\n"
    )
    notes = tmp_path / "notes.txt"
    notes.write_text("just words\n")
    cases = [
        (["run", str(tmp_path), "--home", "/proc/x"], {}, "--home /proc/x: cannot be created"),
        (["run", str(notes), "--home", str(tmp_path / "h")], {}, "neither a folder"),
        (["run", str(tmp_path), "--home", str(tmp_path / "h")], {"PREFECT_HOME": "/proc/y"},
         "PREFECT_HOME /proc/y: cannot be created"),
    ]  # fmt: skip
    for args, extra, fragment in cases:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        p = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                           text=True, env={**env, **extra}, timeout=120, check=False)  # fmt: skip
        assert p.stdout.strip() == "2 []", (args, p.stdout, p.stderr)
        assert fragment in _one_line_error(p), args
        if extra:
            assert "set PREFECT_HOME to a writable folder" in p.stderr
    assert not (tmp_path / "h").exists()  # a HOME made to test PREFECT_HOME is taken back


def test_unwritable_home_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """As root, permissions stop nobody: the command runs without the capabilities that
    bypass them (setpriv), as an ordinary user would."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's DAC capabilities")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--"]
    try:
        cases = [(locked, "not writable (Permission denied)"),
                 (locked / "home", "cannot be created (Permission denied")]  # fmt: skip
        for home, fragment in cases:
            cmd = [*drop, str(CURATE), "run", str(tmp_path), "--home", str(home)]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
            assert p.returncode == 2, p.stderr
            assert fragment in _one_line_error(p)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_version_and_help_for_every_option() -> None:
    from photo_curate import __version__
    from photo_curate.cli import build_parser

    p = subprocess.run([str(CURATE), "--version"], capture_output=True, text=True, check=False)
    assert p.returncode == 0 and p.stdout.strip() == f"curate {__version__}"
    parser = build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb").choices
    missing = [
        f"{verb} {action.dest}"
        for verb, sub in verbs.items()
        for action in sub._actions
        if action.dest != "help" and not (action.help or "").strip()
    ]
    assert missing == []
    assert {"run", "apply", "undo", "history", "server", "sql", "report"} <= set(verbs)


@pytest.mark.slow
def test_run_sql_history_report(collection: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    p = curate("run", str(collection), home=home)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "duplicates" in p.stdout and "run id:" in p.stdout
    assert "MiB)" in p.stdout or "KiB)" in p.stdout  # the plan's size, as a person reads it
    run_id = p.stdout.strip().split()[-1]
    assert (home / "reports" / run_id / "index.html").exists()
    again = curate("run", str(collection), home=home)  # nothing changed: a second run
    assert again.returncode == 0, again.stderr
    q = curate("sql", "SELECT kind, count(*) AS n FROM latest_findings GROUP BY kind ORDER BY kind",
               "--format", "json", home=home)  # fmt: skip
    kinds = {r["kind"]: r["n"] for r in json.loads(q.stdout)}
    assert kinds["invalid"] == 3 and kinds["duplicate"] > 10
    every = curate("sql", "SELECT count(*) AS n FROM findings WHERE kind = 'invalid'",
                   "--format", "json", home=home)  # fmt: skip
    assert json.loads(every.stdout) == [{"n": 6}]  # both runs' rows: why latest_* exist
    bad = curate("sql", "SELECT * FROM no_such_table", home=home)
    assert bad.returncode == 2 and "no_such_table" in _one_line_error(bad)
    h = curate("history", home=home)
    assert run_id in h.stdout and "completed" in h.stdout
    assert h.stdout.splitlines()[0].split()[8:10] == ["applied", "undone"]
    r = curate("report", run_id, home=home)
    assert r.returncode == 0 and r.stdout.strip().endswith("index.html")
    csv_out = curate("sql", "SELECT path FROM latest_images WHERE NOT is_valid ORDER BY path",
                     "--format", "csv", home=home).stdout  # fmt: skip
    assert csv_out.splitlines()[0] == "path" and "Downloads/empty.jpg" in csv_out


@pytest.mark.slow
def test_a_local_server_gone_before_the_flow_began_is_started_again(tmp_path: Path) -> None:
    """The local server died (or hung) between the checks and the flow's first call: the run
    starts it again and goes on, instead of failing with 'Failed to reach API'."""
    from PIL import Image

    from photo_curate import local_server

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = random.Random(7)
    for i in range(4):
        Image.frombytes("RGB", (64, 48), rng.randbytes(64 * 48 * 3)).save(photos / f"{i}.png")
    prefect_home = tmp_path / "prefect"
    dead = "http://127.0.0.1:9/api"  # what `use` had set: port 9, where nothing listens
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_API_URL": dead,
           local_server.LOCAL_URL: dead}  # fmt: skip
    try:
        p = curate("run", str(photos), home=tmp_path / "home", env=env)
        assert p.returncode == 0, p.stderr
        assert "Failed to reach API" not in p.stderr and "Traceback" not in p.stderr
        info = local_server.find(prefect_home)
        assert info is not None and local_server.healthy(info.url)
        theirs = curate("run", str(photos), home=tmp_path / "home2",
                        env={**env, local_server.LOCAL_URL: ""})  # fmt: skip
        assert theirs.returncode == 3 and "Failed to reach API at" in theirs.stderr
    finally:
        local_server.stop(prefect_home)


# ---------------------------------------------------------------- permanent deletes


def _on_a_terminal(args: list[str], answer: str | None, env: dict[str, str]) -> tuple[int, str]:
    """Run `curate` with a real pseudo-terminal as its stdin, stdout and stderr; type
    `answer` when it asks."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec, or leave without running pytest's teardown twice
        try:
            os.execve(str(CURATE), [str(CURATE), *args], env)
        finally:
            os._exit(127)
    out = b""
    answered = False
    while True:
        ready, _, _ = select.select([fd], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        out += chunk
        if answer is not None and not answered and b"Type 'delete' to go on" in out:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


@pytest.fixture
def delete_run(run_flow, collection: Path, tmp_path: Path) -> dict:
    """A dry run whose config chose `actions.action: delete`."""
    cfg = tmp_path / "delete.yaml"
    cfg.write_text("actions:\n  action: delete\n")
    home = tmp_path / "home"
    res = run_flow(collection, home, config={"actions": {"action": "delete"}})
    plan = home / "data" / "plan" / f"{res['run_id']}.parquet"
    rows = duckdb.execute("SELECT path FROM read_parquet($p)", {"p": str(plan)}).fetchall()
    planned = {r[0] for r in rows}
    assert len(planned) > 10
    return {"home": home, "config": cfg, "run_id": res["run_id"], "planned": planned}


@pytest.mark.slow
def test_config_delete_asks_on_a_terminal_and_refuses_without_one(
    delete_run: dict, collection: Path, api_env: dict[str, str]
) -> None:
    """The bug: `actions.action: delete` in the config and `curate apply` without --action
    deleted without asking. Now: no terminal, no delete; on a terminal, only after 'delete'."""
    home, before = delete_run["home"], tree_digest(collection)
    env = dict(api_env, CURATE_HOME=str(home))
    p = subprocess.run([str(CURATE), "apply"], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=600, check=False)  # fmt: skip
    assert p.returncode == 2
    assert "deletes" in _one_line_error(p) and "cannot come back" in p.stderr
    assert tree_digest(collection) == before

    code, out = _on_a_terminal(["apply"], "no", env)
    assert code == 2, out
    assert f"applying run {delete_run['run_id']} deletes {len(delete_run['planned'])} files" in out
    assert "not deleting: nothing was changed" in out
    assert tree_digest(collection) == before

    code, out = _on_a_terminal(["apply"], "delete", env)
    assert code == 0, out
    after = tree_digest(collection)
    assert set(before) - set(after) == delete_run["planned"]
    assert all(after[p] == before[p] for p in after)

    r = subprocess.run([str(CURATE), "run", str(collection), "--apply", "--config",
                        str(delete_run["config"])], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=600, check=False)  # fmt: skip
    assert r.returncode == 2 and "--apply with action delete" in _one_line_error(r)
    runs = sorted((home / "data" / "runs").glob("*.parquet"))
    assert [p.stem for p in runs] == [delete_run["run_id"]]  # refused before anything started


@pytest.mark.slow
def test_a_flow_run_deletes_only_with_yes(run_flow, collection: Path, tmp_path: Path) -> None:
    """A deployment run has no terminal: `apply` with action delete needs the parameter
    `yes`, and without it nothing starts (no run recorded, no file touched)."""
    from photo_curate.errors import UserError

    home, before = tmp_path / "home", tree_digest(collection)
    cfg = {"actions": {"action": "delete"}}
    with pytest.raises(UserError, match="yes: true"):
        run_flow(collection, home, config=cfg, apply=True)
    assert not (home / "data" / "runs").exists() and tree_digest(collection) == before
    res = run_flow(collection, home, config=cfg, apply=True, yes=True)
    assert res["applied"]["done"] > 10
    assert len(tree_digest(collection)) == len(before) - res["applied"]["done"]


@pytest.fixture
def api_env(prefect_server: None) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()), CURATE_DEBUG="")


# ---------------------------------------------------------------- undo, history


@pytest.mark.slow
def test_undo_without_a_run_id_and_history(run_flow, collection: Path, tmp_path: Path,
                                           api_env) -> None:  # fmt: skip
    """`curate undo` undoes the latest applied run after saying which; history shows what
    was applied and undone; no empty folder is left in the quarantine."""
    home, before = tmp_path / "home", tree_digest(collection)
    run_id = run_flow(collection, home)["run_id"]
    env = dict(api_env, CURATE_HOME=str(home))
    a = subprocess.run([str(CURATE), "apply"], capture_output=True, text=True, env=env,
                       timeout=600, check=False)  # fmt: skip
    assert a.returncode == 0, a.stderr
    lines = a.stdout.strip().splitlines()
    assert len(lines) == len(set(lines)), a.stdout  # each line once
    match = re.match(rf"run {run_id}: quarantine: (\d+) done \(\d[\d.]* [KM]iB\)", lines[0])
    assert match, lines[0]
    moved = int(match.group(1))
    assert moved > 10
    assert _history(env)[run_id]["applied"] == str(moved)
    u = subprocess.run([str(CURATE), "undo"], capture_output=True, text=True, env=env,
                       timeout=600, check=False)  # fmt: skip
    assert u.returncode == 0, u.stderr
    assert u.stdout.splitlines()[0] == f"undoing run {run_id}: {moved} files it moved go back"
    assert tree_digest(collection) == before
    assert not (home / "quarantine" / run_id).exists()  # every folder in it was empty
    assert _history(env)[run_id]["undone"] == str(moved)
    again = subprocess.run([str(CURATE), "undo"], capture_output=True, text=True, env=env,
                           timeout=600, check=False)  # fmt: skip
    assert again.returncode == 2 and "still away" in _one_line_error(again)


def _history(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """`curate history` as printed (columns by their header's positions): run id -> cells."""
    out = subprocess.run([str(CURATE), "history"], capture_output=True, text=True, env=env,
                         timeout=600, check=False).stdout.splitlines()  # fmt: skip
    header = out[0]
    names = header.split()
    starts = [header.index(f" {n}") + 1 if i else 0 for i, n in enumerate(names)]
    rows = {}
    for line in out[1:-1]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = dict(zip(names, cells, strict=True))
    return rows
