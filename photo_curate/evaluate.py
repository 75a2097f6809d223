"""Score a run against the ground truth of a built collection (precision and recall per kind).

Truth (from `photo_curate.sample`): every file's base photo and variant. Expected:
- invalid: truncated, empty and corrupt files;
- duplicate pairs: every pair of files of one base among original, copy, resized,
  recompressed, cropped and brightened (the same picture);
- dark, bright, blurry: the planted variants.
Predicted duplicate pairs are all pairs inside each predicted duplicate group. The keeper
check: in every predicted group holding the base's original, the keeper is the original or
its byte copy, never a resized, recompressed or cropped copy. "Untouched" photos (originals,
copies and brightened copies that are the best of their group) must not be planned for
removal unless they are a non-keeper duplicate.
"""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb

from photo_curate.home import Home
from photo_curate.sample import DUPLICATE_VARIANTS
from photo_curate.tableio import sql_literal_path

DEFECTS = {"dark": "dark", "bright": "bright", "blurry": "blurry"}
INVALID_VARIANTS = {"truncated", "empty", "corrupt"}


@dataclass(frozen=True)
class Score:
    kind: str
    expected: int
    predicted: int
    true_positive: int

    @property
    def precision(self) -> float:
        return self.true_positive / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive / self.expected if self.expected else 1.0


def read_truth(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["path"]: r for r in csv.DictReader(fh)}


def _pairs(groups: dict[str, list[str]]) -> set[frozenset[str]]:
    out: set[frozenset[str]] = set()
    for members in groups.values():
        for a, b in itertools.combinations(sorted(members), 2):
            out.add(frozenset((a, b)))
    return out


def evaluate(home: Home, run_id: str, truth_csv: Path) -> dict[str, object]:
    truth = read_truth(truth_csv)
    con = duckdb.connect()
    src = sql_literal_path(home.table_file("findings", run_id))
    rows = con.execute(
        f"SELECT path, kind, group_id, is_keeper, action FROM read_parquet({src})"
    ).fetchall()
    con.close()
    by_kind: dict[str, set[str]] = defaultdict(set)
    dup_groups: dict[str, list[str]] = defaultdict(list)
    keepers: dict[str, str] = {}
    planned: dict[str, str] = {}
    for path, kind, group, is_keeper, action in rows:
        by_kind[kind].add(path)
        if kind == "duplicate":
            dup_groups[group].append(path)
            if is_keeper:
                keepers[group] = path
        if action in ("quarantine", "trash", "delete"):
            planned[path] = action
    scores = []
    exp_invalid = {p for p, r in truth.items() if r["variant"] in INVALID_VARIANTS}
    scores.append(_score("invalid", exp_invalid, by_kind["invalid"]))
    by_base: dict[str, list[str]] = defaultdict(list)
    for p, r in truth.items():
        if r["variant"] in DUPLICATE_VARIANTS:
            by_base[r["base"]].append(p)
    exp_pairs = _pairs(by_base)
    got_pairs = _pairs(dup_groups)
    scores.append(
        Score("duplicate pairs", len(exp_pairs), len(got_pairs), len(exp_pairs & got_pairs))
    )
    for variant, kind in DEFECTS.items():
        expected = {p for p, r in truth.items() if r["variant"] == variant}
        scores.append(_score(kind, expected, by_kind[kind]))
    bad_keepers = []
    for group, keeper in keepers.items():
        variant = truth.get(keeper, {}).get("variant")
        members = {truth.get(m, {}).get("variant") for m in dup_groups[group]}
        if "original" in members and variant in ("resized", "recompressed", "cropped"):
            bad_keepers.append(keeper)
    # originals must stay; so must anything that is neither invalid nor a non-keeper duplicate
    wrongly_planned = []
    for path in planned:
        r = truth.get(path)
        if r is None or r["variant"] in INVALID_VARIANTS:
            continue
        in_dup_as_copy = path in by_kind["duplicate"] and path not in keepers.values()
        if r["variant"] == "original" or not in_dup_as_copy:
            wrongly_planned.append(path)
    return {
        "scores": scores,
        "bad_keepers": bad_keepers,
        "wrongly_planned": wrongly_planned,
        "n_groups": len(dup_groups),
    }


def _score(kind: str, expected: set[str], predicted: set[str]) -> Score:
    return Score(kind, len(expected), len(predicted), len(expected & predicted))


def format_scores(result: dict[str, object]) -> str:
    lines = [f"{'kind':<18}{'expected':>9}{'found':>7}{'correct':>8}{'precision':>11}{'recall':>8}"]
    for s in result["scores"]:  # type: ignore[attr-defined]
        lines.append(
            f"{s.kind:<18}{s.expected:>9}{s.predicted:>7}{s.true_positive:>8}"
            f"{100 * s.precision:>10.1f}%{100 * s.recall:>7.1f}%"
        )
    lines.append(
        f"keepers that are a resized/recompressed/cropped copy: {len(result['bad_keepers'])}"
    )  # type: ignore[arg-type]
    lines.append(f"untouched photos planned for removal: {len(result['wrongly_planned'])}")  # type: ignore[arg-type]
    return "\n".join(lines)
