"""The run configuration: typed, validated, recorded with every run.

A config file (YAML, TOML or JSON) overrides the defaults; unknown keys and bad values are
user errors with a one-line message. Defaults were calibrated on real photos (see
docs/quality.md, "How the defaults were chosen"); every threshold reaches the SQL rules as a
named parameter, never as text in the SQL.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from photo_curate.errors import UserError

FindingKind = Literal[
    "invalid", "duplicate", "near_duplicate", "dark", "bright", "blurry", "outlier"
]  # `unsupported` (a format no decoder here reads) is never acted on: not listed
Action = Literal["quarantine", "trash", "delete"]


class _Strict(BaseModel):
    # strict: `threads: true` or `dark_p99: "50"` are mistakes, not 1 and 50.0; no NaN or
    # infinity (a NaN threshold would make every comparison in the SQL rules false)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class AnalysisConfig(_Strict):
    """How files are read (the inspect step)."""

    workers: int = Field(0, ge=0, le=256, description="decode processes; 0 = one per core")
    max_pixels: int = Field(200_000_000, ge=1_000, description="larger images are invalid")
    max_file_mib: int = Field(2048, ge=1, description="larger files are invalid")
    include_hidden: bool = Field(False, description="also curate dot-files and dot-folders")
    incremental: bool = Field(
        True, description="reuse the last completed run's results for unchanged files"
    )


class SourcesConfig(_Strict):
    """How an archive or a URL manifest becomes the run's folder (see photo_curate/sources.py)."""

    max_unpacked_mib: int = Field(
        20 * 1024, ge=1, description="an archive expanding to more is refused (archive bomb)"
    )
    max_members: int = Field(200_000, ge=1, description="an archive with more is refused")
    max_ratio: float = Field(
        200.0, ge=1.0, description="uncompressed/compressed size above this: an archive bomb"
    )
    download_workers: int = Field(4, ge=1, le=64, description="concurrent downloads")
    timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="connect and per-read timeout of a download"
    )
    retries: int = Field(3, ge=0, le=20, description="retries of a failed download")
    backoff_seconds: float = Field(
        1.0, ge=0, le=600, description="first retry wait, doubled per retry (capped at 60 s)"
    )
    attempt_seconds: float = Field(
        900.0, gt=0, description="a transfer still going after this is cut and resumed"
    )
    max_download_mib: int = Field(2048, ge=1, description="a larger download fails")


class FastdupConfig(_Strict):
    """How fastdup's vectors are made (a child process per run) and how their neighbours are
    searched (photo_curate/neighbours.py)."""

    threads: int = Field(
        0, ge=0, le=256, description="0 = four per core (measured faster than one per core)"
    )
    nearest_neighbors_k: int = Field(
        10, ge=2, le=100, description="nearest other images of each image that make pairs"
    )
    timeout_seconds: int = Field(6 * 3600, ge=10)
    min_similarity: float = Field(0.70, ge=0.0, le=1.0, description="pairs below are not kept")
    exact_search_max: int = Field(
        50_000,
        ge=0,
        description="up to this many distinct images the neighbour search is exact; above, "
        "a deterministic HNSW index (its recall: docs/speed-and-scale.md)",
    )


