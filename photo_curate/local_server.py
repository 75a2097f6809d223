"""The Prefect server a `curate` command uses when no PREFECT_API_URL is set.

Without an API URL Prefect starts a temporary server for every flow run: a child process that
imports the whole server and checks its database (most of the CPU of an unchanged re-run), in
the terminal's process group, so Ctrl-C kills it before the run. Instead the CLI starts one
ordinary `prefect server start` per PREFECT_HOME on first use and reuses it:

- detached: a supervisor process in a session of its own (a terminal's Ctrl-C or hang-up
  never reaches it), not a child of the command that started it, runs the server on
  127.0.0.1 only, with Prefect's database in PREFECT_HOME and its UI;
- found again through `PREFECT_HOME/curate-server/server.json`, trusted only while the
  supervisor is alive and the API answers `/api/health`; a server of another Prefect version
  or Python is stopped and a new one started;
- with the services a command-line flow run needs (task-run recorder, event persister,
  streams), not the ones that poll for deployments, schedules, late runs or automations;
- gone by itself after `CURATE_SERVER_IDLE_HOURS` (36) hours without a command using it
  (commands hold a shared lock on `in-use.lock` while they run); `curate server` shows,
  starts and stops it. `CURATE_LOCAL_SERVER=0` leaves Prefect to its temporary server.

Starting is serialised by a lock file, so two commands starting at once share one server.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_DIR = "curate-server"
START_TIMEOUT_S = 180.0
DEFAULT_IDLE_HOURS = 36.0
POLL_S = 60.0  # how often the supervisor looks whether the server is idle
RUNNER_POLL_S = 5.0  # how often it looks whether the runner is still there
# Services that wait for work a command-line run never gives them (deployments, schedules,
# late or paused runs, automations, worker leases): off, so the server idles quietly.
SERVICES_OFF = (
    "SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP",
    "REPOSSESSOR", "TRIGGERS", "EVENT_LOGGER", "CLEANUP_RECONCILER", "DB_VACUUM",
)  # fmt: skip
_in_use_fd: int | None = None
LOCAL_URL = "CURATE_LOCAL_SERVER_URL"  # set by `use`: PREFECT_API_URL is the local server's


class ServerFailed(RuntimeError):
    """The local server did not start: the message names its log."""


@dataclass(frozen=True)
class ServerInfo:
    pid: int  # the supervisor; its process group holds the server
    port: int
    version: str
    python: str
    started_at: float
    prefect_home: str
    idle_hours: float = DEFAULT_IDLE_HOURS

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def prefect_home() -> Path:
    """PREFECT_HOME as Prefect resolves it (the variable, else ~/.prefect)."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser().absolute()


def state_dir(home: Path | None = None) -> Path:
    return (home or prefect_home()) / STATE_DIR


def prefect_version() -> str:
    from importlib.metadata import version

    return version("prefect")


def idle_hours() -> float:
    try:
        return max(0.0, float(os.environ.get("CURATE_SERVER_IDLE_HOURS", DEFAULT_IDLE_HOURS)))
    except ValueError:
        return DEFAULT_IDLE_HOURS


def _read(home: Path) -> ServerInfo | None:
    try:
        data = json.loads((state_dir(home) / "server.json").read_text(encoding="utf-8"))
        return ServerInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def _write(home: Path, info: ServerInfo) -> None:
    path = state_dir(home) / "server.json"
    tmp = path.with_name(f".server.json.{os.getpid()}")
    tmp.write_text(json.dumps(asdict(info)), encoding="utf-8")
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    """True when `pid` runs (and is not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


def healthy(url: str, timeout: float = 2.0) -> bool:
    """True when the API at `url` answers its health check."""
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/api/health")
        resp = conn.getresponse()
        return resp.status == 200 and resp.read().strip() == b"true"
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        conn.close()


def find(home: Path | None = None) -> ServerInfo | None:
    """The recorded server, if its supervisor is alive and the API answers."""
    info = _read(home or prefect_home())
    if info is None or not _alive(info.pid):
        return None
    return info if healthy(info.url) else None


@contextlib.contextmanager
def _start_lock(home: Path) -> Iterator[None]:
    folder = state_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another command is starting one: wait for it
        yield
    finally:
        os.close(fd)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path, port: int) -> dict[str, str]:
    """The server's environment: loopback, no analytics, the idle-polling services off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    for name in SERVICES_OFF:
        env[f"PREFECT_SERVER_SERVICES_{name}_ENABLED"] = "false"
    return env


