"""`curate`: the command line.

Exit codes: 0 done; 1 the run finished but a validation failed (nothing destructive was done);
2 usage or input error (one line on stderr, no traceback); 3 the run failed for another reason
(one line, and where the details are); 130 interrupted (Ctrl-C or SIGTERM). `CURATE_DEBUG=1`
shows tracebacks.

Everything a run needs is checked (photo_curate/preflight.py) before Prefect is imported; without
PREFECT_API_URL the flow runs against the local server of photo_curate/local_server.py.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
from typing import Any

from photo_curate import __version__, interrupts
from photo_curate.errors import Stopped, UserError, ValidationFailed

# Quiet, private defaults, set before Prefect or fastdup is imported.
_ENV_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "SENTRY_OPT_OUT": "1",
    "FASTDUP_PRODUCTION": "1",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        words = self.prog.split()
        verb = f"{words[-1]} " if len(words) > 1 else ""
        sys.stderr.write(f"curate: {message} (see curate {verb}--help)\n")
        sys.exit(2)


def _add_home(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--home",
        help="folder with the catalog, run outputs, quarantine and reports "
        "(default: $CURATE_HOME, else ./curation)",
    )


SOURCE_HELP = "the folder, archive (zip/tar) or URL manifest (.txt/.csv) to curate"
ACTION_HELP = (
    "what applying does to the planned files: quarantine (move to HOME/quarantine/RUN_ID, "
    "undoable), trash (the desktop trash) or delete (permanent; asks first); default: the "
    "config's actions.action, else quarantine"
)
YES_HELP = "do not ask before deleting permanently (needed for delete without a terminal)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="curate", description="Curate photo collections with fastdup.")
    parser.add_argument("--version", action="version", version=f"curate {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="one curation run of SOURCE (a dry run unless --apply)")
    p.add_argument("source", help=SOURCE_HELP)
    p.add_argument("--config", help="YAML, TOML or JSON config file")
    p.add_argument("--apply", action="store_true", help="act on the plan after validation")
    p.add_argument(
        "--full", action="store_true", help="read every file again (no reuse of the last run)"
    )
    p.add_argument("--action", choices=["quarantine", "trash", "delete"], help=ACTION_HELP)
    p.add_argument("--yes", action="store_true", help=YES_HELP)
    _add_home(p)

    p = sub.add_parser("apply", help="apply the plan of an earlier run (default: the latest)")
    p.add_argument("run_id", nargs="?", help="the run whose plan to apply (default: the latest)")
    p.add_argument("--action", choices=["quarantine", "trash", "delete"], help=ACTION_HELP)
    p.add_argument("--yes", action="store_true", help=YES_HELP)
    _add_home(p)

    p = sub.add_parser("undo", help="put back every file a run moved")
    p.add_argument(
        "run_id", nargs="?", help="the run to undo (default: the latest whose moves stand)"
    )
    _add_home(p)

    p = sub.add_parser("sql", help="read-only SQL on the catalog")
    p.add_argument("query", help='one SQL query, e.g. "SELECT * FROM latest_findings"')
    p.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="output format"
    )
    _add_home(p)

    p = sub.add_parser("history", help="the runs, newest first")
    p.add_argument("--limit", type=int, default=20, help="how many runs to show (default 20)")
    _add_home(p)

    p = sub.add_parser("report", help="(re)build the HTML report of a run and print its path")
    p.add_argument("run_id", nargs="?", help="the run (default: the latest)")
    _add_home(p)

    p = sub.add_parser(
        "serve", help="run SOURCE on a schedule from this process (a Prefect server is needed)"
    )
    p.add_argument("source", help=SOURCE_HELP)
    p.add_argument("--cron", default="30 2 * * *", help="when to run (default: 02:30 daily)")
    p.add_argument("--timezone", default=None, help="of the cron, e.g. Europe/Berlin (default UTC)")
    p.add_argument("--config", help="YAML, TOML or JSON config file")
    p.add_argument("--name", help="deployment name (default: serve-<folder name>)")
    _add_home(p)

    p = sub.add_parser(
        "server",
        help="the local Prefect server curate starts when PREFECT_API_URL is not set",
    )
    p.add_argument(
        "what",
        nargs="?",
        choices=["status", "start", "stop"],
        default="status",
        help="status (default): is it running, where; start: start it now; stop: stop it",
    )
    p.add_argument(
        "--idle-hours",
        type=float,
        default=None,
        help="with start: stop by itself after this many hours unused (0: never; default "
        "$CURATE_SERVER_IDLE_HOURS, else 36)",
    )

    p = sub.add_parser(
        "decide", help="record a verdict every later run honours (keep, not-duplicate, ...)"
    )
    p.add_argument(
        "verdict",
        choices=["keep", "not-duplicate", "ignore", "remove", "retract"],
        help="keep: never plan for removal; not-duplicate: these are different shots; "
        "ignore: do not report (for --kind, else at all); remove: plan even where the rules "
        "say review; retract ID: take a decision back",
    )
    p.add_argument("paths", nargs="+", help="files relative to SOURCE (retract: the decision id)")
    p.add_argument("--kind", help="for ignore: the finding kind (e.g. blurry)")
    p.add_argument("--note", help="why (kept with the decision)")
    p.add_argument("--source", help="the SOURCE of the files, when several are curated here")
    _add_home(p)

    p = sub.add_parser("decisions", help="the decisions, newest first, and which are in force")
    _add_home(p)

    p = sub.add_parser(
        "review", help="serve a run's report on 127.0.0.1 with controls that record decisions"
    )
    p.add_argument("run_id", nargs="?", help="the run (default: the latest)")
    p.add_argument("--no-open", action="store_true", help="print the URL, open no browser")
    _add_home(p)

    p = sub.add_parser("demo", help="build the sample collection and run on it (dry run)")
    _add_home(p)
    return parser


def setup_env() -> None:
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _print_result(result: dict[str, Any]) -> None:
    from photo_curate.summary import format_summary

    prev = result.get("previous_summary")
    line = (result.get("source") or {}).get("line")
    if line:
        print(line)
    print(format_summary(result["summary"], prev, result["run_id"]))
    inc = result.get("incremental") or {}
    if inc.get("mode") == "unchanged":
        print(f"nothing changed since run {inc['reused_from']}: its results were carried over")
    elif inc.get("mode") == "incremental":
        print(
            f"incremental: {inc['n_inspected']} new or changed images read, "
            f"{inc['n_extracted']} new fastdup vectors; the rest reused from run "
            f"{inc['reused_from']}"
        )
    from photo_curate.changes import format_changes

    print(format_changes(result.get("changes")))
    if result.get("applied"):
        a = result["applied"]
        print(f"applied: {a['done']} done, {a['skipped']} skipped, {a['failed']} failed")
    v = result["validation"]
    print(f"validation: {'passed' if v['success'] else 'FAILED'} ({v['checks']} checks)")
    for f in v["failed"]:
        print(f"  failed: {f}")
    print(f"report: {result['report']}")
    print(f"status: {result['status']}   run id: {result['run_id']}")


def cmd_run(args: argparse.Namespace) -> int:
    from photo_curate.config import load_config
    from photo_curate.preflight import check_run

    cfg = load_config(args.config)
    deleting = args.apply and (args.action or cfg.actions.action) == "delete"
    yes = deleting or args.yes  # the question comes once every other check has passed
    checked = check_run(args.source, args.home, cfg.model_dump(mode="json"), args.apply,
                        args.action, yes)  # fmt: skip
    if deleting:
        _confirm_delete(args.yes, "--apply with action delete")
    kwargs = {
        "source": args.source,
        "home": str(checked.home.root),
        "config": cfg.model_dump(mode="json"),
        "apply": args.apply,
        "action": args.action,
        "full": getattr(args, "full", False),
        "yes": yes,
    }
    from photo_curate import local_server

    if local_server.use() and os.environ.get("CURATE_RUNNER") != "0":
        from photo_curate import preflight, runner

        code = runner.delegate(local_server.prefect_home(), kwargs, preflight.memo())
        if code is not None:
            raise Delegated(code)
    return _run_flow(kwargs)


class Delegated(Exception):
    """The flow ran in the warm runner's child, which printed everything: exit with its code."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def run_delegated(kwargs: dict[str, Any]) -> int:
    """In the runner's child: the flow call as `curate run` would make it, with its exit code."""
    interrupts.install()
    code = guarded("run", lambda: _run_flow(kwargs))
    return finish(code)


