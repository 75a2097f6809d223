"""Download the URLs of a manifest into a folder inside HOME: concurrent, retried, resumable.

A manifest is a text or CSV file of `url[,path[,sha256]]` lines (blank lines, `#` comments and
a `url,...` header allowed). Each file is written to a `.part` file outside the download folder
and moved into it only when complete (Content-Length or Content-Range checked, optional sha256
verified), so the folder never holds half a photo. A stalled, failing or truncated transfer is
retried with backoff, resuming with a Range request when the server supports it. A file that is
already in the folder is not fetched again. Every URL's outcome is one row of `downloads`.
"""

from __future__ import annotations

import csv
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from photo_curate import __version__
from photo_curate.errors import UserError
from photo_curate.hashing import sha256_file
from photo_curate.safe_paths import UnsafePath, inside, safe_relpath

MAX_BACKOFF_S = 60.0
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_SHA = re.compile(r"^[0-9a-fA-F]{64}$")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Entry:
    """One manifest line."""

    line: int
    url: str
    path: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Options:
    workers: int = 4
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0
    attempt_s: float = 900.0  # a server that trickles defeats the read timeout, not this
    max_bytes: int = 2 * 1024**3


class _Retry(Exception):
    """A failure that another attempt may fix (5xx, timeout, connection lost, truncated)."""

    def __init__(self, msg: str, http_status: int | None = None, wait_s: float | None = None):
        super().__init__(msg)
        self.http_status, self.wait_s = http_status, wait_s


class _Fail(Exception):
    """A failure no retry fixes (404, bad URL, too large, hash mismatch)."""

    def __init__(self, msg: str, http_status: int | None = None):
        super().__init__(msg)
        self.http_status = http_status


