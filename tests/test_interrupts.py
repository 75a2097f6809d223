"""Ctrl-C and SIGTERM during `curate run`, sent from the outside as a terminal or a service
manager sends them, with the CLI's own local Prefect server (no PREFECT_API_URL), as a person
gets it: the command stops within seconds with code 130 and one line, the run is recorded as
`interrupted` with its step, nothing it started is left running, the server survives a
terminal's Ctrl-C, and the next run completes. An apply stops between two files and goes on
where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from photo_curate import local_server
from tests.conftest import tree_digest

pytestmark = pytest.mark.slow
CURATE = Path(sys.executable).parent / "curate"
STOP_WITHIN_S = 10.0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**env, "CURATE_DEBUG": "", **extra}


def _step(home: Path) -> tuple[str | None, str | None]:
    """(run id, the step it is in) of the newest run folder in HOME."""
    runs = home / "runs"
    names = sorted(os.listdir(runs)) if runs.is_dir() else []
    if not names:
        return None, None
    try:
        return names[-1], (runs / names[-1] / "step").read_text().strip()
    except OSError:
        return names[-1], None


def _live(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                    alive.append(pid)
        except OSError:
            pass
    return alive


def _ours(home: Path) -> list[int]:
    """Processes working for a run of this HOME: the command (its command line), the
    runner's child (the home lock it holds), decoder workers (their log) and fastdup children
    (their working folder)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            where = [os.readlink(f"/proc/{entry.name}/cwd")]
            fds = f"/proc/{entry.name}/fd"
            where += [os.readlink(f"{fds}/{fd}") for fd in os.listdir(fds)]
        except OSError:
            continue
        if str(home).encode() in cmd or any(w.startswith(str(home)) for w in where):
            found.append(int(entry.name))
    return _live(found)


def _runner_ready() -> None:
    """Wait until the local server's warm runner listens (it imports the flow first)."""
    deadline = time.monotonic() + 120
    sock = local_server.state_dir() / "runner.sock"
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sock.exists(), "the warm runner did not start"


