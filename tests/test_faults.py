"""Faults, injected from the outside: `kill -9` of a run at every step, a fastdup child that
crashes or hangs, truncated Parquet files, a full disk while quarantining, a read-only
SOURCE, unreadable files and folders, files that vanish or change between steps. Every time:
a clear error or a clean result, a readable catalog, and no file lost or corrupted."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from photo_curate.errors import UserError
from photo_curate.home import Home
from tests.conftest import tree_digest

pytestmark = pytest.mark.slow
CURATE = Path(sys.executable).parent / "curate"


@pytest.fixture
def api_env(prefect_server: None) -> dict[str, str]:
    """Environment for `curate` child processes: the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    return dict(os.environ, PREFECT_API_URL=str(PREFECT_API_URL.value()), CURATE_DEBUG="")


def _curate(env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CURATE), *args], capture_output=True, text=True, env=env, timeout=600,
        check=False, **kw,
    )  # fmt: skip


def _one_line(p: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in p.stderr + p.stdout
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


def _findings(home: Path, run_id: str) -> set[tuple]:
    con = duckdb.connect()
    return set(
        con.execute(
            "SELECT path, kind, is_keeper, action FROM read_parquet($p)",
            {"p": str(Home(home).table_file("findings", run_id))},
        ).fetchall()
    )


def _catalog_readable(home: Path) -> dict[str, str]:
    """The catalog opens read-only and every view answers; run id -> status."""
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    try:
        for view in ("files", "images", "findings", "plan", "actions", "validations"):
            con.execute(f'SELECT count(*) FROM "{view}"').fetchall()
        return dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    finally:
        con.close()


# ---------------------------------------------------------------- kill -9 at every step


def _step_marker(home: Path, run_id: str | None, step: str) -> bool:
    """True once the run has reached `step`, seen only from the files it writes."""
    if run_id is None:
        return False
    h = Home(home)
    run_dir = h.run_dir(run_id)
    return {
        "ingest": lambda: h.table_file("runs", run_id).exists(),
        "inspect": lambda: any((run_dir / "analysis").glob("*.jpg")),
        "fastdup": (run_dir / "fastdup_spec.json").exists,
        "findings": lambda: h.table_file("pairs", run_id).exists(),
        "report": lambda: (
            h.report_dir(run_id).exists() or h.table_file("validations", run_id).exists()
        ),
    }[step]()


def _new_run_id(home: Path, known: set[str]) -> str | None:
    runs = home / "runs"
    new = sorted(set(os.listdir(runs)) - known) if runs.exists() else []
    return new[-1] if new else None


def _kill_run(env: dict[str, str], source: Path, home: Path, when: str | float) -> str | None:
    """Start `curate run` and SIGKILL its whole process group at a step (or after N s)."""
    known = set(os.listdir(home / "runs")) if (home / "runs").exists() else set()
    proc = subprocess.Popen(
        [str(CURATE), "run", str(source), "--home", str(home)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    t0 = time.monotonic()
    run_id = None
    while proc.poll() is None and time.monotonic() - t0 < 300:
        run_id = run_id or _new_run_id(home, known)
        if (isinstance(when, float) and time.monotonic() - t0 >= when) or (
            isinstance(when, str) and _step_marker(home, run_id, when)
        ):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    with_group_gone(proc.pid)
    return run_id or _new_run_id(home, known)


def with_group_gone(pgid: int) -> None:
    """Wait until no process of the killed group is left (fastdup, decoder workers)."""
    for _ in range(200):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_kill_9_at_every_step_then_the_next_run_is_correct(
    api_env, collection: Path, tmp_path: Path
) -> None:
    before = tree_digest(collection)
    clean_home = tmp_path / "clean"
    p = _curate(api_env, "run", str(collection), "--home", str(clean_home))
    assert p.returncode == 0, p.stderr
    clean_id = p.stdout.strip().split()[-1]
    clean = _findings(clean_home, clean_id)
    seconds = float(
        duckdb.connect(str(clean_home / "catalog.duckdb"), read_only=True)
        .execute("SELECT epoch(finished_at) - epoch(started_at) FROM runs")
        .fetchone()[0]
    )
    rng = random.Random(int(os.environ.get("CURATE_KILL_SEED", "8")))
    plan: list[str | float] = ["ingest", "inspect", "fastdup", "findings", "report"]
    plan.append(round(rng.uniform(0.5, seconds + 3), 2))
    home = tmp_path / "home"
    killed = []
    for when in plan:
        run_id = _kill_run(api_env, collection, home, when)
        if run_id is not None:
            killed.append((when, run_id))
        if (home / "catalog.duckdb").exists():
            _catalog_readable(home)
        assert tree_digest(collection) == before, when  # a dry run never changes SOURCE
    assert len(killed) >= 5
    p = _curate(api_env, "run", str(collection), "--home", str(home))
    assert p.returncode == 0, p.stderr
    final_id = p.stdout.strip().split()[-1]
    statuses = _catalog_readable(home)
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    steps = dict(con.execute("SELECT run_id, step FROM runs").fetchall())
    con.close()
    for when, run_id in killed:
        # killed before its first record: no row; killed after the end: completed
        assert statuses.get(run_id, "interrupted") in ("interrupted", "completed"), when
        if isinstance(when, str):  # marked by the next run, with the step it had reached
            assert statuses[run_id] == "interrupted", (when, statuses)
            reached = {"ingest": {"acquire", "ingest"}, "inspect": {"inspect"},
                       "fastdup": {"fastdup"}, "findings": {"parse", "findings"},
                       "report": {"validate", "report"}}[when]  # fmt: skip
            assert steps[run_id] in reached, (when, steps[run_id])
        if statuses.get(run_id) == "interrupted":  # its analysis copies were cleared
            assert not (Home(home).run_dir(run_id) / "analysis").exists(), when
    assert statuses[final_id] == "completed"
    assert _findings(home, final_id) == clean
    hist = _curate(api_env, "history", "--home", str(home), "--limit", "50")
    assert hist.returncode == 0 and hist.stdout.count("interrupted") >= 5
    assert tree_digest(collection) == before


def _fastdup_children(run_dir: Path) -> Iterator[int]:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if b"photo_curate.fastdup_child" in cmd and cwd == str(run_dir):
            yield int(pid)


def test_fastdup_crashing_twice_fails_the_run_clearly(
    api_env, collection: Path, tmp_path: Path
) -> None:
    """SIGKILL the fastdup child (and its one retry): the run is `failed` with the reason,
    the CLI says so in one line, and the next run is fine."""
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [str(CURATE), "run", str(collection), "--home", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=api_env,
    )  # fmt: skip
    crashed: set[int] = set()
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < 300:
        run_id = _new_run_id(home, set())
        if run_id and (Home(home).run_dir(run_id) / "fastdup_spec.json").exists():
            for pid in _fastdup_children(Home(home).run_dir(run_id)):
                if pid not in crashed:
                    os.kill(pid, signal.SIGKILL)
                    crashed.add(pid)
        time.sleep(0.01)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert "fastdup exited with code -9" in _one_line(p)
    assert len(crashed) == 2  # the first try and its one retry
    run_id = _new_run_id(home, set())
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    status, error = con.execute(
        "SELECT status, error FROM runs WHERE run_id = $r", {"r": run_id}
    ).fetchone()
    assert status == "failed" and "fastdup exited with code -9" in error
    con.close()
    again = _curate(api_env, "run", str(collection), "--home", str(home))
    assert again.returncode == 0, again.stderr


def test_fastdup_hang_is_killed_at_the_timeout(collection: Path, tmp_path: Path) -> None:
    """A real fastdup child that does not finish in time is SIGKILLed with its group and
    reported with the log's path; nothing of it keeps running."""
    from photo_curate.features import FeatureCache
    from photo_curate.inspect_image import InspectOptions
    from tasks.fastdup_run import FastdupFailed, FastdupSpec, run_fastdup
    from tasks.ingest import scan
    from tasks.inspect import inspect_all

    home = Home(tmp_path / "home").ensure()
    cache = FeatureCache(tmp_path / "features")
    ing = scan(collection, home, "r1")
    assert ing.n_images > 50
    inspect_all(collection, home, "r1", 1, InspectOptions())
    spec = FastdupSpec(threads=2, timeout_seconds=1)
    t0 = time.monotonic()
    with pytest.raises(FastdupFailed, match=r"did not finish within 1 s and was killed \(log: "):
        run_fastdup(home, "r1", spec, cache)
    assert time.monotonic() - t0 < 30
    assert not list(_fastdup_children(home.run_dir("r1")))
    ok = run_fastdup(home, "r1", FastdupSpec(2, 600), cache)  # a fresh work dir works
    assert ok.status == "ran" and ok.n_input > 50


# ---------------------------------------------------------------- corrupt Parquet


def test_truncated_parquet_files_are_moved_aside(
    api_env, run_flow, collection: Path, tmp_path
) -> None:
    home = tmp_path / "home"
    first = run_flow(collection, home)["run_id"]
    h = Home(home)
    images = h.table_file("images", first)
    data = images.read_bytes()
    images.write_bytes(data[: len(data) // 2])  # a half-written file
    runs_file = h.table_file("runs", first)
    h.table_file("runs", "20000101T000000-dead").write_bytes(runs_file.read_bytes()[:100])
    h.table_file("findings", "20000101T000000-dead").write_bytes(b"")
    second = run_flow(collection, home)["run_id"]
    aside = sorted(str(x.relative_to(h.data)) for x in (h.data / ".corrupt").rglob("*.parquet"))
    assert aside == [
        ".corrupt/findings/20000101T000000-dead.parquet",
        f".corrupt/images/{first}.parquet",
        ".corrupt/runs/20000101T000000-dead.parquet",
    ]
    assert (h.data / ".corrupt" / "images" / f"{first}.parquet").read_bytes() == data[
        : len(data) // 2
    ]  # kept as it was, for whoever wants to look
    statuses = _catalog_readable(home)
    assert statuses == {first: "completed", second: "completed"}
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    per_run = dict(con.execute("SELECT run_id, count(*) FROM images GROUP BY 1").fetchall())
    candidates = con.execute(
        "SELECT count(*) FROM files WHERE run_id = $r AND status = 'image'", {"r": second}
    ).fetchone()[0]
    assert per_run == {second: candidates} and candidates > 50
    h_out = _curate(api_env, "history", "--home", str(home))
    assert h_out.returncode == 0 and first in h_out.stdout
    # a file truncated after the last rebuild: `curate sql` and `history` still answer
    data = h.table_file("files", second).read_bytes()
    h.table_file("files", second).write_bytes(data[:-10])
    from photo_curate import catalog

    catalog.rebuild(h)
    assert _catalog_readable(home)


# ---------------------------------------------------------------- disks


@pytest.fixture
def mount_tmpfs() -> Iterator[object]:
    """mount(size, at): a small tmpfs, unmounted afterwards (needs root / CAP_SYS_ADMIN)."""
    mounted: list[Path] = []

    def mount(at: Path, size: str, readonly: bool = False) -> None:
        at.mkdir(parents=True, exist_ok=True)
        opts = f"size={size}" + (",ro" if readonly else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(at)],
                           capture_output=True, check=False)  # fmt: skip
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(at)

    yield mount
    for at in reversed(mounted):
        subprocess.run(["umount", "-l", str(at)], check=False)


def test_full_disk_while_quarantining(api_env, run_flow, collection, tmp_path, mount_tmpfs):
    """HOME's quarantine on a 1 MiB file system, SOURCE elsewhere: copies are verified
    cross-device moves; when the disk fills the apply stops with one clear line, the journal
    has an outcome for every intent, no half copy is left, and undo restores everything."""
    from photo_curate.journal import last_states

    home = Home(tmp_path / "home")
    run_id = run_flow(collection, home.root)["run_id"]
    before = tree_digest(collection)
    mount_tmpfs(home.root / "quarantine", "1m")
    planned_bytes = duckdb.execute(
        "SELECT sum(size_bytes) FROM read_parquet($p)", {"p": str(home.table_file("plan", run_id))}
    ).fetchone()[0]
    assert planned_bytes > 2 * 1024**2  # the disk must fill part-way
    p = _curate(api_env, "apply", run_id, "--home", str(home.root))
    assert p.returncode == 3, p.stdout + p.stderr
    line = _one_line(p)
    assert "apply stopped: no space left" in line and f"curate apply {run_id}" in line
    states = last_states(home.table_file("actions", run_id, ".jsonl"))
    assert states and not [e for e in states.values() if e.status == "intent"]
    done = {e.path for e in states.values() if e.status == "done"}
    assert done and [e for e in states.values() if e.status == "failed"]
    q = home.quarantine_dir(run_id)
    in_q = tree_digest(q)
    assert not [f for f in os.listdir(q) if f.endswith(".curate-part")]
    assert not list(q.rglob(".*.curate-part"))
    assert set(in_q) == done  # only finished copies are there
    now = tree_digest(collection)
    assert not set(now) & set(in_q) and {**now, **in_q} == before  # each file exactly once
    assert _catalog_readable(home.root)[run_id] == "completed"  # resumable
    u = _curate(api_env, "undo", run_id, "--home", str(home.root))
    assert u.returncode == 0, u.stderr
    assert tree_digest(collection) == before


def test_read_only_source(api_env, run_flow, collection, tmp_path, mount_tmpfs) -> None:
    """A dry run works; apply and `run --apply` refuse with one line; nothing changes."""
    src = tmp_path / "ro"
    mount_tmpfs(src, "64m")
    shutil.copytree(collection, src / "photos", copy_function=shutil.copy2, dirs_exist_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(src)], check=True)
    photos = src / "photos"
    before = tree_digest(photos)
    home = tmp_path / "home"
    res = run_flow(photos, home)
    assert res["status"] == "completed"
    run_id = res["run_id"]
    a = _curate(api_env, "apply", run_id, "--home", str(home))
    assert a.returncode == 2 and "read-only file system" in _one_line(a)
    r = _curate(api_env, "run", str(photos), "--apply", "--home", str(home))
    assert r.returncode == 2 and "read-only file system" in _one_line(r)
    assert tree_digest(photos) == before
    assert not (home / "quarantine").exists() or not any((home / "quarantine").rglob("*.jpg"))


def test_a_move_that_cannot_unlink_leaves_no_copy(tmp_path: Path, mount_tmpfs) -> None:
    from tasks.apply import move_no_clobber, sha256_file

    ro = tmp_path / "ro"
    mount_tmpfs(ro, "1m")
    subprocess.run(["mount", "-o", "remount,rw", str(ro)], check=True)
    (ro / "a.jpg").write_bytes(b"photo bytes")
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    dst = tmp_path / "q" / "a.jpg"
    with pytest.raises(OSError, match="Read-only file system"):
        move_no_clobber(ro / "a.jpg", dst, sha256_file(ro / "a.jpg"))
    assert not dst.exists() and not list(dst.parent.iterdir())
    assert (ro / "a.jpg").read_bytes() == b"photo bytes"


# ---------------------------------------------------------------- unreadable, vanishing


def test_unreadable_files_and_folders(api_env, collection: Path, tmp_path: Path) -> None:
    """As root, chmod stops nobody: the run is started without the capabilities that bypass
    permissions (setpriv), as an ordinary user would be."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's DAC capabilities")
    locked = collection / "Locked"
    locked.mkdir()
    shutil.copy2(next(collection.glob("DCIM/*/*.jpg")), locked / "inside.jpg")
    secret = collection / "secret.jpg"
    shutil.copy2(next(collection.glob("DCIM/*/*.jpg")), secret)
    locked.chmod(0)
    secret.chmod(0)
    home = tmp_path / "home"
    home.mkdir()
    try:
        p = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all",
             "--", str(CURATE), "run", str(collection), "--home", str(home)],
            capture_output=True, text=True, env=api_env, timeout=600, check=False,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        run_id = p.stdout.strip().split()[-1]
        con = duckdb.connect()
        files = dict(
            con.execute(
                "SELECT path, reason FROM read_parquet($f)",
                {"f": str(Home(home).table_file("files", run_id))},
            ).fetchall()
        )
        assert "unreadable folder" in files["Locked"] and "Locked/inside.jpg" not in files
        err = con.execute(
            "SELECT is_valid, error FROM read_parquet($i) WHERE path = 'secret.jpg'",
            {"i": str(Home(home).table_file("images", run_id))},
        ).fetchone()
        assert err[0] is False and "ermission denied" in err[1]
    finally:
        locked.chmod(0o755)
        secret.chmod(0o644)


def test_files_vanishing_or_changing_between_ingest_and_inspect(
    collection: Path, tmp_path: Path
) -> None:
    """The steps as the flow calls them, with the disk changing in between: a vanished file
    is an invalid image with the reason, a file changed in between is measured as it is now
    and keeps the size and time ingest saw (so apply, which compares them, will skip it)."""
    from photo_curate.inspect_image import InspectOptions
    from tasks.ingest import scan
    from tasks.inspect import inspect_all

    home = Home(tmp_path / "home").ensure()
    ing = scan(collection, home, "r1")
    gone, edited = sorted(
        p.relative_to(collection).as_posix() for p in collection.glob("DCIM/*/*.jpg")
    )[:2]
    (collection / gone).unlink()
    with open(collection / edited, "ab") as fh:
        fh.write(b"\0" * 10)
    res = inspect_all(collection, home, "r1", 1, InspectOptions())
    assert res.n_images == ing.n_images
    con = duckdb.connect()
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT path, is_valid, error, size_bytes FROM read_parquet($i)",
            {"i": str(home.table_file("images", "r1"))},
        ).fetchall()
    }
    assert rows[gone][0] is False and "vanished" in rows[gone][1]
    assert rows[edited][2] == (collection / edited).stat().st_size - 10


@pytest.mark.parametrize("name", ["a[1]", "a*", "it's {x}"])
def test_home_with_glob_characters_sees_exactly_its_own_data(
    collection: Path, tmp_path: Path, name: str
) -> None:
    """HOME paths are data, not patterns: `a[1]` must not match nothing, `a*` must not see
    the runs of a neighbouring home `ab`."""
    from photo_curate import catalog
    from photo_curate.runs import new_run_id, now, write_run
    from tasks.ingest import scan

    def one_run(home: Home) -> str:
        run_id = new_run_id()
        write_run(home, {"run_id": run_id, "started_at": now(), "status": "completed"})
        scan(collection, home, run_id)
        catalog.rebuild(home)
        return run_id

    neighbour = Home(tmp_path / "ab").ensure()
    one_run(neighbour)
    home = Home(tmp_path / name).ensure()
    mine = one_run(home)
    con = duckdb.connect(str(home.catalog), read_only=True)
    assert con.execute("SELECT run_id FROM runs").fetchall() == [(mine,)]
    assert con.execute("SELECT DISTINCT run_id FROM files").fetchall() == [(mine,)]


def test_home_with_a_question_mark_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not supported"):
        Home.resolve(tmp_path / "what?")