def read_manifest(path: Path) -> Iterator[Entry]:
    """The manifest's entries, streamed; a file that is not UTF-8 text is a user error."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            first = True
            reader = csv.reader(fh, skipinitialspace=True)
            for row in reader:
                cells = [c.strip() for c in row]
                if not cells or not cells[0] or cells[0].startswith("#"):
                    continue
                if first and cells[0].lower() == "url":
                    first = False
                    continue  # a header
                first = False
                yield Entry(
                    line=reader.line_num,
                    url=cells[0],
                    path=(cells[1] or None) if len(cells) > 1 else None,
                    sha256=(cells[2] or None) if len(cells) > 2 else None,
                )
    except UnicodeDecodeError as exc:
        raise UserError(f"manifest {path.name}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise UserError(f"manifest {path.name}: not a readable CSV: {exc}") from None


def target_path(entry: Entry) -> str:
    """Where an entry goes, relative to the download folder (UnsafePath if it would escape)."""
    if entry.path:
        return safe_relpath(entry.path)
    parts = [unquote(p) for p in urlsplit(entry.url).path.split("/")]
    parts = [p for p in parts if p not in ("", ".", "..")]
    if not parts:
        raise UnsafePath("the URL names no file: give a path in the second column")
    return safe_relpath("/".join(parts))


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise _Fail("not an http(s) URL")


class Downloader:
    """Fetch entries into `folder`, keeping partial files in `partial_dir` between attempts."""

    def __init__(self, folder: Path, partial_dir: Path, opts: Options):
        self.folder, self.partial_dir, self.opts = folder, partial_dir, opts
        self.client = httpx.Client(
            timeout=httpx.Timeout(opts.timeout_s),
            follow_redirects=True,
            # identity: byte ranges and Content-Length then count the file's own bytes
            headers={"User-Agent": f"photo-curate/{__version__}", "Accept-Encoding": "identity"},
            limits=httpx.Limits(max_connections=opts.workers),
        )
        self._claimed: dict[str, int] = {}  # target path -> manifest line
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def fetch(self, e: Entry) -> dict[str, Any]:
        """One entry's outcome row (never raises for a bad URL or a failing server)."""
        t0 = time.monotonic()
        row: dict[str, Any] = {"line": e.line, "url": e.url, "path": None, "status": "failed",
               "bytes": None, "sha256": None, "http_status": None, "attempts": 0,
               "resumed_from": None, "error": None}  # fmt: skip
        try:
            _check_url(e.url)
            if e.sha256 and not _SHA.match(e.sha256):
                raise _Fail("the third column is not a sha256 (64 hex digits)")
            rel = target_path(e)
            row["path"] = rel
            with self._lock:
                other = self._claimed.setdefault(rel, e.line)
            if other != e.line:
                raise _Fail(f"same path as line {other}: give a path in the second column")
            self._get(e, rel, row)
        except UnsafePath as exc:
            row["error"] = f"bad path: {exc}"
        except _Fail as exc:
            row["error"] = str(exc)
            row["http_status"] = row["http_status"] or exc.http_status
        except OSError as exc:
            row["error"] = f"cannot write: {exc.strerror or exc}"
        except Exception as exc:  # e.g. a URL httpx cannot parse: this URL fails, not the run
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["seconds"] = round(time.monotonic() - t0, 3)
        return row

    def _get(self, e: Entry, rel: str, row: dict[str, Any]) -> None:
        target = inside(self.folder, rel)
        if target.is_file():
            digest = sha256_file(target)
            if not e.sha256 or digest == e.sha256.lower():
                row.update(status="cached", bytes=target.stat().st_size, sha256=digest)
                return
            target.unlink()  # the file there is not the one the manifest asks for
        part = inside(self.partial_dir, rel + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        validator: list[str | None] = [None]
        while True:
            row["attempts"] += 1
            try:
                self._attempt(e.url, part, row, validator)
                break
            except _Retry as exc:
                row["http_status"] = exc.http_status
                if row["attempts"] > self.opts.retries:
                    raise _Fail(
                        f"{exc} (after {row['attempts']} attempts)", exc.http_status
                    ) from None
                time.sleep(self._backoff(row["attempts"], exc.wait_s))
        digest = sha256_file(part)
        if e.sha256 and digest != e.sha256.lower():
            part.unlink()
            raise _Fail(f"sha256 mismatch: the manifest says {e.sha256.lower()}, got {digest}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        row.update(status="downloaded", bytes=target.stat().st_size, sha256=digest)

    def _backoff(self, attempt: int, wait_s: float | None) -> float:
        base = min(MAX_BACKOFF_S, self.opts.backoff_s * 2 ** (attempt - 1))
        if wait_s is not None:  # the server's Retry-After, within reason
            return min(MAX_BACKOFF_S, max(base, wait_s))
        return base * (0.5 + random.random() / 2)

    def _attempt(self, url: str, part: Path, row: dict[str, Any], validator: list[Any]) -> None:
        """One GET; resumes `part` with a Range request; raises _Retry or _Fail."""
        offset = part.stat().st_size if part.exists() else 0
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator[0]:
                headers["If-Range"] = validator[0]
        try:
            with self.client.stream("GET", url, headers=headers) as r:
                self._receive(r, part, offset, row, validator)
        except httpx.TimeoutException as exc:
            what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for data"
            raise _Retry(f"timed out {what} ({self.opts.timeout_s:g} s)") from None
        except httpx.HTTPError as exc:  # connection refused or lost, body cut short
            raise _Retry(f"transfer failed: {type(exc).__name__}: {exc}") from None

    def _receive(self, r: httpx.Response, part: Path, offset: int, row: dict[str, Any],
                 validator: list[Any]) -> None:  # fmt: skip
        status = r.status_code
        row["http_status"] = status
        if status == 416 and offset:  # our partial file is not a prefix of theirs
            part.unlink(missing_ok=True)
            raise _Retry("the server refused to resume; starting over", status, 0.0)
        if status in _RETRY_STATUS:
            raise _Retry(f"HTTP {status} {r.reason_phrase}", status, _retry_after(r))
        if status not in (200, 206):
            raise _Fail(f"HTTP {status} {r.reason_phrase}", status)
        validator[0] = r.headers.get("ETag") or r.headers.get("Last-Modified")
        expected = _expected_total(r, offset)
        if status == 206:
            row["resumed_from"] = offset
        else:
            offset = 0  # the server sent the whole file
        if expected is not None and expected > self.opts.max_bytes:
            raise _Fail(f"too large: {expected} bytes (limit sources.max_download_mib)", status)
        size = offset
        deadline = time.monotonic() + self.opts.attempt_s
        with open(part, "ab" if offset else "wb") as out:
            for chunk in r.iter_raw():  # as received: a cut transfer keeps what arrived
                size += len(chunk)
                if size > self.opts.max_bytes:
                    part.unlink(missing_ok=True)
                    raise _Fail("too large (limit sources.max_download_mib)", status)
                out.write(chunk)
                if time.monotonic() > deadline:
                    raise _Retry(
                        f"too slow: {size} bytes after {self.opts.attempt_s:g} s "
                        "(limit sources.attempt_seconds)",
                        status,
                    )
        if expected is not None and size != expected:
            raise _Retry(f"truncated: got {size} of {expected} bytes", status)


def _expected_total(r: httpx.Response, offset: int) -> int | None:
    """The complete file's size the response announces, if it does."""
    if r.status_code == 206:
        m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
        if not m or int(m.group(1)) != offset:
            raise _Retry("the server answered a different range than asked", 206)
        return int(m.group(3)) if m.group(3) != "*" else None
    length = r.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length)
    return None


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def download_all(
    entries: Iterator[Entry], folder: Path, partial_dir: Path, opts: Options
) -> Iterator[dict[str, Any]]:
    """Outcome rows as downloads finish, with at most a few entries in flight per worker."""
    dl = Downloader(folder, partial_dir, opts)
    pending: set[Future[dict[str, Any]]] = set()
    try:
        with ThreadPoolExecutor(opts.workers, thread_name_prefix="download") as pool:
            for e in entries:
                pending.add(pool.submit(dl.fetch, e))
                if len(pending) >= opts.workers * 4:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        yield f.result()
            for f in pending:
                yield f.result()
    finally:
        dl.close()
