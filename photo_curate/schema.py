"""Column types of every catalog table, in one place.

The Parquet files are the data; `catalog.duckdb` only holds views over them. These types give
empty tables their shape (a view over zero files) and fix the Arrow schema of the rows that
Python writes, so a column never changes type between runs.
"""

from __future__ import annotations

import pyarrow as pa

# table -> ordered (column, DuckDB type)
TABLES: dict[str, list[tuple[str, str]]] = {
    "runs": [
        ("run_id", "VARCHAR"),
        ("started_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"),
        ("source", "VARCHAR"),
        ("status", "VARCHAR"),
        ("n_files", "BIGINT"),
        ("n_images", "BIGINT"),
        ("n_invalid", "BIGINT"),
        ("n_skipped", "BIGINT"),
        ("n_findings", "BIGINT"),
        ("config", "JSON"),
        ("counts", "JSON"),
        ("step_seconds", "JSON"),
        ("error", "VARCHAR"),
        ("flow_run_id", "VARCHAR"),
        ("home", "VARCHAR"),
        ("host", "VARCHAR"),
        ("version", "VARCHAR"),
        ("source_kind", "VARCHAR"),
        ("source_dir", "VARCHAR"),
        ("mode", "VARCHAR"),  # full, incremental or unchanged (see photo_curate/incremental.py)
        ("reused_from", "VARCHAR"),  # the run whose results were reused
        ("inspect_key", "VARCHAR"),  # hash of what decides an images row and a fastdup vector
        ("results_key", "VARCHAR"),  # hash of what decides the findings from the same files
        ("n_inspected", "BIGINT"),  # images read and decoded in this run
        ("n_extracted", "BIGINT"),  # fastdup vectors computed in this run
        ("step", "VARCHAR"),  # the step a failed or interrupted run was in
    ],
    "files": [
        ("run_id", "VARCHAR"),
        ("path", "VARCHAR"),
        ("entry_type", "VARCHAR"),
        ("size_bytes", "BIGINT"),
        ("mtime", "TIMESTAMP"),
        ("mtime_ns", "BIGINT"),
        ("inode", "BIGINT"),
        ("format_hint", "VARCHAR"),
        ("status", "VARCHAR"),
        ("reason", "VARCHAR"),
    ],
    "images": [
        ("run_id", "VARCHAR"),
        ("path", "VARCHAR"),
        ("sha256", "VARCHAR"),
        ("size_bytes", "BIGINT"),
        ("mtime", "TIMESTAMP"),
        ("mtime_ns", "BIGINT"),
        ("width", "INTEGER"),
        ("height", "INTEGER"),
        ("format", "VARCHAR"),
        ("mode", "VARCHAR"),
        ("frames", "INTEGER"),
        ("is_valid", "BOOLEAN"),
        ("error", "VARCHAR"),
        ("unsupported", "BOOLEAN"),  # a sound file no decoder here reads (JPEG XL, some RAW)
        ("blur", "DOUBLE"),
        ("mean", "DOUBLE"),
        ("min", "DOUBLE"),
        ("max", "DOUBLE"),
        ("stdv", "DOUBLE"),
        ("p05", "DOUBLE"),
        ("p50", "DOUBLE"),
        ("p95", "DOUBLE"),
        ("p99", "DOUBLE"),
        ("highlights", "DOUBLE"),  # share of the frame in the top tones (luminance >= 200)
        ("flat_share", "DOUBLE"),  # share of flat 3x3 areas: graphics, not photos, when high
        ("clipped_dark", "DOUBLE"),
        ("clipped_bright", "DOUBLE"),
        ("lapvar", "DOUBLE"),
        ("sharpness", "DOUBLE"),
        ("sharp_512", "DOUBLE"),
        ("sharp_256", "DOUBLE"),
        ("sharp_128", "DOUBLE"),
        ("captured_at", "TIMESTAMP"),
        ("camera_make", "VARCHAR"),
        ("camera_model", "VARCHAR"),
        ("orientation", "INTEGER"),
        ("jpeg_quality", "INTEGER"),
        ("analysis_id", "BIGINT"),
    ],
    "pairs": [
        ("run_id", "VARCHAR"),
        ("path_a", "VARCHAR"),
        ("path_b", "VARCHAR"),
        ("similarity", "DOUBLE"),
    ],
    # every candidate pair compared by its pixels, and what they say (sql/relation.sql)
    "pair_checks": [
        ("run_id", "VARCHAR"),
        ("path_a", "VARCHAR"),
        ("path_b", "VARCHAR"),
        ("similarity", "DOUBLE"),
        ("relation", "VARCHAR"),  # copy, variant, similar or none
        ("evidence", "VARCHAR"),  # what was compared and found, in words
        ("ncc", "DOUBLE"),
        ("overlap", "DOUBLE"),
        ("flat", "BOOLEAN"),
        ("raw_diff", "DOUBLE"),
        ("tone_shift", "DOUBLE"),
        ("contrast_ratio", "DOUBLE"),
        ("mean_diff", "DOUBLE"),
        ("worst_block", "DOUBLE"),
        ("block_ratio", "DOUBLE"),
        ("chroma_corr", "DOUBLE"),
        ("saturation_ratio", "DOUBLE"),
        ("chroma_shift", "DOUBLE"),
        ("chroma_residual", "DOUBLE"),
        ("worst_chroma_block", "DOUBLE"),
        ("detail_ratio", "DOUBLE"),
        ("blur_sigma", "DOUBLE"),
        ("blur_diff", "DOUBLE"),
        ("blur_worst_block", "DOUBLE"),
        ("fine_block", "DOUBLE"),  # the closer look from the files (NULL: not looked at)
        ("reframe", "DOUBLE"),  # aligned corners apart, share of the long side (0: framed alike)
        ("sharpness_diff", "DOUBLE"),
    ],
    "outliers": [
        ("run_id", "VARCHAR"),
        ("path", "VARCHAR"),
        ("similarity", "DOUBLE"),
        ("nearest", "VARCHAR"),
    ],
    "findings": [
        ("run_id", "VARCHAR"),
        ("path", "VARCHAR"),
        ("kind", "VARCHAR"),
        ("score", "DOUBLE"),
        ("group_id", "VARCHAR"),
        ("is_keeper", "BOOLEAN"),
        ("action", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("finding_id", "VARCHAR"),
    ],
    "clusters": [
        ("run_id", "VARCHAR"),
        ("cluster_id", "VARCHAR"),
        ("path", "VARCHAR"),
        ("size", "BIGINT"),
        ("mean_similarity", "DOUBLE"),
    ],
    "photo_files": [
        ("run_id", "VARCHAR"),
        ("photo_id", "VARCHAR"),
        ("path", "VARCHAR"),
        ("role", "VARCHAR"),  # primary, raw, still, sidecar, movie
        ("primary_path", "VARCHAR"),  # the file that stands for the photo in the findings
        ("n_files", "BIGINT"),
        ("size_bytes", "BIGINT"),
        ("mtime_ns", "BIGINT"),
    ],
    "plan": [
        ("run_id", "VARCHAR"),
        ("path", "VARCHAR"),
        ("action", "VARCHAR"),
        ("kinds", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("sha256", "VARCHAR"),
        ("size_bytes", "BIGINT"),
        ("mtime_ns", "BIGINT"),
        ("photo_id", "VARCHAR"),  # the files of one photo are applied together
        ("role", "VARCHAR"),
    ],
    "validations": [
        ("run_id", "VARCHAR"),
        ("at", "TIMESTAMP"),
        ("stage", "VARCHAR"),
        ("expectation", "VARCHAR"),
        ("column_name", "VARCHAR"),
        ("success", "BOOLEAN"),
        ("observed", "VARCHAR"),
    ],
    "downloads": [
        ("run_id", "VARCHAR"),
        ("line", "BIGINT"),
        ("url", "VARCHAR"),
        ("path", "VARCHAR"),
        ("status", "VARCHAR"),
        ("bytes", "BIGINT"),
        ("sha256", "VARCHAR"),
        ("http_status", "INTEGER"),
        ("attempts", "INTEGER"),
        ("resumed_from", "BIGINT"),
        ("seconds", "DOUBLE"),
        ("error", "VARCHAR"),
    ],
    "archive_members": [
        ("run_id", "VARCHAR"),
        ("archive", "VARCHAR"),
        ("member", "VARCHAR"),
        ("path", "VARCHAR"),
        ("member_type", "VARCHAR"),
        ("status", "VARCHAR"),
        ("size_bytes", "BIGINT"),
        ("reason", "VARCHAR"),
    ],
    "decisions": [  # append-only, one file per decision (photo_curate/decisions.py)
        ("decision_id", "VARCHAR"),
        ("decided_at", "TIMESTAMP"),
        ("verdict", "VARCHAR"),  # keep, not-duplicate, ignore, remove, retract
        ("sha256", "VARCHAR"),  # the file's content: the decision follows renames and moves
        ("path", "VARCHAR"),  # its path relative to SOURCE when decided
        ("source", "VARCHAR"),
        ("kind", "VARCHAR"),  # for ignore and remove: the finding kind (NULL: any)
        ("note", "VARCHAR"),
        ("who", "VARCHAR"),
        ("retracts", "VARCHAR"),  # for retract: the decision taken back
    ],
    "actions": [
        ("run_id", "VARCHAR"),
        ("op_id", "VARCHAR"),
        ("path", "VARCHAR"),
        ("action", "VARCHAR"),
        ("destination", "VARCHAR"),
        ("status", "VARCHAR"),
        ("at", "TIMESTAMP"),
        ("sha256", "VARCHAR"),
        ("size_bytes", "BIGINT"),
        ("detail", "VARCHAR"),
    ],
}

_ARROW = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([(name, _ARROW[typ]) for name, typ in TABLES[table]])


def batch_select(table: str) -> str:
    """A SELECT of the table's columns from one list parameter per column ($c0, $c1, ...),
    each cast to its type (JSON as its text): Python values in, Arrow columns out."""
    cols = ", ".join(
        f"CAST(unnest($c{i}) AS {'VARCHAR' if t == 'JSON' else t}) AS {_quote(n)}"
        for i, (n, t) in enumerate(TABLES[table])
    )
    return f"SELECT {cols}"


def empty_select(table: str) -> str:
    """A SELECT with the table's columns and no rows (for a view over zero files)."""
    cols = ", ".join(f"NULL::{typ} AS {_quote(name)}" for name, typ in TABLES[table])
    return f"SELECT {cols} WHERE false"


def cast_select(table: str, source: str) -> str:
    """SELECT the table's columns from `source`, cast to their types, in their order."""
    cols = ", ".join(f"CAST({_quote(n)} AS {t}) AS {_quote(n)}" for n, t in TABLES[table])
    return f"SELECT {cols} FROM {source}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