class RulesConfig(_Strict):
    """Thresholds of the SQL rules in sql/ (passed as named parameters). See docs/quality.md, "How
    the defaults were chosen"."""

    # which embedding neighbours get their pixels compared (tasks/verify.py)
    verify_similarity: float = Field(
        0.75, ge=0.0, le=1.0, description="pairs this similar (fastdup) are compared by pixels"
    )
    # copy: the same picture (sql/relation.sql); differences on the 96 px comparison grid
    copy_min_overlap: float = Field(
        0.85, ge=0.70, le=1.0, description="share of each side in both views (small crops)"
    )
    copy_max_mean_diff: float = Field(3.0, ge=0, le=255, description="after tone matching")
    copy_max_worst_block: float = Field(10.0, ge=0, le=255, description="worst 8x8 window")
    copy_max_block_ratio: float = Field(
        5.5, ge=0, description="worst window over the typical one (a local change)"
    )
    copy_max_tone_shift: float = Field(
        40.0, ge=0, le=255, description="mean luminance change of a mild exposure correction"
    )
    copy_min_contrast_ratio: float = Field(0.75, ge=0, le=1)
    copy_min_chroma_corr: float = Field(0.85, ge=-1, le=1)
    copy_min_saturation_ratio: float = Field(0.70, ge=0, le=1)
    copy_max_chroma_shift: float = Field(8.0, ge=0, description="mild white balance change")
    copy_max_chroma_residual: float = Field(2.5, ge=0, description="colour grade, recolouring")
    copy_max_chroma_block: float = Field(8.0, ge=0)
    copy_min_detail_ratio: float = Field(0.80, ge=0, le=1, description="blur or sharpening")
    copy_max_fine_block: float = Field(
        8.0, ge=0, le=255, description="closer look: worst 16x16 window, a moved subject"
    )
    copy_alike_max_reframe: float = Field(
        0.01,
        ge=0,
        le=0.5,
        description="aligned corners this close (share of the long side): no crop",
    )
    copy_max_sharpness_diff: float = Field(
        0.5, ge=0, description="log10 detail at a common scale (512 px analysis)"
    )
    copy_max_flat_diff: float = Field(
        3.0, ge=0, le=255, description="plain images: mean RGB difference, no tone matching"
    )
    # variant: the same frame with a strong tone or blur change (relative rules only)
    variant_max_mean_diff: float = Field(4.0, ge=0, le=255)
    variant_max_worst_block: float = Field(20.0, ge=0, le=255)
    # similar: the same scene (near duplicates, clusters)
    similar_min_ncc: float = Field(
        0.60, ge=-1, le=1, description="luminance correlation of the aligned views"
    )
    duplicate_similarity: float = Field(
        0.80, ge=0.0, le=1.0, description="a copy at least this similar (fastdup): duplicate"
    )
    near_duplicate_similarity: float = Field(0.80, ge=0.0, le=1.0)
    cluster_similarity: float = Field(0.80, ge=0.0, le=1.0)
    graphic_flat_share: float = Field(
        0.40, ge=0, le=1, description="graphics (flat areas) are not judged for exposure/blur"
    )
    dark_p99: float = Field(90.0, ge=0, le=255, description="brightest 1 % below this: dark")
    dark_max: float = Field(
        120.0, ge=0, le=255, description="the brightest spot below this too (stars, lamps)"
    )
    dark_mean: float = Field(60.0, ge=0, le=255)
    dark_relative_drop: float = Field(30.0, ge=0, le=255)
    dark_relative_p95: float = Field(100.0, ge=0, le=255)
    bright_clipped: float = Field(0.30, ge=0, le=1, description="share of blown-out pixels")
    bright_mean: float = Field(150.0, ge=0, le=255)
    bright_highlights: float = Field(
        0.60, ge=0, le=1, description="share of the frame in the top tones (>= 200)"
    )
    bright_highlight_clipped: float = Field(0.10, ge=0, le=1)
    bright_relative_lift: float = Field(50.0, ge=0, le=255)
    bright_relative_clipped: float = Field(0.35, ge=0, le=1)
    blur_sharpness: float = Field(-2.4, description="log10 contrast-normalised Laplacian var")
    blur_falloff: float = Field(
        -0.7, description="sharpness at 256 px minus at 128 px below this: blurry"
    )
    blur_relative_drop: float = Field(
        1.0, ge=0, description="this much less sharp (log10) than a copy: blurry"
    )
    outlier_similarity: float = Field(0.60, ge=0.0, le=1.0)

    @field_validator("near_duplicate_similarity")
    @classmethod
    def _near_below_dup(cls, v: float, info: Any) -> float:
        dup = info.data.get("duplicate_similarity")
        if dup is not None and v > dup:
            raise ValueError("must not be above duplicate_similarity")
        return v


class ActionsConfig(_Strict):
    """What a plan does and what `--apply` may touch."""

    act_on: list[FindingKind] = Field(default_factory=lambda: ["duplicate", "invalid"])
    action: Action = "quarantine"
    keep: Literal["best", "newest", "oldest", "largest"] = "best"
    prefer_folders: list[str] = Field(default_factory=list)
    protected: list[str] = Field(
        default_factory=list, description="glob patterns (relative to SOURCE) never touched"
    )


MIN_AUTO_SHARD = 100
MAX_AUTO_SHARD = 10_000