def start(home: Path | None = None, announce: bool = True, idle: float | None = None) -> ServerInfo:
    """The running server of PREFECT_HOME, started (detached) if there is none."""
    home = home or prefect_home()
    idle = idle_hours() if idle is None else idle
    with _start_lock(home):
        version = prefect_version()
        info = _read(home)
        if info and _alive(info.pid):
            age = time.time() - info.started_at
            wait = max(1.0, START_TIMEOUT_S - age)  # one that is still starting: wait for it
            if _wait_healthy(info, wait) and (info.version, info.python) == (
                version,
                sys.executable,
            ):
                return info
            terminate(info)  # hung, or another Prefect or Python (its schema may differ)
        port = _free_port()
        log_path = state_dir(home) / "server.log"
        if announce and sys.stderr.isatty():  # a person at a terminal; not a script's log
            sys.stderr.write(
                f"curate: starting a local Prefect server (UI http://127.0.0.1:{port}, state "
                f"in {home}; `curate server stop` stops it) ...\n"
            )
            sys.stderr.flush()
        with open(log_path, "ab") as log:
            launcher = subprocess.run(
                [sys.executable, "-m", "photo_curate.local_server", "--home", str(home),
                 "--port", str(port), "--idle-hours", str(idle)],
                env=server_env(home, port), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=log, start_new_session=True, check=False, timeout=60,
            )  # fmt: skip
        try:
            pid = int(launcher.stdout.split()[0])
        except (ValueError, IndexError):
            raise ServerFailed(
                f"the local Prefect server did not start ({_last_line(log_path)}; log: {log_path})"
            ) from None
        info = ServerInfo(pid, port, version, sys.executable, time.time(), str(home), idle)
        _write(home, info)  # before it answers: a command interrupted now leaves no orphan
        if not _wait_healthy(info, START_TIMEOUT_S):
            terminate(info)
            (state_dir(home) / "server.json").unlink(missing_ok=True)
            raise ServerFailed(
                f"the local Prefect server did not answer ({_last_line(log_path)}; log: {log_path})"
            )
        return info