def _run_flow(kwargs: dict[str, Any]) -> int:
    from flows.curate import curate

    try:
        with _cli_run_settings():
            result = curate(**kwargs)
    except RuntimeError as e:  # before the flow began: its server went away since the checks
        from photo_curate import local_server

        url = local_server.recover(e)
        if url is None:
            raise
        from prefect.settings import PREFECT_API_URL, temporary_settings

        if sys.stderr.isatty():  # a person at a terminal; a script sees only the outcome
            sys.stderr.write(f"curate: the local Prefect server did not answer; now {url}\n")
        with _cli_run_settings(), temporary_settings(updates={PREFECT_API_URL: url}):
            result = curate(**kwargs)
    _print_result(result)
    stopped = (result.get("applied") or {}).get("stopped")
    if stopped:
        raise Stopped(f"apply stopped: {stopped}")
    if result["status"] == "validation_failed":
        raise ValidationFailed("validation failed: nothing destructive was done")
    return 0


def _cli_run_settings() -> contextlib.AbstractContextManager[object]:
    """Prefect settings for a flow run started by `curate run` in this process.

    Flow-run heartbeats are off unless PREFECT_FLOWS_HEARTBEAT_FREQUENCY is set: Prefect's
    heartbeat thread sleeps in 1 s steps and the run's exit waits for it (0-1 s on every run,
    a sixth of an unchanged re-run), while a killed CLI run is already caught by the next
    run (`runs` marks it failed). Runs started by a worker (prefect.yaml) keep heartbeats.
    """
    if os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY"):
        return contextlib.nullcontext()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def cmd_serve(args: argparse.Namespace) -> int:
    """`flow.serve`: a deployment with a cron schedule, run by this process until stopped."""
    from photo_curate.config import load_config
    from photo_curate.preflight import check_run

    if not os.environ.get("PREFECT_API_URL"):
        raise UserError(
            "curate serve needs a Prefect server: start one with `make prefect-server` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    cfg = load_config(args.config)
    checked = check_run(args.source, args.home, cfg.model_dump(mode="json"))
    src = checked.source.path
    if args.timezone:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(args.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise UserError(f"--timezone {args.timezone!r}: unknown time zone") from None
    try:
        from prefect.schedules import Cron

        schedule = Cron(args.cron, timezone=args.timezone)
    except ValueError as exc:
        raise UserError(f"--cron {args.cron!r}: {str(exc).splitlines()[0]}") from None
    from flows.curate import curate

    curate.serve(
        name=args.name or f"serve-{src.name or 'collection'}",
        schedules=[schedule],
        parameters={
            "source": str(src),
            "home": str(checked.home.root),
            "config": cfg.model_dump(mode="json"),
            "apply": False,
        },
        global_limit=1,
        description=f"Dry-run curation of {src} ({args.cron})",
        tags=["photo-curate", "serve"],
        pause_on_shutdown=False,
    )
    return 0


def _confirm_delete(yes: bool, what: str) -> None:
    """Deleted files cannot come back: say so, and ask on a terminal; without one only --yes
    goes on."""
    msg = f"{what} removes files permanently: deleted files cannot come back"
    if yes:
        sys.stderr.write(f"curate: {msg}\n")
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UserError(f"{msg}; repeat with --yes to delete, or use --action quarantine")
    sys.stderr.write(f"curate: {msg}. Type 'delete' to go on: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip() != "delete":
        raise UserError("not deleting: nothing was changed")


def cmd_demo(args: argparse.Namespace) -> int:
    from photo_curate.home import Home
    from photo_curate.preflight import writable_folder
    from photo_curate.sample import build_collection

    home = Home.resolve(args.home)
    writable_folder(home.root, "--home", [])
    sample = home.ensure().root / "sample"
    photos = sample / "photos"
    if not photos.exists():
        print(f"building the sample collection in {photos} ...", flush=True)
        build_collection(sample)
    args.source, args.config, args.apply, args.action, args.yes = (
        str(photos),
        None,
        False,
        None,
        False,
    )
    args.home = str(home.root)
    return cmd_run(args)


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from photo_curate import catalog
    from photo_curate.home import Home

    con = catalog.connect_readonly(Home.resolve(args.home))
    try:
        rel = con.execute(args.query)
    except duckdb.Error as exc:
        raise UserError(f"sql: {str(exc).splitlines()[0]}") from None
    if rel.description is None:
        return 0
    cols = [d[0] for d in rel.description]
    if args.format == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        for row in _iter_rows(rel):
            w.writerow(row)
    elif args.format == "json":
        rows = [dict(zip(cols, r, strict=True)) for r in _iter_rows(rel)]
        json.dump(rows, sys.stdout, default=str, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        _print_table(cols, list(_iter_rows(rel)))
    return 0


def _iter_rows(rel: Any) -> Any:
    while batch := rel.fetchmany(10_000):
        yield from batch


def _print_table(cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    """A rich table on a terminal; plain aligned text (never folded) when piped."""
    cells = [["" if v is None else str(v).replace("\n", "\\n") for v in r] for r in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        t = Table()
        for c in cols:
            t.add_column(c, overflow="fold")
        for r in cells:
            t.add_row(*r)
        Console().print(t)
    else:
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
        print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
        for r in cells:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    print(f"({len(rows)} rows)")


def cmd_history(args: argparse.Namespace) -> int:
    from photo_curate import catalog
    from photo_curate.home import Home

    home = Home.resolve(args.home)
    con = catalog.connect_readonly(home)
    rel = con.execute(
        """WITH ch AS (
               SELECT run_id, count(*) FILTER (WHERE change = 'new') AS new,
                      count(*) FILTER (WHERE change = 'gone') AS gone
               FROM finding_changes GROUP BY run_id),
           disk AS (
               SELECT run_id,
                      count(DISTINCT path) FILTER (WHERE status = 'done'
                          AND action IN ('quarantine', 'trash', 'delete')) AS applied,
                      count(DISTINCT path) FILTER (WHERE status = 'done'
                          AND action = 'restore') AS undone
               FROM actions GROUP BY run_id)
           SELECT r.run_id, r.started_at::TIMESTAMP(0) AS started,
                  CASE WHEN r.status IN ('failed', 'interrupted') AND r.step IS NOT NULL
                       THEN r.status || ' (' || r.step || ')' ELSE r.status END AS status,
                  r.n_files, r.n_images, r.n_invalid, r.n_findings,
                  CASE WHEN s.previous_run_id IS NOT NULL
                       THEN printf('+%d/-%d', coalesce(ch.new, 0), coalesce(ch.gone, 0))
                  END AS "new/gone",
                  nullif(d.applied, 0) AS applied, nullif(d.undone, 0) AS undone,
                  round(epoch(r.finished_at) - epoch(r.started_at), 1) AS seconds, r.source
           FROM runs r LEFT JOIN run_sequence s USING (run_id) LEFT JOIN ch USING (run_id)
           LEFT JOIN disk d USING (run_id)
           ORDER BY r.started_at DESC LIMIT $limit""",
        {"limit": args.limit},
    )
    cols = [d[0] for d in rel.description]
    _print_table(cols, rel.fetchall())
    return 0


def _latest_run(home: Any) -> str:
    from photo_curate.runs import all_run_ids

    ids = all_run_ids(home)
    if not ids:
        raise UserError(f"no runs in {home.root}: run `curate run SOURCE` first")
    return ids[0]


def cmd_report(args: argparse.Namespace) -> int:
    from photo_curate.home import Home
    from photo_curate.report import build_report

    home = Home.resolve(args.home)
    run_id = args.run_id or _latest_run(home)
    print(build_report(home, run_id))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from photo_curate.home import Home
    from photo_curate.summary import human_size
    from tasks.apply import apply_plan, plan_size, planned_action

    home = Home.resolve(args.home)
    run_id = args.run_id or _latest_run(home)
    action = planned_action(home, run_id, args.action)  # also the one the run's config chose
    if action == "delete":
        n, size = plan_size(home, run_id)
        _confirm_delete(args.yes, f"applying run {run_id} deletes {n} files ({human_size(size)}):"
                        " action delete")  # fmt: skip
    res = apply_plan(home, run_id, action, confirm_delete=action == "delete")
    print(res.describe())
    if res.stopped:
        raise Stopped(f"apply stopped: {res.stopped}")
    if not res.success:
        raise ValidationFailed("apply: validation after applying failed")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from photo_curate.home import Home
    from tasks.apply import latest_undoable, undo_run

    home = Home.resolve(args.home)
    run_id = args.run_id
    if run_id is None:
        latest = latest_undoable(home)
        if latest is None:
            raise UserError(f"no run in {home.root} has moved files that are still away")
        run_id, n = latest
        print(f"undoing run {run_id}: {n} files it moved go back", flush=True)
    res = undo_run(home, run_id)
    print(res.describe())
    return 0 if res.success else 1


def cmd_decide(args: argparse.Namespace) -> int:
    from photo_curate import catalog, decisions
    from photo_curate.home import Home

    home = Home.resolve(args.home)
    if args.verdict == "retract":
        if len(args.paths) != 1:
            raise UserError("retract takes one decision id (see `curate decisions`)")
        decisions.retract(home, args.paths[0], args.note)
        print(f"decision {args.paths[0]} retracted: the next run no longer honours it")
    else:
        decision_id, named = decisions.decide(
            home, args.verdict, args.paths, args.kind, args.note, args.source
        )
        what = f" for {args.kind}" if args.kind else ""
        print(f"decision {decision_id}: {args.verdict}{what} on {len(named)} file(s) "
              f"({', '.join(n.path for n in named)}); the next run honours it")  # fmt: skip
    catalog.rebuild(home)  # the `decisions` view sees its first file
    return 0


def cmd_decisions(args: argparse.Namespace) -> int:
    from photo_curate import decisions
    from photo_curate.home import Home

    rows = decisions.listing(Home.resolve(args.home))
    if not rows:
        print("no decisions yet (`curate decide keep PATH` records one)")
        return 0
    _print_table(["decision", "decided_at", "verdict", "kind", "files", "note", "state"], rows)
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    import time
    import webbrowser

    from photo_curate.home import Home
    from photo_curate.report import build_report
    from photo_curate.review import Review, reviewed_apply

    home = Home.resolve(args.home)
    run_id = args.run_id or _latest_run(home)
    if not home.report_file(run_id).exists():
        build_report(home, run_id)
    review = Review(home, run_id, lambda: reviewed_apply(home, run_id))
    review.serve_in_thread()
    print(f"review of run {run_id}: {review.url}", flush=True)
    print("decisions are recorded as you click; Ctrl-C stops the review", flush=True)
    if not args.no_open:
        webbrowser.open(review.url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        review.close()
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    import datetime as dt

    from photo_curate import local_server

    home = local_server.prefect_home()
    if args.what == "stop":
        info = local_server.stop(home)
        print(f"stopped the local Prefect server (pid {info.pid}, {info.ui})" if info
              else f"no local Prefect server runs for PREFECT_HOME {home}")  # fmt: skip
        return 0
    if args.what == "start":
        info = local_server.start(home, idle=args.idle_hours)
    else:
        info = local_server.find(home)
        if info is None:
            print(f"no local Prefect server runs for PREFECT_HOME {home} (the next `curate run` "
                  "without PREFECT_API_URL starts one)")  # fmt: skip
            return 0
    since = dt.datetime.fromtimestamp(info.started_at).strftime("%Y-%m-%d %H:%M")
    idle = f"stops after {info.idle_hours:g} h unused" if info.idle_hours else "no idle stop"
    print(f"local Prefect server: UI {info.ui}, API {info.url}\n"
          f"  pid {info.pid}, since {since}, {idle}; state and log in "
          f"{local_server.state_dir(home)}; `curate server stop` stops it")  # fmt: skip
    if os.environ.get("PREFECT_API_URL"):
        print(f"  (this shell's PREFECT_API_URL={os.environ['PREFECT_API_URL']} is used instead)")
    return 0


COMMANDS = {
    "run": cmd_run,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "server": cmd_server,
    "sql": cmd_sql,
    "history": cmd_history,
    "decide": cmd_decide,
    "decisions": cmd_decisions,
    "review": cmd_review,
    "report": cmd_report,
    "apply": cmd_apply,
    "undo": cmd_undo,
}


def _interrupted_line(exc: BaseException, verb: str) -> str:
    """One line for an interrupt: what was stopped and how to go on."""
    from photo_curate.runs import ended_by

    what = "SIGTERM" if getattr(exc, "signum", None) == 15 else "Ctrl-C"
    if type(exc).__name__ == "TerminationSignal":
        what = "SIGTERM"
    where = getattr(exc, "where", None)
    if where:
        return f"interrupted ({what}) {where}"
    runs = sys.modules.get("photo_curate.runs")
    row = getattr(runs, "last_written", None) if runs else None
    if verb in ("run", "demo") and row and row.get("status") == "interrupted":
        _status, error = ended_by(exc, row.get("step"))
        return (f"{error}: run {row['run_id']} is recorded as interrupted; nothing of it is "
                "left running (`curate run` starts again)")  # fmt: skip
    return f"interrupted ({what})"


def main(argv: list[str] | None = None) -> int:
    interrupts.install()
    verb = {"v": "command"}

    def command() -> int:
        args = build_parser().parse_args(argv)
        verb["v"] = args.verb
        setup_env()
        return COMMANDS[args.verb](args)

    return guarded(verb, command)


def guarded(verb: str | dict[str, str], fn: Any) -> int:
    """Run `fn`; every way it can end becomes an exit code and at most one line on stderr."""
    name = lambda: verb if isinstance(verb, str) else verb["v"]  # noqa: E731
    try:
        return fn()
    except Delegated as done:
        return done.code
    except UserError as exc:
        sys.stderr.write(f"curate: {exc}\n")
        return exc.exit_code
    except (ValidationFailed, Stopped) as exc:
        sys.stderr.write(f"curate: {exc}\n")
        return exc.exit_code
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "TerminationSignal":
            interrupts.stopping()
            sys.stderr.write(f"curate: {_interrupted_line(exc, name())}\n")
            return 130
        if isinstance(exc, SystemExit) or os.environ.get("CURATE_DEBUG") == "1":
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        sys.stderr.write(
            f"curate: {name()} failed: {type(exc).__name__}: {first} "
            "(CURATE_DEBUG=1 shows the traceback)\n"
        )
        return 3


def _fast_exit_ok() -> bool:
    """True when Prefect talks to a real server (no temporary server child to stop at exit)."""
    if "prefect" not in sys.modules:
        return False
    try:
        from prefect.settings import get_current_settings

        return bool(get_current_settings().api.url)
    except Exception:
        return False


def finish(code: int) -> int:
    """Before leaving: Prefect's log and event queues drained when a server was used (a few
    seconds at most after an interrupt), and after an interrupt nothing of ours left."""
    if _fast_exit_ok():
        wait = 3 if code == 130 else 10
        try:
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=wait)
            EventsWorker.drain_all(timeout=wait)
        except BaseException:
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    if code == 130:
        interrupts.kill_descendants()
    return code


def entry() -> None:
    """Console script: run, then leave without a second of interpreter teardown (with a
    Prefect server in use; with Prefect's temporary server the normal exit stops it)."""
    code = finish(main())
    if _fast_exit_ok() or "prefect" not in sys.modules:
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
