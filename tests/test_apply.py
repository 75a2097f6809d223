"""Apply and undo on real collections: quarantine keeps structure, keepers and protected
folders are never touched, changed files are skipped, undo restores byte for byte, and a
`kill -9` at any point loses nothing."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.locking import Busy, exclusive
from tasks.apply import apply_plan, recover, undo_run
from tests.conftest import curate_cli, run_id_of, tree_digest

pytestmark = pytest.mark.slow
CURATE = Path(sys.executable).parent / "curate"


def _findings(home: Home, run_id: str) -> list[tuple]:
    con = duckdb.connect()
    return con.execute(
        "SELECT path, kind, is_keeper, action FROM read_parquet($p)",
        {"p": str(home.table_file("findings", run_id))},
    ).fetchall()


def _planned(home: Home, run_id: str) -> set[str]:
    return {p for p, _k, _kp, a in _findings(home, run_id) if a == "quarantine"}


def test_apply_then_undo_gives_back_the_same_tree(run_flow, collection: Path, tmp_path: Path):
    before = tree_digest(collection)
    home = Home(tmp_path / "home")
    res = run_flow(collection, home.root)
    run_id = res["run_id"]
    planned = _planned(home, run_id)
    keepers = {p for p, k, kp, _a in _findings(home, run_id) if kp}
    assert planned and keepers and not planned & keepers
    out = apply_plan(home, run_id)
    assert out.success and out.done == len(planned) and out.failed == 0
    after = tree_digest(collection)
    assert set(after) == set(before) - planned
    for path in planned:  # structure kept, content identical
        moved = home.quarantine_dir(run_id) / path
        assert tree_digest(moved.parent)[moved.name] == before[path]
    for k in keepers:
        assert after[k] == before[k]
    again = apply_plan(home, run_id)  # idempotent
    assert again.done == 0 and again.already == len(planned)
    undo = undo_run(home, run_id)
    assert undo.restored == len(planned) and undo.failed == 0
    assert tree_digest(collection) == before


def test_changed_vanished_and_keeperless_files_are_skipped(
    run_flow, collection: Path, tmp_path: Path
):
    home = Home(tmp_path / "home")
    run_id = run_flow(collection, home.root)["run_id"]
    rows = _findings(home, run_id)
    dup_copies = sorted(p for p, k, kp, a in rows if k == "duplicate" and a == "quarantine")
    changed, vanished = dup_copies[0], dup_copies[1]
    with open(collection / changed, "ab") as fh:
        fh.write(b"edited")
    (collection / vanished).unlink()
    # remove the keeper of some other group: its copies must stay
    con = duckdb.connect()
    keeper, group = con.execute(
        "SELECT path, group_id FROM read_parquet($p) WHERE kind='duplicate' AND is_keeper "
        "AND group_id NOT IN (SELECT group_id FROM read_parquet($p) WHERE path IN ($a, $b)) "
        "LIMIT 1",
        {"p": str(home.table_file("findings", run_id)), "a": changed, "b": vanished},
    ).fetchall()[0]
    orphans = {
        r[0] for r in con.execute(
            "SELECT path FROM read_parquet($p) WHERE group_id = $g AND NOT is_keeper",
            {"p": str(home.table_file("findings", run_id)), "g": group},
        ).fetchall()
    }  # fmt: skip
    (collection / keeper).unlink()
    out = apply_plan(home, run_id)
    skipped = "\n".join(out.skipped_examples)
    assert f"{changed}: changed since the run" in skipped
    assert f"{vanished}: vanished since the run" in skipped
    for o in orphans:
        assert (collection / o).exists(), o
        assert f"{o}: its keeper {keeper}" in skipped
    assert (collection / changed).exists()


def test_protected_folder_is_never_touched(run_flow, collection: Path, tmp_path: Path):
    home = Home(tmp_path / "home")
    before = tree_digest(collection)
    cfg = {"actions": {"protected": ["Backup", "Downloads/*.jpg"]}}
    run_id = run_flow(collection, home.root, config=cfg)["run_id"]
    apply_plan(home, run_id)
    after = tree_digest(collection)
    for path, digest in before.items():
        if path.startswith("Backup/") or (path.startswith("Downloads/") and path.endswith(".jpg")):
            assert after.get(path) == digest, path


def test_undo_refuses_to_overwrite_a_new_file(run_flow, collection: Path, tmp_path: Path):
    home = Home(tmp_path / "home")
    run_id = run_flow(collection, home.root)["run_id"]
    apply_plan(home, run_id)
    some = sorted(_planned(home, run_id))[0]
    (collection / some).write_bytes(b"a new file with the old name")
    res = undo_run(home, run_id)
    assert res.skipped == 1 and (collection / some).read_bytes() == b"a new file with the old name"
    assert (home.quarantine_dir(run_id) / some).exists()


def test_trash_and_delete(run_flow, collection: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    before = tree_digest(collection)
    home = Home(tmp_path / "home")
    run_id = run_flow(collection, home.root)["run_id"]
    planned = _planned(home, run_id)
    out = apply_plan(home, run_id, "trash")
    assert out.done == len(planned) and out.success
    assert len(list((tmp_path / "xdg" / "Trash" / "files").iterdir())) == len(planned)
    assert undo_run(home, run_id).restored == len(planned)
    assert tree_digest(collection) == before
    assert not list((tmp_path / "xdg" / "Trash" / "info").iterdir())
    with pytest.raises(UserError, match="cannot come back"):
        apply_plan(home, run_id, "delete")
    out = apply_plan(home, run_id, "delete", confirm_delete=True)
    assert out.done == len(planned) and out.success
    assert set(tree_digest(collection)) == set(before) - planned
    assert undo_run(home, run_id).deleted_unrecoverable == len(planned)


def test_second_writer_is_refused(tmp_path: Path):
    home = Home(tmp_path / "home").ensure()
    with (
        exclusive(home.lock_file, "home"),
        pytest.raises(Busy, match="busy"),
        exclusive(home.lock_file, "home"),
    ):
        pass


def test_cli_delete_needs_yes(run_flow, collection: Path, tmp_path: Path):
    home = tmp_path / "home"
    run_flow(collection, home)
    p = subprocess.run(
        [str(CURATE), "apply", "--action", "delete", "--home", str(home)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert p.returncode == 2 and "cannot come back" in p.stderr
    assert "Traceback" not in p.stderr


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_9_during_apply_loses_nothing(run_flow, sample, tmp_path: Path):
    """20 trials: kill the apply process at a random journal position, then resume or undo."""
    photos, _truth = sample
    base = tmp_path / "base"
    shutil.copytree(photos, base, copy_function=shutil.copy2)
    extra = base / "Many copies"
    extra.mkdir()
    seed_file = next(base.glob("DCIM/*/*.jpg"))
    for i in range(240):  # a plan long enough to be killed in the middle of
        shutil.copy2(seed_file, extra / f"copy {i:03d}.jpg")
    home_base = tmp_path / "home-base"
    run_id = run_flow(base, home_base)["run_id"]
    original = tree_digest(base)
    n_planned = len(_planned(Home(home_base), run_id))
    assert n_planned > 240
    rng = random.Random(int(os.environ.get("CURATE_KILL_SEED", "1234")))
    outcomes = {"resumed": 0, "undone": 0}
    for trial in range(20):
        src = tmp_path / f"t{trial}" / "src"
        home = tmp_path / f"t{trial}" / "home"
        shutil.copytree(base, src, copy_function=shutil.copy2)
        shutil.copytree(home_base, home)
        _retarget(Home(home), run_id, base, src)
        journal = Home(home).table_file("actions", run_id, ".jsonl")
        kill_at = rng.randint(1, 2 * n_planned)  # journal lines: intents + outcomes
        proc = subprocess.Popen(
            [str(CURATE), "apply", run_id, "--home", str(home)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while proc.poll() is None and _count_lines(journal) < kill_at:
            if time.monotonic() > deadline:
                break
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        h = Home(home)
        q = h.quarantine_dir(run_id)
        # a kill between link and unlink leaves one file under two names; the next apply or
        # undo starts with recovery, which settles every dangling intent
        recover(h, run_id, src)
        # never both places, never neither: every file is at its source or in quarantine
        now_src = tree_digest(src)
        now_q = tree_digest(q) if q.exists() else {}
        assert not set(now_src) & set(now_q)
        assert {**now_src, **now_q} == original
        if trial % 2:
            res = apply_plan(h, run_id)  # resume
            assert res.done + res.already == n_planned and res.failed == 0
            assert set(tree_digest(src)) == set(original) - _planned(h, run_id)
            outcomes["resumed"] += 1
        undo = undo_run(h, run_id)
        assert undo.failed == 0
        assert tree_digest(src) == original
        outcomes["undone"] += 1
        shutil.rmtree(tmp_path / f"t{trial}")
    assert outcomes == {"resumed": 10, "undone": 20}


def _retarget(home: Home, run_id: str, old: Path, new: Path) -> None:
    """Point a copied run at the copied SOURCE (the run row records its source path)."""
    from photo_curate.runs import read_run, write_run

    row = read_run(home, run_id)
    assert row is not None and row["source"] == str(old)
    row["source"] = str(new)
    write_run(home, row)


def test_keep_strategies_and_preferred_folders(run_flow, collection: Path, tmp_path: Path):
    def keepers(cfg: dict) -> dict[str, str]:
        home = Home(tmp_path / f"home-{len(list(tmp_path.iterdir()))}")
        run_id = run_flow(collection, home.root, config=cfg)["run_id"]
        con = duckdb.connect()
        return dict(
            con.execute(
                "SELECT group_id, path FROM read_parquet($p) WHERE kind='duplicate' AND is_keeper",
                {"p": str(home.table_file("findings", run_id))},
            ).fetchall()
        )

    best = keepers({})
    assert all(p.startswith("DCIM/") for p in best.values())  # the originals
    preferred = keepers({"actions": {"prefer_folders": ["Backup"]}})
    assert all(p.startswith("Backup/") for p in preferred.values())
    largest = keepers({"actions": {"keep": "largest"}})
    con = duckdb.connect()
    for path in largest.values():
        size = (collection / path).stat().st_size
        group_sizes = [(collection / p).stat().st_size for p in _group_of(con, tmp_path, path)]
        assert size == max(group_sizes)


def _group_of(con: duckdb.DuckDBPyConnection, tmp_path: Path, path: str) -> list[str]:
    files = sorted(tmp_path.glob("home-*/data/findings/*.parquet"))[-1]
    return [
        r[0]
        for r in con.execute(
            "SELECT path FROM read_parquet($p) WHERE kind='duplicate' AND group_id = "
            "(SELECT group_id FROM read_parquet($p) WHERE kind='duplicate' AND path = $x)",
            {"p": str(files), "x": path},
        ).fetchall()
    ]


def test_run_with_apply_then_undo_from_the_cli(collection: Path, tmp_path: Path):
    """What a user types: `curate run SOURCE --apply`, then `curate undo RUN_ID`."""
    before = tree_digest(collection)
    home = tmp_path / "home"
    p = curate_cli("run", collection, "--apply", "--home", home)
    run_id = run_id_of(p)
    assert "applied:" in p.stdout
    moved = set(tree_digest(home / "quarantine" / run_id))
    assert moved and set(tree_digest(collection)) == set(before) - moved
    report = (home / "reports" / run_id / "index.html").read_text()
    assert "Nothing applied" not in report and "quarantine" in report
    u = curate_cli("undo", run_id, "--home", home)
    assert u.returncode == 0, u.stderr
    assert tree_digest(collection) == before
    hist = subprocess.run(
        [str(CURATE), "sql", "SELECT action, status, count(*) AS n FROM actions "
         "GROUP BY ALL ORDER BY ALL", "--format", "csv", "--home", str(home)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"restore,done,{len(moved)}" in hist and f"quarantine,done,{len(moved)}" in hist


def test_a_run_on_a_source_being_applied_is_refused(run_flow, collection: Path, tmp_path: Path):
    from tasks.apply import source_lock

    with exclusive(source_lock(collection), "SOURCE"), pytest.raises(Busy, match="SOURCE"):
        run_flow(collection, tmp_path / "other-home")
