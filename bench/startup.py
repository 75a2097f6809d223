"""Start-up benchmark: what a `curate run` costs before and besides its work, without a server.

    .venv/bin/python -m bench.startup [--images 2200] [--reruns 3] [--idle-seconds 60]

No PREFECT_API_URL is set, as for a person who runs the README's first command. Two modes:
- `local` (the default): the CLI's own Prefect server (photo_curate/local_server.py), in a
  fresh PREFECT_HOME, started by the first command and reused by the later ones;
- `ephemeral`: Prefect's temporary server for every run (`CURATE_LOCAL_SERVER=0`), the
  behaviour before the local server.
Per mode, on bench/speed.py's collection of distinct real-photo JPEGs: a first run into a
fresh HOME with nothing started yet (`cold`: the local server starts here), a first run into
another fresh HOME (`first`: the baseline), then `--reruns` unchanged re-runs of that HOME.
In local mode two runs into a third fresh HOME are then stopped by SIGINT to their process
group (what Ctrl-C in a terminal sends), 15 s in and once fastdup runs; the next run into
that HOME must complete.
Wall time of the command, and CPU seconds of its whole process tree (bench/measure.py) plus,
in local mode, the CPU the server's processes spent meanwhile (read from /proc): the server
works for the run, so its share counts. Also: the CPU the local server spends idle per
minute, and how long `curate run SOURCE --home /proc/x` (refused before start-up) takes.
Prints a table and writes bench/results/startup.json. The local server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from bench.corpus import distinct_collection
from bench.measure import Measured, run_measured
from bench.speed import BIN, RESULTS

TICK = os.sysconf("SC_CLK_TCK")


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system) of the live processes of session `sid`, with what their
    children that they have waited for spent (the runner's children: the flow runs)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / TICK


def server_session(prefect_home: Path) -> int | None:
    """The local server's session (its supervisor's pid), if one runs."""
    from photo_curate import local_server

    info = local_server.find(prefect_home)
    return info.pid if info else None


def curate_run(collection: Path, home: Path, env: dict[str, str], prefect_home: Path) -> dict:
    """One `curate run`, measured; with the local server's CPU during it."""
    before = server_session(prefect_home)
    cpu0 = session_cpu(before) if before else 0.0
    m: Measured = run_measured(
        [str(BIN / "curate"), "run", str(collection), "--home", str(home)], env=env
    )
    if not m.ok:
        raise SystemExit(f"curate run failed ({m.returncode}): {m.stderr_tail[-500:]}")
    after = server_session(prefect_home)
    server_cpu = session_cpu(after) - (cpu0 if after == before else 0.0) if after else 0.0
    return {
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "server_cpu_s": server_cpu,
        "total_cpu_s": m.cpu_s + server_cpu,
    }


def one_mode(mode: str, collection: Path, work: Path, reruns: int) -> dict:
    prefect_home = work / f"prefect-{mode}"
    shutil.rmtree(prefect_home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(prefect_home), CURATE_DEBUG="")
    if mode == "ephemeral":
        env["CURATE_LOCAL_SERVER"] = "0"
    homes = [Path(tempfile.mkdtemp(prefix=f"startup-{mode}-", dir=work)) for _ in range(3)]
    try:
        cold = curate_run(collection, homes[0], env, prefect_home)
        first = curate_run(collection, homes[1], env, prefect_home)
        again = [curate_run(collection, homes[1], env, prefect_home) for _ in range(reruns)]
        stops, after = [], None
        if mode == "local":  # Ctrl-C to the terminal's process group, 15 s in and in fastdup
            stops = [interrupt(collection, homes[2], env, after_s=15.0),
                     interrupt(collection, homes[2], env, step="fastdup")]  # fmt: skip
            after = curate_run(collection, homes[2], env, prefect_home)  # it must complete
    finally:
        for h in homes:
            shutil.rmtree(h, ignore_errors=True)
    out = {"cold": cold, "first": first, "unchanged": again, "interrupted": stops,
           "after_interrupts": after}  # fmt: skip
    med = {k: statistics.median(r[k] for r in again) for k in again[0]}
    out["unchanged_median"] = med
    out["unchanged_wall_ratio"] = med["wall_s"] / first["wall_s"]
    out["prefect_home"] = str(prefect_home)
    return out


