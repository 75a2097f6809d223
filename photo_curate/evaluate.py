"""Score a run against the ground truth of a built collection (precision and recall per kind).

Truth (from `photo_curate.sample`, or bench collections in the same format): every file's
base photo and variant. Expected:
- invalid: truncated, empty and corrupt files; unsupported: the JPEG XL file (the RAW file
  is read: a lone picture, never to be planned);
- duplicate pairs: every pair of files of one base among DUPLICATE_VARIANTS (one picture);
- near-duplicate pairs: every pair of one base (one scene) when the base holds more than one
  picture (a similar shot: an edit, a stereo view, a burst frame; or a defect next to its
  twin); the copies of a picture join its group of similar shots;
- dark, bright, blurry: the planted variants.
Predicted pairs are all pairs inside each predicted group. The keeper check: in every
predicted duplicate group holding the base's original, the keeper is the original or its
byte copy, never a resized, recompressed or cropped copy. Nothing but invalid files and
non-keeper duplicates may be planned for removal; in particular no similar shot (SIMILAR
_VARIANTS), no source of an edit, no unsupported file (`similar_planned`, `wrongly_planned`).
"""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb

from photo_curate.home import Home
from photo_curate.sample import (
    DEFECT_VARIANTS,
    DUPLICATE_VARIANTS,
    INVALID_VARIANTS,
    SIMILAR_VARIANTS,
    UNSUPPORTED_VARIANTS,
)
from photo_curate.tableio import sql_literal_path

DEFECTS = {v: v for v in DEFECT_VARIANTS}


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


def expected_near_pairs(truth: dict[str, dict[str, str]]) -> set[frozenset[str]]:
    """Every pair of files of one scene that holds more than one picture (the copies of a
    picture join its similar-shot group too). The scene is the truth's optional `scene`
    column (frames of one video, a wallpaper's light and dark versions), else the base."""
    by_base: dict[str, list[str]] = defaultdict(list)
    for p, r in truth.items():
        by_base[r.get("scene") or r["base"]].append(p)
    out = set()
    for members in by_base.values():
        variants = {truth[p]["variant"] for p in members}
        pictures = {truth[p]["base"] for p in members}
        similar = variants & (set(SIMILAR_VARIANTS) | set(DEFECT_VARIANTS))
        if (similar or len(pictures) > 1) and len(members) > 1:
            out.update(frozenset(pr) for pr in itertools.combinations(sorted(members), 2))
    return out


def _must_stay(truth: dict[str, dict[str, str]], planned: set[str]) -> list[str]:
    """Planned files that must stay: similar shots, unsupported files, and the source of an
    edit when none of its copies is kept (one kept copy of a picture is enough)."""
    out = [
        p
        for p in planned
        if truth.get(p, {}).get("variant") in (*SIMILAR_VARIANTS, *UNSUPPORTED_VARIANTS)
    ]
    sources: dict[str, list[str]] = defaultdict(list)
    with_similar = {r["base"] for r in truth.values() if r["variant"] in SIMILAR_VARIANTS}
    for p, r in truth.items():
        if r["base"] in with_similar and r["variant"] in DUPLICATE_VARIANTS:
            sources[r["base"]].append(p)
    for files in sources.values():
        if files and all(p in planned for p in files):
            out.extend(files)
    return sorted(out)


def evaluate(home: Home, run_id: str, truth_csv: Path) -> dict[str, object]:
    truth = read_truth(truth_csv)
    con = duckdb.connect()
    src = sql_literal_path(home.table_file("findings", run_id))
    rows = con.execute(
        f"SELECT path, kind, group_id, is_keeper, action FROM read_parquet({src})"
    ).fetchall()
    con.close()
    by_kind: dict[str, set[str]] = defaultdict(set)
    groups: dict[str, dict[str, list[str]]] = {"duplicate": defaultdict(list),
                                               "near_duplicate": defaultdict(list)}  # fmt: skip
    keepers: dict[str, str] = {}
    planned: dict[str, str] = {}
    for path, kind, group, is_keeper, action in rows:
        by_kind[kind].add(path)
        if kind in groups:
            groups[kind][group].append(path)
            if is_keeper and kind == "duplicate":
                keepers[group] = path
        if action in ("quarantine", "trash", "delete"):
            planned[path] = action
    scores = []
    for kind, variants in (("invalid", INVALID_VARIANTS), ("unsupported", UNSUPPORTED_VARIANTS)):
        expected = {p for p, r in truth.items() if r["variant"] in variants}
        scores.append(_score(kind, expected, by_kind[kind]))
    by_base: dict[str, list[str]] = defaultdict(list)
    for p, r in truth.items():
        if r["variant"] in DUPLICATE_VARIANTS:
            by_base[r["base"]].append(p)
    exp_pairs = _pairs(by_base)
    got_pairs = _pairs(groups["duplicate"])
    scores.append(
        Score("duplicate pairs", len(exp_pairs), len(got_pairs), len(exp_pairs & got_pairs))
    )
    exp_near = expected_near_pairs(truth)
    got_near = _pairs(groups["near_duplicate"])
    scores.append(
        Score("near-duplicate pairs", len(exp_near), len(got_near), len(exp_near & got_near))
    )
    for variant, kind in DEFECTS.items():
        expected = {p for p, r in truth.items() if r["variant"] == variant}
        scores.append(_score(kind, expected, by_kind[kind]))
    bad_keepers = []
    for group, keeper in keepers.items():
        variant = truth.get(keeper, {}).get("variant")
        members = {truth.get(m, {}).get("variant") for m in groups["duplicate"][group]}
        if "original" in members and variant in ("resized", "recompressed", "cropped"):
            bad_keepers.append(keeper)
    similar_planned = _must_stay(truth, set(planned))
    protected = set(similar_planned)
    # nothing but invalid files and non-keeper duplicates of a real copy may be planned
    wrongly_planned = []
    for path in planned:
        r = truth.get(path)
        if r is None or r["variant"] in INVALID_VARIANTS:
            continue
        in_dup_as_copy = path in by_kind["duplicate"] and path not in keepers.values()
        if r["variant"] == "original" or path in protected or not in_dup_as_copy:
            wrongly_planned.append(path)
    return {
        "scores": scores,
        "bad_keepers": bad_keepers,
        "wrongly_planned": sorted(wrongly_planned),
        "similar_planned": similar_planned,
        "n_groups": len(groups["duplicate"]),
    }


def _score(kind: str, expected: set[str], predicted: set[str]) -> Score:
    return Score(kind, len(expected), len(predicted), len(expected & predicted))


def format_scores(result: dict[str, object]) -> str:
    lines = [f"{'kind':<22}{'expected':>9}{'found':>7}{'correct':>8}{'precision':>11}{'recall':>8}"]
    for s in result["scores"]:  # type: ignore[attr-defined]
        lines.append(
            f"{s.kind:<22}{s.expected:>9}{s.predicted:>7}{s.true_positive:>8}"
            f"{100 * s.precision:>10.1f}%{100 * s.recall:>7.1f}%"
        )
    lines.append(
        f"keepers that are a resized/recompressed/cropped copy: {len(result['bad_keepers'])}"  # type: ignore[arg-type]
    )
    lines.append(
        f"similar shots, edit sources, unsupported files planned: "
        f"{len(result.get('similar_planned', []))}"  # type: ignore[arg-type]
    )
    lines.append(f"untouched photos planned for removal: {len(result['wrongly_planned'])}")  # type: ignore[arg-type]
    return "\n".join(lines)
