"""A warm process that runs `curate run`'s flow, so a command does not import Prefect itself.

Importing Prefect and the flow costs a command more CPU (~2-4 s) than an unchanged re-run's
work. The local server's supervisor (photo_curate/local_server.py) also keeps this runner:
it imports the flow once, then listens on `PREFECT_HOME/curate-server/runner.sock` (a Unix
socket, same user only). `curate run`, once its checks have passed, sends the flow call, its
environment, working folder and its stdin, stdout and stderr (SCM_RIGHTS); the runner forks
a child that takes them over and runs the flow there: the same Prefect flow run, output and
exit code as in the command's own process, with no import to pay. The command forwards
Ctrl-C and SIGTERM to the child and exits with its code; if the command dies (`kill -9`),
the child sees its socket close and ends at once with everything it started, like the
command would have.

The runner is used only when it runs exactly this code: the command sends a fingerprint of
the package files (paths, sizes, mtimes), the Python and the Prefect settings from the
environment; on any difference the command runs the flow itself and the runner, now stale,
exits (the supervisor starts a fresh one).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

SOCKET = "runner.sock"
_PACKAGES = ("photo_curate", "tasks", "flows")
# settings that Prefect reads at import; the rest of the environment is the command's own
_IGNORED_PREFECT = ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_", "PREFECT__")


def code_fingerprint() -> str:
    """This code and this Python: what a warm runner must share with a command."""
    h = hashlib.sha256(sys.executable.encode())
    root = Path(__file__).resolve().parent.parent
    for package in (*_PACKAGES, "sql"):
        for folder, dirs, files in os.walk(root / package):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".sql", ".j2")):
                    st = os.stat(os.path.join(folder, name))
                    h.update(f"{folder}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def settings_fingerprint(env: dict[str, str]) -> str:
    """The Prefect settings Prefect reads at import (its API URL and home aside)."""
    keep = sorted(
        f"{k}={v}"
        for k, v in env.items()
        if k.startswith("PREFECT_") and not k.startswith(_IGNORED_PREFECT)
    )
    return hashlib.sha256("\n".join(keep).encode()).hexdigest()


def socket_path(prefect_home: Path) -> Path:
    from photo_curate.local_server import state_dir

    return state_dir(prefect_home) / SOCKET


# --- the command's side ------------------------------------------------------------------


def delegate(prefect_home: Path, kwargs: dict[str, Any], checked: dict[str, Any]) -> int | None:
    """Run the flow call `kwargs` in a child of the warm runner and return its exit code; None
    when there is no runner for this code (the caller runs the flow itself)."""
    path = socket_path(prefect_home)
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        payload = pickle.dumps(
            {
                "code": code_fingerprint(),
                "env": dict(os.environ),
                "cwd": os.getcwd(),
                "kwargs": kwargs,
                "checked": checked,
            }
        )
        socket.send_fds(sock, [struct.pack("!Q", len(payload))], [0, 1, 2])
        sock.sendall(payload)
        reader = sock.makefile("rb")
        first = json.loads(reader.readline() or b"{}")
    except (OSError, ValueError):
        sock.close()
        return None
    if "pid" not in first:  # stale, other settings or refused: run here
        sock.close()
        return None
    return _follow(sock, reader, int(first["pid"]))


def _follow(sock: socket.socket, reader: Any, pid: int) -> int:
    """Forward Ctrl-C and SIGTERM to the child until it reports its exit code."""
    signals = {"n": 0}

    def forward(signum: int, _frame: Any) -> None:
        signals["n"] += 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum if signals["n"] < 3 else signal.SIGKILL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    code = None
    try:
        while code is None:
            try:
                line = reader.readline()
            except InterruptedError:
                continue
            if not line:
                break
            code = json.loads(line).get("exit")
    finally:
        sock.close()
    _wait_gone(pid)
    if code is None:
        sys.stderr.write("curate: run failed: the runner's child ended without an exit code\n")
        return 3
    return int(code)


def _wait_gone(pid: int, seconds: float = 5.0) -> None:
    """Until the child is gone (or a zombie of the runner's)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    return
        except OSError:
            return
        time.sleep(0.02)


# --- the runner's side -------------------------------------------------------------------


def serve(prefect_home: Path) -> int:
    """Import the flow, then fork a child per request until the code changes under us."""
    from photo_curate.cli import setup_env

    setup_env()
    mine = code_fingerprint()
    import flows.curate  # noqa: F401 (the import is the point)
    from photo_curate import cli

    path = socket_path(prefect_home)
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old)
    server.listen(8)
    server.settimeout(1.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            _reap()
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError, ValueError, EOFError):
                if not _handle(server, conn, mine, cli):
                    return 0  # stale: the supervisor starts a runner of the new code
    finally:
        server.close()
        path.unlink(missing_ok=True)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


# what a process may do besides its uid: a command that differs in any of these (e.g. run
# under `setpriv` without the capabilities that bypass permissions) runs the flow itself
_CREDENTIALS = ("Uid", "Gid", "Groups", "Umask", "NoNewPrivs", "Seccomp",
                "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")  # fmt: skip


def _credentials(pid: int | str) -> dict[str, str] | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            lines = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
    except OSError:
        return None
    return {k: lines.get(k, "") for k in _CREDENTIALS}


def _handle(server: socket.socket, conn: socket.socket, mine: str, cli: Any) -> bool:
    """Serve one request; False when the runner is stale."""
    conn.settimeout(10)
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    peer, uid, _gid = struct.unpack("3i", creds)
    msg, fds, _flags, _addr = socket.recv_fds(conn, 8, 3)
    try:
        if uid != os.getuid() or len(fds) != 3 or len(msg) != 8:
            conn.sendall(b'{"refused": "not the same user"}\n')
            return True
        if _credentials(peer) != _credentials("self"):
            conn.sendall(b'{"refused": "other groups, capabilities or umask"}\n')
            return True
        size = struct.unpack("!Q", msg)[0]
        data = b""
        while len(data) < size:
            chunk = conn.recv(min(1 << 20, size - len(data)))
            if not chunk:
                return True
            data += chunk
        request = pickle.loads(data)
        if request["code"] != mine:
            conn.sendall(b'{"stale": true}\n')
            return False
        if settings_fingerprint(request["env"]) != settings_fingerprint(dict(os.environ)):
            conn.sendall(b'{"refused": "other Prefect settings"}\n')
            return True
        pid = os.fork()
        if pid == 0:
            server.close()
            _child(conn, fds, request, cli)  # never returns
        return True
    finally:
        for fd in fds:
            os.close(fd)
        conn.close()


def _child(conn: socket.socket, fds: list[int], request: dict[str, Any], cli: Any) -> None:
    """Become the command: its stdio, folder and environment; run the flow; report."""
    code = 3
    try:
        os.setpgid(0, 0)  # a group of its own: what it starts can be killed with it
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
        from photo_curate import preflight

        preflight.adopt(request["checked"])
        conn.settimeout(None)
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        threading.Thread(target=_watch, args=(conn,), daemon=True).start()
        code = cli.run_delegated(request["kwargs"])
    finally:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        os._exit(code)


def _watch(conn: socket.socket) -> None:
    """The command went away (killed): end now, with everything this child started."""
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    from photo_curate.interrupts import kill_descendants

    kill_descendants()
    os._exit(137)


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m photo_curate.runner")
    ap.add_argument("--prefect-home", required=True)
    args = ap.parse_args()
    return serve(Path(args.prefect_home))


if __name__ == "__main__":
    sys.exit(main())