def interrupt(
    collection: Path, home: Path, env: dict[str, str], after_s: float = 0.0, step: str = ""
) -> dict:
    """`curate run` in a process group of its own (a terminal's job), SIGINT to the group
    `after_s` seconds in or once the run is in `step`: how long it takes to stop, its exit
    code, the run's recorded status and step, and what of it is still running 2 s later."""
    proc = subprocess.Popen(
        [str(BIN / "curate"), "run", str(collection), "--home", str(home)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    t0 = time.monotonic()
    earlier = set((home / "runs").iterdir()) if (home / "runs").is_dir() else set()
    while proc.poll() is None and time.monotonic() - t0 < 600:
        runs = sorted(set((home / "runs").iterdir()) - earlier) if (home / "runs").is_dir() else []
        now = (runs[-1] / "step").read_text() if runs and (runs[-1] / "step").exists() else ""
        if (after_s and time.monotonic() - t0 >= after_s) or (step and now == step):
            break
        time.sleep(0.01)
    at = time.monotonic() - t0
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    time.sleep(2)
    left = [pid for pid in _pids() if _works_for(pid, home)]
    run = sorted((home / "runs").iterdir())[-1].name
    con = duckdb.connect()
    status, where = con.execute(
        "SELECT status, step FROM read_parquet($p)",
        {"p": str(home / "data" / "runs" / f"{run}.parquet")},
    ).fetchone()
    con.close()
    return {"sent_after_s": at, "stopped_in_s": took, "code": proc.returncode,
            "status": status, "step": where, "left": left, "stderr": err.strip()}  # fmt: skip


def _pids() -> list[int]:
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def _works_for(pid: int, home: Path) -> bool:
    """The process has HOME on its command line, as its folder or among its open files."""
    try:
        if str(home).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return True
        fds = f"/proc/{pid}/fd"
        where = [os.readlink(f"/proc/{pid}/cwd")] + [
            os.readlink(f"{fds}/{f}") for f in os.listdir(fds)
        ]
    except OSError:
        return False
    return any(w.startswith(str(home)) for w in where)


def idle_cpu_per_minute(prefect_home: Path, seconds: float) -> float | None:
    sid = server_session(prefect_home)
    if sid is None or seconds <= 0:
        return None
    cpu0 = session_cpu(sid)
    time.sleep(seconds)
    return (session_cpu(sid) - cpu0) * 60.0 / seconds


def refused_at_once(collection: Path, work: Path) -> Measured:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(work / "prefect-local")
    return run_measured([str(BIN / "curate"), "run", str(collection), "--home", "/proc/x"], env=env)


def stop_server(prefect_home: Path) -> None:
    from photo_curate import local_server

    local_server.stop(prefect_home)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2200)
    ap.add_argument("--reruns", type=int, default=3)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--modes", nargs="+", default=["local", "ephemeral"])
    ap.add_argument("--work", default="/tmp/curate-bench-startup")
    args = ap.parse_args()
    # a shell's background job starts with SIGINT ignored, and its children inherit that:
    # the commands are to get Ctrl-C as from a terminal
    signal.signal(signal.SIGINT, signal.default_int_handler)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    collection = distinct_collection(args.images)
    results: dict[str, dict] = {}
    try:
        for mode in args.modes:
            results[mode] = one_mode(mode, collection, work, args.reruns)
            r = results[mode]
            print(
                f"{mode}: cold first run {r['cold']['wall_s']:.1f} s, first run "
                f"{r['first']['wall_s']:.1f} s, unchanged re-run "
                f"{r['unchanged_median']['wall_s']:.1f} s ({r['unchanged_wall_ratio']:.1%}), "
                f"CPU {r['unchanged_median']['total_cpu_s']:.2f} s",
                flush=True,
            )
        if "local" in results:
            results["local"]["idle_cpu_s_per_min"] = idle_cpu_per_minute(
                work / "prefect-local", args.idle_seconds
            )
        refused = refused_at_once(collection, work)
        results["refused"] = {
            "wall_s": refused.wall_s,
            "cpu_s": refused.cpu_s,
            "returncode": refused.returncode,
            "stderr": refused.stderr_tail.strip(),
        }
    finally:
        stop_server(work / "prefect-local")
    print(f"\n{args.images} images, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'':38}" + "".join(f"{m:>22}" for m in args.modes))

    def med(key: str) -> Callable[[dict], str]:
        return lambda r: f"{r['unchanged_median'][key]:.2f} s"

    rows: list[tuple[str, Callable[[dict], str]]] = [
        ("first run, nothing started (wall)", lambda r: f"{r['cold']['wall_s']:.1f} s"),
        ("first run (wall)", lambda r: f"{r['first']['wall_s']:.1f} s"),
        ("unchanged re-run (wall)", lambda r: f"{r['unchanged_median']['wall_s']:.1f} s "
         f"({r['unchanged_wall_ratio']:.1%})"),
        ("unchanged re-run, CPU of the command", med("cpu_s")),
        ("  + the server's CPU meanwhile", med("server_cpu_s")),
        ("  = CPU in all", med("total_cpu_s")),
    ]  # fmt: skip
    for label, cell in rows:
        print(f"{label:38}" + "".join(f"{cell(results[m]):>22}" for m in args.modes))
    for stop in results.get("local", {}).get("interrupted", []):
        print(f"Ctrl-C to the group {stop['sent_after_s']:.0f} s in (during {stop['step']}): "
              f"exit {stop['code']} after {stop['stopped_in_s']:.1f} s, run {stop['status']}, "
              f"{len(stop['left'])} processes of it left")  # fmt: skip
    after = results.get("local", {}).get("after_interrupts")
    if after:
        print(f"the next run after them: completed in {after['wall_s']:.1f} s")
    idle = results.get("local", {}).get("idle_cpu_s_per_min")
    if idle is not None:
        print(f"local server idle: {idle:.2f} s of CPU per minute")
    ref = results["refused"]
    print(f"`curate run SOURCE --home /proc/x`: exit {ref['returncode']} after "
          f"{ref['wall_s']:.2f} s ({ref['cpu_s']:.2f} s CPU): {ref['stderr']}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(
        json.dumps({"images": args.images, "cores": os.cpu_count(), **results}, indent=1)
    )
    if "local" in results and sys.stdout.isatty():
        print(f"(results in {RESULTS / 'startup.json'})")


if __name__ == "__main__":
    main()
