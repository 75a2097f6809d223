"""The HTML report of a run: `HOME/reports/RUN_ID/index.html`, opened from disk.

Built from the run's tables alone (so `curate report RUN_ID` rebuilds it), with small cached
thumbnails (content-addressed by sha256, EXIF orientation applied), never the originals
inlined. Jinja2 autoescaping keeps file names as text. Each section is capped; the full lists
are in the catalog, and the report says which query gives them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from jinja2 import (
    Environment,
    FileSystemBytecodeCache,
    PackageLoader,
    Template,
    select_autoescape,
)
from PIL import Image, ImageOps

from photo_curate.changes import changes_since_previous
from photo_curate.config import recorded_config
from photo_curate.home import Home
from photo_curate.inspect_image import THUMB_SIZE, flatten, write_thumbnail
from photo_curate.runs import previous_run, read_run, source_folder
from photo_curate.summary import KIND_LABELS, compute, human_size, run_view

CAP_GROUPS = 60
CAP_MEMBERS = 12
CAP_IMAGES = 120


def _thumb_rel(sha: str) -> str:
    return f"{sha[:2]}/{sha}.jpg"


def make_thumbnail(
    home: Home,
    sha256: str | None,
    candidates: Callable[[], list[Path]],
    cache_dir: str | None = None,
) -> str | None:
    """Path of the cached thumbnail (relative to the thumbnail cache), made if missing.

    The inspect step writes them for every valid image; this is the fallback for a cache that
    was cleared, from the file where it is now (`candidates()`: SOURCE or quarantine).
    """
    if not sha256:
        return None
    rel = _thumb_rel(sha256)
    if os.path.exists(f"{cache_dir or home.thumbnails}/{rel}"):  # thousands a report: no Paths
        return rel
    out = home.thumbnails / rel
    for src in candidates():
        try:
            with Image.open(src) as opened:
                opened.draft("RGB", (THUMB_SIZE * 2, THUMB_SIZE * 2))
                upright = flatten(ImageOps.exif_transpose(opened))
            write_thumbnail(np.asarray(upright), str(out))
            return rel
        except Exception:
            continue
    return None


def _template(home: Home) -> Template:
    """The report template, its compiled form cached in HOME (compiling costs ~0.1 s a run)."""
    compiled = home.root / "cache" / "jinja"
    compiled.mkdir(parents=True, exist_ok=True)
    env = Environment(
        loader=PackageLoader("photo_curate", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=FileSystemBytecodeCache(str(compiled)),
    )
    env.filters["size"] = human_size
    return env.get_template("report.html.j2")


def _histogram(
    con: duckdb.DuckDBPyConnection, column: str, lo: float, hi: float, bins: int = 40
) -> list[int]:
    """Counts per bin of a metric of the valid images, counted by DuckDB (any collection size)."""
    rows = con.execute(
        f"""SELECT least(greatest(floor(({column} - $lo) / ($hi - $lo) * $bins), 0), $bins - 1)
                   ::INTEGER AS bin, count(*)
            FROM images WHERE is_valid AND isfinite({column}) GROUP BY bin""",
        {"lo": lo, "hi": hi, "bins": bins},
    ).fetchall()
    counts = [0] * bins
    for b, n in rows:
        counts[b] = n
    return counts


def svg_histogram(
    counts: list[int], lo: float, hi: float, marks: list[tuple[float, str]], label: str
) -> str:
    """A small inline SVG bar chart with threshold lines (no plotting library needed)."""
    w, h, pad = 520, 140, 24
    top = max(counts) or 1
    bw = (w - 2 * pad) / len(counts)
    bars = []
    for i, c in enumerate(counts):
        bh = (h - 2 * pad) * c / top
        x = pad + i * bw
        bars.append(
            f'<rect x="{x:.1f}" y="{h - pad - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{bh:.1f}" fill="#6a8caf"><title>{c}</title></rect>'
        )
    lines = []
    for value, name in marks:
        x = pad + (min(max(value, lo), hi) - lo) / (hi - lo) * (w - 2 * pad)
        lines.append(
            f'<line x1="{x:.1f}" y1="{pad - 6}" x2="{x:.1f}" y2="{h - pad}" stroke="#c0392b" '
            f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{pad}" font-size="10" '
            f'fill="#c0392b">{name}</text>'
        )
    axis = (
        f'<text x="{pad}" y="{h - 6}" font-size="10">{lo:g}</text>'
        f'<text x="{w - pad}" y="{h - 6}" font-size="10" text-anchor="end">{hi:g}</text>'
        f'<text x="{w / 2}" y="{h - 6}" font-size="11" text-anchor="middle">{label}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="{label}">{"".join(bars)}{"".join(lines)}{axis}</svg>'
    )


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None):
    rel = con.execute(sql, params or {})
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def _source_outcomes(home: Home, run_id: str) -> dict[str, Any] | None:
    """For an archive or manifest run: counts by status and the failed or skipped items."""
    for table, item, rest in (
        ("downloads", "url", "path, error AS reason"),
        ("archive_members", "member", "member_type AS path, reason"),
    ):
        path = home.table_file(table, run_id)
        if not path.exists():
            continue
        con = duckdb.connect()
        try:
            counts = dict(
                con.execute(
                    "SELECT status, count(*) FROM read_parquet($p) GROUP BY status ORDER BY 1",
                    {"p": str(path)},
                ).fetchall()
            )
            bad = _rows(
                con,
                f"SELECT {item} AS item, {rest} FROM read_parquet($p) "
                f"WHERE status IN ('failed', 'skipped') ORDER BY 1 LIMIT {CAP_IMAGES}",
                {"p": str(path)},
            )
        finally:
            con.close()
        return {"table": table, "counts": counts, "problems": bad}
    return None


def report_facts(home: Home, run_id: str, source: str | None) -> dict[str, Any]:
    """The run's counts, the previous run's and the changes between them: computed once by
    the flow for its summary, its result and the report."""
    summary = compute(home, run_id)
    prev_id = previous_run(home, run_id, source)
    return {
        "summary": summary,
        "previous_id": prev_id,
        "previous": compute(home, prev_id) if prev_id else None,
        "changes": changes_since_previous(home, run_id, source, prev_id),
    }


def build_report(
    home: Home,
    run_id: str,
    source_root: Path | None = None,
    facts: dict[str, Any] | None = None,
) -> Path:
    """Write the report; `facts` (report_facts) when the caller has them already."""
    run = read_run(home, run_id)
    if run is None:
        from photo_curate.errors import UserError

        raise UserError(f"no run {run_id} in {home.root}")
    source = Path(source_root or source_folder(run))
    con = duckdb.connect()
    for t in ("images", "findings", "clusters", "plan", "validations", "photo_files"):
        run_view(con, home, t, run_id)
    # a photo's other files, shown as badges on its card (RAW, XMP, MOV, ...)
    con.execute(
        r"""CREATE VIEW photo_extras AS
           SELECT primary_path AS path,
                  list(upper(regexp_extract(path, '\.([^./]*)$', 1)) || ' ' || role
                       ORDER BY path) AS extras
           FROM photo_files WHERE role <> 'primary' GROUP BY primary_path"""
    )
    actions_file = home.table_file("actions", run_id, ".jsonl")
    formats = _rows(
        con,
        """SELECT coalesce(format, 'unknown') AS format, count(*) AS n,
                  count(*) FILTER (WHERE NOT is_valid) AS n_invalid
           FROM images GROUP BY 1 ORDER BY n DESC, format""",
    )

    to_thumbs = os.path.relpath(home.thumbnails, home.report_dir(run_id))  # once, not per row
    cache_dir = str(home.thumbnails)

    def thumb(row: dict[str, Any]) -> str | None:
        def cands() -> list[Path]:
            return [source / row["path"], home.quarantine_dir(run_id) / row["path"]]

        rel = make_thumbnail(home, row.get("sha256"), cands, cache_dir)
        return None if rel is None else f"{to_thumbs}/{rel}"

    base_cols = (
        "f.path, f.kind, f.score, f.group_id, f.is_keeper, f.action, f.reason, i.sha256, "
        "i.width, i.height, i.size_bytes, i.sharpness, i.mean, i.p05, i.p95, i.blur, "
        "i.analysis_id, i.format, px.extras"
    )
    with_extras = "LEFT JOIN photo_extras px USING (path)"
    groups: dict[str, list[dict[str, Any]]] = {}
    for kind in ("duplicate", "near_duplicate"):
        rows = _rows(
            con,
            f"""WITH g AS (
                    SELECT group_id, count(*) AS n FROM findings WHERE kind = $kind
                    GROUP BY group_id ORDER BY n DESC, group_id LIMIT {CAP_GROUPS})
                SELECT {base_cols}, g.n FROM findings f JOIN g USING (group_id)
                JOIN images i USING (path) {with_extras} WHERE f.kind = $kind
                ORDER BY g.n DESC, f.group_id, f.is_keeper DESC, f.path""",
            {"kind": kind},
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            members = out.setdefault(r["group_id"], [])
            if len(members) < CAP_MEMBERS:
                r["thumb"] = thumb(r)
                members.append(r)
        groups[kind] = list(out.items())  # type: ignore[assignment]
    singles = {}
    order = {"dark": "f.score ASC", "bright": "f.score DESC", "blurry": "f.score ASC",
             "outlier": "f.score ASC", "invalid": "f.path"}  # fmt: skip
    for kind, ordering in order.items():
        rows = _rows(
            con,
            f"""SELECT {base_cols} FROM findings f JOIN images i USING (path) {with_extras}
                WHERE f.kind = $kind ORDER BY {ordering} LIMIT {CAP_IMAGES}""",
            {"kind": kind},
        )
        if kind != "invalid":
            for r in rows:
                r["thumb"] = thumb(r)
        singles[kind] = rows
    clusters = _rows(
        con,
        f"""WITH c AS (SELECT DISTINCT cluster_id, size FROM clusters
                       ORDER BY size DESC, cluster_id LIMIT {CAP_GROUPS // 2})
            SELECT c.cluster_id, c.size, i.path, i.sha256, i.analysis_id
            FROM clusters k JOIN c USING (cluster_id) JOIN images i USING (path)
            ORDER BY c.size DESC, c.cluster_id, i.path""",
    )
    cluster_groups: dict[str, list[dict[str, Any]]] = {}
    for r in clusters:
        if len(cluster_groups.setdefault(r["cluster_id"], [])) < CAP_MEMBERS:
            r["thumb"] = thumb(r)
            cluster_groups[r["cluster_id"]].append(r)
    plan = _rows(con, f"SELECT * FROM plan ORDER BY path LIMIT {CAP_IMAGES * 4}")
    n_plan = con.execute("SELECT count(*) FROM plan").fetchall()[0][0]
    validations = _rows(con, "SELECT * FROM validations ORDER BY stage, expectation")
    rules = recorded_config(run).rules
    plots = {
        "brightness (p99: brightest 1 % of pixels)": svg_histogram(
            _histogram(con, "p99", 0, 255), 0, 255,
            [(rules.dark_p99, "dark below")], "p99 of luminance",
        ),
        "mean brightness": svg_histogram(
            _histogram(con, "mean", 0, 255), 0, 255,
            [(rules.dark_mean, "dark"), (rules.bright_mean, "bright")],
            "mean luminance",
        ),
        "sharpness": svg_histogram(
            _histogram(con, "sharpness", -4, 1.5), -4, 1.5,
            [(rules.blur_sharpness, "blurry below")],
            "log10(Laplacian variance / contrast)",
        ),
    }  # fmt: skip
    actions = []
    if actions_file.exists():
        actions = _rows(
            con,
            "SELECT * FROM read_json($p, format='newline_delimited', ignore_errors=true) "
            'ORDER BY "at" LIMIT 500',
            {"p": str(actions_file)},
        )
    con.close()
    facts = facts or report_facts(home, run_id, run.get("source"))
    html = _template(home).render(
        run=run,
        source=_source_outcomes(home, run_id),
        formats=formats,
        summary=facts["summary"],
        previous=facts["previous"],
        previous_id=facts["previous_id"],
        changes=facts["changes"],
        kind_labels=KIND_LABELS,
        groups=groups,
        singles=singles,
        clusters=list(cluster_groups.items()),
        plan=plan,
        n_plan=n_plan,
        validations=validations,
        actions=actions,
        plots=plots,
        caps={"groups": CAP_GROUPS, "images": CAP_IMAGES},
    )
    out = home.report_file(run_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out
