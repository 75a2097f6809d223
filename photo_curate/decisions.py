"""A person's verdicts that every later run honours: `HOME/data/decisions/<id>.parquet`.

Append-only: a decision is one file (one row per file it names), never changed; `retract`
is a decision too. A decision names files by their content (sha256) as well as their path at
the time, so it follows a file that is renamed or moved. The findings step reads the active
ones (`active_sql`): `keep` (never planned for removal), `not-duplicate` (never grouped with
each other), `ignore` (not reported for a kind, or at all), `remove` (planned for the action
even where the rules only say review).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from photo_curate import catalog
from photo_curate.errors import UserError
from photo_curate.home import Home
from photo_curate.integrity import files_expr
from photo_curate.summary import KIND_LABELS
from photo_curate.tableio import RowWriter

VERDICTS = ("keep", "not-duplicate", "ignore", "remove")
KINDS = tuple(KIND_LABELS)  # the finding kinds


@dataclass(frozen=True)
class Named:
    """A file a decision names, as the latest run of its SOURCE saw it."""

    path: str
    sha256: str
    source: str


def _new_id() -> str:
    return f"d{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"


def _source_expr(home: Home) -> str | None:
    return files_expr(home.table_dir("decisions"), ".parquet")


def active_sql(home: Home) -> str:
    """SELECT of the decisions in force (decision_id, verdict, kind, sha256, path, note)."""
    src = _source_expr(home)
    if src is None:
        return (
            "SELECT NULL::VARCHAR AS decision_id, NULL::VARCHAR AS verdict, "
            "NULL::VARCHAR AS kind, NULL::VARCHAR AS sha256, NULL::VARCHAR AS path, "
            "NULL::VARCHAR AS note WHERE false"
        )
    return f"""SELECT decision_id, verdict, kind, sha256, path, note
               FROM read_parquet({src}, union_by_name=true) d
               WHERE verdict <> 'retract'
                 AND decision_id NOT IN (
                     SELECT retracts FROM read_parquet({src}, union_by_name=true)
                     WHERE verdict = 'retract')"""


def digest(home: Home) -> str:
    """What the decisions in force are (a run's results depend on them)."""
    con = duckdb.connect()
    try:
        rows = con.execute(f"SELECT * FROM ({active_sql(home)}) ORDER BY ALL").fetchall()
    finally:
        con.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _clean(path: str) -> str:
    p = path.replace(os.sep, "/").strip()
    while p.startswith("./"):
        p = p[2:]
    return p


def resolve(home: Home, paths: list[str], source: str | None = None) -> list[Named]:
    """The files `paths` (relative to SOURCE) name in the latest run of their SOURCE (the
    catalog's `latest_images`); one user error for a path no run knows, or one that several
    SOURCEs hold (name --source)."""
    con = catalog.connect_readonly(home)
    try:
        if not con.execute("SELECT count(*) FROM latest_runs").fetchall()[0][0]:
            raise UserError(f"no completed run in {home.root}: run `curate run SOURCE` first")
        out = []
        for raw in paths:
            rows = con.execute(
                """SELECT i.path, i.sha256, r.source FROM latest_images i
                   JOIN latest_runs r USING (run_id)
                   WHERE i.path = $p AND i.sha256 IS NOT NULL AND ($s IS NULL OR r.source = $s)""",
                {"p": _clean(raw), "s": source},
            ).fetchall()
            if not rows:
                where = f"SOURCE {source}" if source else "any SOURCE"
                raise UserError(
                    f"{raw}: no such file in the latest run of {where} "
                    "(paths are relative to SOURCE, as in the findings)"
                )
            if len({r[2] for r in rows}) > 1:
                raise UserError(f"{raw}: in several SOURCEs; name one with --source")
            out.append(Named(*rows[0]))
    finally:
        con.close()
    return out


def _check(home: Home, verdict: str, named: list[Named], kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise UserError(f"--kind {kind}: not a finding kind ({', '.join(KINDS)})")
    if verdict == "not-duplicate":
        if len(named) < 2:
            raise UserError("not-duplicate names at least two files (the ones that differ)")
        if len({n.sha256 for n in named}) < len(named):
            raise UserError("not-duplicate: two of these files are byte-identical copies")
    if len({n.source for n in named}) > 1:
        raise UserError("one decision names files of one SOURCE")
    opposite = {"keep": "remove", "remove": "keep"}.get(verdict)
    if opposite is None:
        return
    con = duckdb.connect()
    try:
        clash = con.execute(
            f"SELECT decision_id, path FROM ({active_sql(home)}) "
            "WHERE verdict = $v AND list_contains($shas, sha256) LIMIT 1",
            {"v": opposite, "shas": [n.sha256 for n in named]},
        ).fetchall()
    finally:
        con.close()
    if clash:
        raise UserError(
            f"{clash[0][1]}: decision {clash[0][0]} says {opposite}; "
            f"retract it first (`curate decide retract {clash[0][0]}`)"
        )


def _write(home: Home, rows: list[dict[str, Any]]) -> None:
    with RowWriter(home, "decisions", rows[0]["decision_id"]) as out:
        for row in rows:
            out.add(row)


def decide(
    home: Home,
    verdict: str,
    paths: list[str],
    kind: str | None = None,
    note: str | None = None,
    source: str | None = None,
) -> tuple[str, list[Named]]:
    """Record a verdict on the files `paths` name; returns its id and the files."""
    if verdict not in VERDICTS:
        raise UserError(f"unknown verdict {verdict!r} ({', '.join((*VERDICTS, 'retract'))})")
    named = resolve(home, paths, source)
    _check(home, verdict, named, kind)
    decision_id, at = _new_id(), datetime.now(UTC).replace(tzinfo=None)
    who = os.environ.get("USER") or os.environ.get("LOGNAME")
    _write(home, [
        {"decision_id": decision_id, "decided_at": at, "verdict": verdict, "sha256": n.sha256,
         "path": n.path, "source": n.source, "kind": kind, "note": note, "who": who,
         "retracts": None}
        for n in named
    ])  # fmt: skip
    return decision_id, named


def retract(home: Home, decision_id: str, note: str | None = None) -> None:
    """Take a decision back (recorded as a decision of its own)."""
    con = duckdb.connect()
    try:
        known = con.execute(
            f"SELECT count(*) FROM ({active_sql(home)}) WHERE decision_id = $d",
            {"d": decision_id},
        ).fetchall()[0][0]
    finally:
        con.close()
    if not known:
        raise UserError(f"no decision {decision_id} in force (see `curate decisions`)")
    at = datetime.now(UTC).replace(tzinfo=None)
    _write(home, [{
        "decision_id": _new_id(), "decided_at": at, "verdict": "retract", "sha256": None,
        "path": None, "source": None, "kind": None, "note": note,
        "who": os.environ.get("USER"), "retracts": decision_id,
    }])  # fmt: skip


def listing(home: Home) -> list[tuple[Any, ...]]:
    """Every decision, newest first, with whether it is in force."""
    src = _source_expr(home)
    if src is None:
        return []
    con = duckdb.connect()
    try:
        return con.execute(
            f"""WITH d AS (SELECT * FROM read_parquet({src}, union_by_name=true)),
                gone AS (SELECT retracts FROM d WHERE verdict = 'retract')
                SELECT decision_id, decided_at, verdict, coalesce(kind, '') AS kind,
                       string_agg(coalesce(path, retracts), ', ' ORDER BY path) AS files,
                       coalesce(any_value(note), '') AS note,
                       CASE WHEN verdict = 'retract' THEN ''
                            WHEN decision_id IN (SELECT retracts FROM gone) THEN 'retracted'
                            ELSE 'in force' END AS state
                FROM d GROUP BY decision_id, decided_at, verdict, kind
                ORDER BY decided_at DESC, decision_id DESC"""
        ).fetchall()
    finally:
        con.close()