def _wait_healthy(info: ServerInfo, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if healthy(info.url, timeout=1.0):
            return True
        if not _alive(info.pid) or time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _last_line(path: Path) -> str:
    try:
        lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return "no log"
    return lines[-1][:200] if lines else "no output"


def terminate(info: ServerInfo, timeout: float = 15.0) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(info.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(info.pid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    for entry in os.scandir("/proc"):  # zombies still count for killpg: look closer
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != b"Z":
                return True
    return False


def stop(home: Path | None = None) -> ServerInfo | None:
    """Stop the recorded server of PREFECT_HOME; the one that was running, or None."""
    home = home or prefect_home()
    if not state_dir(home).exists():
        return None
    with _start_lock(home):
        info = _read(home)
        if info is None:
            return None
        running = _alive(info.pid)
        if running:
            terminate(info)
        (state_dir(home) / "server.json").unlink(missing_ok=True)
        return info if running else None


def use() -> str | None:
    """PREFECT_API_URL for this command: the configured one, else the local server's (None
    with CURATE_LOCAL_SERVER=0: Prefect then starts its temporary server, as it would).

    Put into the environment before Prefect is imported, so the flow run and any worker
    process talk to the same server. While this process lives it holds a shared lock that
    keeps the server from stopping for being idle."""
    global _in_use_fd
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    if os.environ.get("CURATE_LOCAL_SERVER") == "0":  # Prefect's temporary server per run
        return None
    home = prefect_home()
    state_dir(home).mkdir(parents=True, exist_ok=True)
    if _in_use_fd is None:
        lock = state_dir(home) / "in-use.lock"
        _in_use_fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(_in_use_fd, fcntl.LOCK_SH)  # waits while an idle server is being stopped
        os.utime(lock)
    info = start(home)
    os.environ["PREFECT_API_URL"] = os.environ[LOCAL_URL] = info.url
    return info.url


def recover(error: BaseException) -> str | None:
    """The local server's URL after a flow could not reach it at its start (the server died
    or hung since `use`): started again if need be. None when the error is another or the
    API is not the local server's (a server the user runs is theirs to mend)."""
    url = os.environ.get("PREFECT_API_URL")
    if (
        not str(error).startswith("Failed to reach API")
        or not url
        or url != os.environ.get(LOCAL_URL)
    ):
        return None
    info = start(prefect_home(), announce=False)
    os.environ["PREFECT_API_URL"] = os.environ[LOCAL_URL] = info.url
    return info.url


# --- the supervisor: `python -m photo_curate.local_server` (started by `start`) ------------


def _supervise(home: Path, port: int, idle: float) -> int:
    """Run `prefect server start` and the warm runner (photo_curate/runner.py) until stopped,
    or idle for `idle` hours (0: never); a runner that exits (its code changed) is replaced."""
    script = Path(sys.executable).parent / "prefect"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "prefect"]
    server = subprocess.Popen(
        [*cli, "server", "start", "--host", "127.0.0.1", "--port", str(port),
         "--no-scheduler", "--no-late-runs", "--analytics-off"],
        stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
    )  # fmt: skip
    runner: subprocess.Popen[bytes] | None = None

    def start_runner() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "photo_curate.runner", "--prefect-home", str(home)],
            stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
        )  # fmt: skip

    def _stop(*_: object) -> None:
        for proc in (runner, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (runner, server):
            if proc is not None:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    runner = start_runner()
    runner_started, backoff = time.monotonic(), 10.0
    lock = state_dir(home) / "in-use.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    last_used = last_check = time.time()
    while server.poll() is None:
        time.sleep(RUNNER_POLL_S)
        if runner.poll() is not None and time.monotonic() - runner_started > backoff:
            # the code changed under the old one, or it failed: a runner that keeps failing
            # is started less and less often (the commands then run their flows themselves)
            lived = time.monotonic() - runner_started
            backoff = 10.0 if lived > 300 else min(backoff * 2, 3600.0)
            runner = start_runner()
            runner_started = time.monotonic()
        if not idle or time.time() - last_check < POLL_S:
            continue
        last_check = time.time()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            last_used = time.time()  # a command is using it
            continue
        with contextlib.suppress(OSError):
            last_used = max(last_used, os.stat(lock).st_mtime)
        if time.time() - last_used >= idle * 3600:
            info = _read(home)
            if info and info.pid == os.getpid():
                (state_dir(home) / "server.json").unlink(missing_ok=True)
            _stop()  # holding the lock: a command starting now waits, then starts a new one
        fcntl.flock(fd, fcntl.LOCK_UN)
    _stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m photo_curate.local_server")
    ap.add_argument("--home", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--idle-hours", type=float, default=DEFAULT_IDLE_HOURS)
    args = ap.parse_args(argv)
    pid = os.fork()  # the supervisor is a grandchild: no command waits for it or kills it
    if pid:
        print(pid, flush=True)
        return 0
    os.setsid()  # its own session and process group: `terminate` signals the group
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    return _supervise(Path(args.home), args.port, args.idle_hours)


if __name__ == "__main__":
    sys.exit(main())