class ExecutionConfig(_Strict):
    """Where the parallel steps run: this machine (default) or a Dask cluster (see
    docs/speed-and-scale.md, "Scale-out"). Changes no result, only where the work is done."""

    engine: Literal["local", "dask"] = Field(
        "local", description="local: one machine, as always; dask: shards as Dask tasks"
    )
    address: str | None = Field(
        None,
        min_length=1,
        max_length=300,
        description="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786; none: a local "
        "cluster of `workers` processes",
    )
    workers: int = Field(2, ge=1, le=256, description="worker processes of the local cluster")
    shard_images: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="images per shard (inspect, fastdup vectors); 0 = one shard per worker, "
        f"{MIN_AUTO_SHARD} to {MAX_AUTO_SHARD} images each",
    )
    connect_seconds: float = Field(
        10.0, gt=0, le=600, description="how long to wait for the scheduler to answer"
    )

    def shard_size(self, n: int, n_workers: int) -> int:
        """Images per shard for `n` images on `n_workers` workers. Each shard costs a decoder
        pool and a fastdup start (measured: 4 shards of 250 on 2 workers were 13 s slower than
        2 of 500), so one per worker; capped, so a big run still balances and retries small."""
        if self.shard_images:
            return self.shard_images
        per_worker = -(-n // max(1, n_workers))
        return min(MAX_AUTO_SHARD, max(MIN_AUTO_SHARD, per_worker))

    @field_validator("address")
    @classmethod
    def _scheduler_url(cls, v: str | None, info: Any) -> str | None:
        if v is None:
            return v
        if info.data.get("engine") != "dask":
            raise ValueError("only used with engine: dask")
        if not re.fullmatch(r"(tcp|tls)://[A-Za-z0-9.\-\[\]:]+:\d{1,5}", v):
            raise ValueError("expected a scheduler address like tcp://host:8786")
        return v


class CurateConfig(_Strict):
    analysis: AnalysisConfig = AnalysisConfig()
    fastdup: FastdupConfig = FastdupConfig()
    rules: RulesConfig = RulesConfig()
    actions: ActionsConfig = ActionsConfig()
    sources: SourcesConfig = SourcesConfig()
    execution: ExecutionConfig = ExecutionConfig()

    def cores(self) -> int:
        return os.cpu_count() or 1

    def workers(self) -> int:
        return self.analysis.workers or self.cores()

    def fastdup_threads(self) -> int:
        # fastdup's feature extraction waits on file reads and decodes: on 2 cores, 8 threads
        # ran 2,100 images in 11.6 s against 16.7 s with 2 (identical features); see
        # docs/speed-and-scale.md
        return self.fastdup.threads or min(32, 4 * self.cores())

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


MAX_CONFIG_BYTES = 1024**2  # a config is a few lines; a huge file is a mistake


def parse_mapping(text: str, suffix: str, origin: str = "config") -> dict[str, Any]:
    """Parse config text (by file suffix) into a mapping, or a one-line user error."""
    kind = suffix.lstrip(".") or "yaml"
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:  # its first line says nothing of where
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or type(exc).__name__
        raise UserError(f"{origin}: not valid {kind}: {where}{what}"[:300]) from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{origin}: not valid {kind}: {first[:200]}") from None
    except RecursionError:
        raise UserError(f"{origin}: not valid {kind}: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{origin}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _read_mapping(path: Path) -> dict[str, Any]:
    origin = f"config {path}"
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise UserError(f"{origin}: larger than {MAX_CONFIG_BYTES // 1024} KiB, not a config")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{origin}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    return parse_mapping(text, path.suffix.lower(), origin)


def config_from_mapping(data: dict[str, Any], origin: str = "config") -> CurateConfig:
    """Validate a mapping; the first problem becomes a one-line user error."""
    if not isinstance(data, dict):
        raise UserError(f"{origin}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return CurateConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = (
            ".".join(p if isinstance(p, str) and p.isprintable() else repr(p) for p in err["loc"])[
                :100
            ]
            or "(top level)"
        )
        msg = err["msg"].splitlines()[0] if err["msg"] else err["type"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        got = repr(err.get("input"))
        got = got if len(got) <= 80 else got[:77] + "..."
        raise UserError(f"{origin}: {where}: {msg} (got {got})") from None
    except RecursionError:
        raise UserError(f"{origin}: nested too deeply") from None


def load_config(path: str | os.PathLike[str] | None) -> CurateConfig:
    if path is None:
        return CurateConfig()
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {p}")
    return config_from_mapping(_read_mapping(p), origin=f"config {p}")


def recorded_config(run: dict[str, Any]) -> CurateConfig:
    """The config a run recorded (its `config` JSON), typed: a setting removed since is
    dropped and one added since takes its default, so no reader keeps defaults of its own.
    A section that no longer validates takes its defaults (an old run stays readable)."""
    try:
        data = json.loads(run.get("config") or "{}")
    except (TypeError, ValueError):
        data = {}
    sections: dict[str, Any] = {}
    for name, field in CurateConfig.model_fields.items():
        values = data.get(name) if isinstance(data, dict) else None
        model = field.annotation
        if not isinstance(values, dict) or not isinstance(model, type):
            continue
        known = {k: v for k, v in values.items() if k in model.model_fields}
        try:
            sections[name] = model.model_validate(known)
        except ValidationError:
            continue
    return CurateConfig(**sections)