def _run(source: Path, home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [str(CURATE), "run", str(source), "--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)


def _status(home: Path, run_id: str) -> tuple[str, str | None, str | None]:
    con = duckdb.connect()
    try:
        return con.execute(
            "SELECT status, step, error FROM read_parquet($p)",
            {"p": str(home / "data" / "runs" / f"{run_id}.parquet")},
        ).fetchone()
    finally:
        con.close()


def _interrupt(source: Path, home: Path, step: str, sig: int, to_group: bool, env: dict) -> dict:
    """Start `curate run`, send `sig` once the run is in `step`, and see what it does."""
    proc = subprocess.Popen(
        [str(CURATE), "run", str(source), "--home", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,  # a process group of its own, as a terminal's job is
    )  # fmt: skip
    deadline = time.monotonic() + 300
    run_id = None
    while time.monotonic() < deadline and proc.poll() is None:
        run_id, now = _step(home)
        if now == step:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before {step}: {proc.communicate()}"
    running = _ours(home)
    sent = time.monotonic()
    (os.killpg if to_group else os.kill)(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    time.sleep(0.2)  # the runner reaps its child; a killed worker's exit is not instant
    return {"run_id": run_id, "code": proc.returncode, "took": took, "stderr": err,
            "stdout": out, "left": _live(running) + _ours(home), "pid": proc.pid}  # fmt: skip


@pytest.mark.parametrize(
    ("step", "sig", "to_group", "runner"),
    [
        ("inspect", signal.SIGINT, True, True),  # Ctrl-C in a terminal, decoder pool busy
        ("fastdup", signal.SIGINT, False, True),  # SIGINT to the command alone
        ("fastdup", signal.SIGTERM, True, False),  # a service manager, no warm runner
    ],
)
def test_interrupted_run_stops_records_and_the_next_one_completes(
    collection: Path, tmp_path: Path, step: str, sig: int, to_group: bool, runner: bool
) -> None:
    before = tree_digest(collection)
    home = tmp_path / "home"
    env = _env() if runner else _env(CURATE_RUNNER="0")
    if runner:
        local_server.use()  # as the command will: start it (once), then wait for its runner
        _runner_ready()
    r = _interrupt(collection, home, step, sig, to_group, env)
    assert r["code"] == 130, r
    assert r["took"] < STOP_WITHIN_S, r
    lines = [x for x in r["stderr"].splitlines() if x.strip() and not x.startswith("curate: start")]
    what = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert lines == [
        f"curate: interrupted ({what}) during {step}: run {r['run_id']} is recorded as "
        "interrupted; nothing of it is left running (`curate run` starts again)"
    ], r["stderr"]
    assert r["left"] == [], r["left"]
    assert _status(home, r["run_id"]) == (
        "interrupted",
        step,
        f"interrupted ({what}) during {step}",
    )
    assert not (home / "runs" / r["run_id"] / "fastdup").exists() or step != "inspect"
    server = local_server.find()
    assert server is not None, "the local server must outlive the terminal's Ctrl-C"
    again = _run(collection, home, env)
    assert again.returncode == 0, again.stderr
    assert "status: completed" in again.stdout
    assert not (home / "runs" / r["run_id"] / "analysis").exists()  # cleared by the next run
    assert tree_digest(collection) == before  # a dry run, stopped or not, changes nothing


def test_kill_9_of_the_command_ends_the_runners_child(collection: Path, tmp_path: Path) -> None:
    """`kill -9` of the whole command: the flow ran in the warm runner's child, which ends
    with it (and its decoder workers); the next run marks the run interrupted at its step."""
    home = tmp_path / "home"
    local_server.use()
    _runner_ready()
    r = _interrupt(collection, home, "inspect", signal.SIGKILL, True, _env())
    assert r["code"] == -signal.SIGKILL
    deadline = time.monotonic() + STOP_WITHIN_S
    while _ours(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ours(home) == []
    assert _status(home, r["run_id"])[0] == "running"  # nobody could record anything
    again = _run(collection, home, _env())
    assert again.returncode == 0, again.stderr
    status, step, error = _status(home, r["run_id"])
    assert (status, step) == ("interrupted", "inspect")
    assert "ended without recording how" in error


def test_interrupted_apply_stops_between_files_and_goes_on(sample, tmp_path: Path) -> None:
    """`curate run --apply` deleting large files (each is hashed again before it goes) is
    interrupted mid-way: every journal intent has an outcome, the files not done are in
    place, the run is `interrupted` during apply, and `curate apply RUN_ID` finishes it."""
    from photo_curate.journal import last_states

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg", "chelsea.jpg"):
        (photos / name).write_bytes((sample[0] / "DCIM/2023" / name).read_bytes())
    for i in range(12):  # invalid (not decodable), so planned; 24 MiB each to hash
        (photos / f"broken-{i:02d}.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(24 << 20))
    home = tmp_path / "home"
    env = _env()
    proc = subprocess.Popen(
        [str(CURATE), "run", str(photos), "--home", str(home), "--apply", "--action", "delete",
         "--yes"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list(photos.glob("broken-*"))) < 12:  # the first file is gone
            break
        time.sleep(0.005)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    (journal,) = (home / "data" / "actions").glob("*.jsonl")
    run_id = journal.stem
    assert proc.returncode == 130, err
    assert f"`curate apply {run_id}` goes on" in err
    states = last_states(journal)
    assert not [e for e in states.values() if e.status == "intent"]
    done = {e.path for e in states.values() if e.status == "done"}
    left = {p.name for p in photos.glob("broken-*")}
    assert 0 < len(done) < 12 and len(left) == 12 - len(done)
    assert _status(home, run_id)[:2] == ("interrupted", "apply")
    go_on = subprocess.run(
        [str(CURATE), "apply", run_id, "--action", "delete", "--yes", "--home", str(home)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert go_on.returncode == 0, go_on.stderr
    assert f"{12 - len(done)} done" in go_on.stdout and f"{len(done)} already" in go_on.stdout
    assert sorted(p.name for p in photos.iterdir()) == [
        "astronaut.jpg",
        "chelsea.jpg",
        "coffee.jpg",
    ]


def test_local_server_status_and_stop() -> None:
    """The server the runs above started: `curate server` shows it, and stops it with
    everything of it (the next command without PREFECT_API_URL would start a new one)."""
    info = local_server.find()
    assert info is not None
    s = subprocess.run([str(CURATE), "server"], capture_output=True, text=True, env=_env(),
                       timeout=60, check=False)  # fmt: skip
    assert s.returncode == 0 and f"UI {info.ui}" in s.stdout and f"pid {info.pid}" in s.stdout
    group = [
        int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and _pgid(e.name) == info.pid
    ]
    assert len(_live(group)) >= 3  # the supervisor, prefect server, the warm runner
    t = subprocess.run([str(CURATE), "server", "stop"], capture_output=True, text=True,
                       env=_env(), timeout=60, check=False)  # fmt: skip
    assert t.returncode == 0 and "stopped the local Prefect server" in t.stdout
    assert _live(group) == [] and local_server.find() is None
    again = subprocess.run([str(CURATE), "server"], capture_output=True, text=True,
                           env=_env(), timeout=60, check=False)  # fmt: skip
    assert "no local Prefect server runs" in again.stdout


def _pgid(pid: str) -> int | None:
    if not pid.isdigit():
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[2])
    except OSError:
        return None
