"""Apply a run's plan to the disk, and undo it: quarantine, trash or delete, journaled.

Safety rules, in order:
- only a run whose validation passed is applied; one writer per home and per SOURCE (locks);
- before touching a file: it must still be the file that was analysed (regular file, same
  size and mtime; for delete also the same sha256), not under a protected folder, and, for a
  duplicate, its group's keeper must still be there unchanged (never remove the last copy);
- every action has a durable `intent` in the journal before the disk changes and an outcome
  after; moves never overwrite (hard link + unlink, or a verified copy across devices);
- recovery after a crash looks at where each file of a dangling intent really is;
- after applying, great-expectations checks that files on disk before = after + moved +
  deleted, and that every moved file is at its destination with the same hash.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import urllib.parse
import uuid
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from prefect import task

from photo_curate import interrupts
from photo_curate.config import recorded_config
from photo_curate.errors import UserError
from photo_curate.hashing import sha256_file
from photo_curate.home import Home
from photo_curate.journal import Entry, Journal, last_states
from photo_curate.locking import exclusive
from photo_curate.preflight import check_writable
from photo_curate.progress import StepProgress
from photo_curate.runs import read_run, source_folder
from photo_curate.summary import human_size
from photo_curate.tableio import sql_literal_path
from tasks.findings import folder_globs
from tasks.validate import count_regular_files

DISK_ACTIONS = ("quarantine", "trash", "delete")
BATCH = 200
EXCLUDED = "excluded by the person who approved the apply"
_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass
class ApplyResult:
    run_id: str
    action: str
    done: int = 0
    skipped: int = 0
    failed: int = 0
    already: int = 0
    recovered: int = 0
    success: bool = True
    checks: list[str] = field(default_factory=list)
    skipped_examples: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the apply stopped before the end (a full disk)
    bytes_done: int = 0
    excluded: int = 0  # files left in place because a person excluded their photo

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        lines = [
            f"run {self.run_id}: {self.action}: {self.done} done ({human_size(self.bytes_done)}), "
            f"{self.skipped} skipped, {self.failed} failed, {self.already} already done before"
            + (f", {self.recovered} recovered from an interrupted apply" if self.recovered else "")
            + (f", {self.excluded} excluded at approval" if self.excluded else "")
        ]
        lines += [f"  skipped: {s}" for s in self.skipped_examples[:10]]
        if self.stopped:
            lines.append(f"  STOPPED: {self.stopped}")
        lines += [f"  check: {c}" for c in self.checks]
        lines.append("validation after applying: " + ("passed" if self.success else "FAILED"))
        return "\n".join(lines)


@dataclass
class UndoResult:
    run_id: str
    restored: int = 0
    skipped: int = 0
    failed: int = 0
    deleted_unrecoverable: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.failed == 0

    def describe(self) -> str:
        lines = [
            f"run {self.run_id}: {self.restored} restored, {self.skipped} skipped, "
            f"{self.failed} failed"
        ]
        if self.deleted_unrecoverable:
            lines.append(f"  {self.deleted_unrecoverable} deleted files cannot come back")
        lines += [f"  {n}" for n in self.notes[:20]]
        return "\n".join(lines)


# ---------------------------------------------------------------- file operations


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def move_no_clobber(src: Path, dst: Path, sha256: str | None) -> None:
    """Move src to dst, never overwriting dst; across devices copy, verify, then unlink."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    try:
        os.link(src, dst)  # fails if dst exists: no silent overwrite
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            _copy_verified(src, dst, sha256)
        elif exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EOPNOTSUPP):
            os.rename(src, dst)  # no hard links here; dst was checked just above
            _fsync_dir(dst.parent)
            return
        else:
            raise
    try:
        os.unlink(src)
    except OSError:
        # src cannot go (read-only or protected folder): take the new name back, so the
        # file stays exactly once, where it was, and no stray copy is left behind
        os.unlink(dst)
        raise
    _fsync_dir(dst.parent)
    _fsync_dir(src.parent)


def part_path(dst: Path) -> Path:
    """The temp name of a copy in progress: short and fixed-length (a 250-byte file name plus
    a suffix would exceed NAME_MAX), hidden, and derived from dst so recovery finds it."""
    digest = hashlib.sha256(os.fsencode(dst.name)).hexdigest()[:20]
    return dst.with_name(f".{digest}.curate-part")


def _copy_verified(src: Path, dst: Path, sha256: str | None) -> None:
    part = part_path(dst)
    part.unlink(missing_ok=True)
    h = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(part, "xb") as fout:
            while chunk := fin.read(1 << 20):
                h.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        if sha256 and h.hexdigest() != sha256:
            raise OSError(f"copy of {src} does not match its hash")
        st = os.stat(src)
        os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.link(part, dst)
    finally:
        part.unlink(missing_ok=True)


# ---------------------------------------------------------------- trash (freedesktop)


def _trash_dirs() -> list[Path]:
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    dirs = [data / "Trash"]
    for mount in {Path("/")} | {Path(p) for p in _mounts()}:
        for name in (f".Trash/{os.getuid()}", f".Trash-{os.getuid()}"):
            if (mount / name / "info").is_dir():
                dirs.append(mount / name)
    return dirs


def _mounts() -> Iterator[str]:
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                yield line.split()[1]
    except OSError:
        return


def find_in_trash(original: Path) -> Path | None:
    """Where send2trash put `original` (newest match), from the .trashinfo files."""
    best: tuple[str, Path] | None = None
    for trash in _trash_dirs():
        info_dir = trash / "info"
        for info in info_dir.glob("*.trashinfo"):
            try:
                text = info.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            raw = urllib.parse.unquote(fields.get("Path", ""))
            path = Path(raw) if raw.startswith("/") else trash.parent.parent / raw
            if os.path.normpath(path) != os.path.normpath(original):
                continue
            when = fields.get("DeletionDate", "")
            candidate = trash / "files" / info.name[: -len(".trashinfo")]
            if candidate.exists() and (best is None or when > best[0]):
                best = (when, candidate)
    return best[1] if best else None


def _trash_info_for(trashed: Path) -> Path:
    return trashed.parent.parent / "info" / (trashed.name + ".trashinfo")


# ---------------------------------------------------------------- plan and checks


@dataclass(frozen=True)
class Planned:
    path: str
    sha256: str | None
    size_bytes: int | None
    mtime_ns: int | None
    keeper: str | None
    keeper_size: int | None
    keeper_mtime_ns: int | None
    photo_id: str  # the files of one photo are applied together, or not at all
    role: str


def _planned(home: Home, run_id: str) -> list[Planned]:
    """The planned files, the files of one photo next to each other."""
    con = duckdb.connect()
    f = sql_literal_path(home.table_file("findings", run_id))
    p = sql_literal_path(home.table_file("plan", run_id))
    i = sql_literal_path(home.table_file("images", run_id))
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({p})").fetchall()}
    # a plan written before photos were sets: each file is a photo of its own
    set_col = "p.photo_id" if "photo_id" in cols else "p.path"
    role = "p.role" if "photo_id" in cols else "'primary'"
    rows = con.execute(
        f"""WITH keepers AS (
                SELECT d.path, k.path AS keeper FROM read_parquet({f}) d
                JOIN read_parquet({f}) k ON k.group_id = d.group_id AND k.is_keeper
                WHERE d.kind = 'duplicate' AND NOT d.is_keeper)
            SELECT p.path, p.sha256, p.size_bytes, p.mtime_ns, k.keeper,
                   ki.size_bytes, ki.mtime_ns, {set_col}, {role}
            FROM read_parquet({p}) p
            LEFT JOIN keepers k USING (path)
            LEFT JOIN read_parquet({i}) ki ON ki.path = k.keeper
            ORDER BY min(p.path) OVER (PARTITION BY {set_col}), {set_col}, p.path"""
    ).fetchall()
    con.close()
    return [Planned(*r) for r in rows]


def photo_sets(planned: list[Planned]) -> list[list[Planned]]:
    """The planned files grouped by photo (they are next to each other)."""
    out: list[list[Planned]] = []
    for p in planned:
        if out and out[-1][0].photo_id == p.photo_id:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def _batches(sets: list[list[Planned]], size: int) -> Iterator[list[list[Planned]]]:
    """Whole photos, about `size` files per batch."""
    batch: list[list[Planned]] = []
    n = 0
    for members in sets:
        batch.append(members)
        n += len(members)
        if n >= size:
            yield batch
            batch, n = [], 0
    if batch:
        yield batch


def _unchanged(path: Path, size: int | None, mtime_ns: int | None) -> str | None:
    """None if `path` is still the analysed regular file, else why not."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "vanished since the run"
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return "no longer a regular file"
    if size is not None and st.st_size != size:
        return "changed since the run (size)"
    if mtime_ns is not None and st.st_mtime_ns != mtime_ns:
        return "changed since the run (modification time)"
    return None


def _protected(path: str, patterns: list[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(path, g) for g in folder_globs(patterns))


def source_lock(source: Path) -> Path:
    """A lock file per SOURCE, outside SOURCE (we never write into the user's folder)."""
    key = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:24]
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / "photo-curate-locks"
    return base / f"{key}.lock"


# ---------------------------------------------------------------- recovery


def recover(home: Home, run_id: str, source: Path) -> int:
    """Resolve intents without an outcome (a crash mid-apply or mid-undo), then put back the
    moved files of any photo that is split between SOURCE and its destination. Returns how
    many intents were resolved."""
    states = last_states(home.table_file("actions", run_id, ".jsonl"))
    dangling = [e for e in states.values() if e.status == "intent"]
    if not dangling:
        return 0
    with Journal(home, run_id) as j:
        for e in dangling:
            states[e.op_id] = _resolve(e, source)
            j.write(states[e.op_id])
        j.sync()
        last = {e.path: e for e in states.values()}
        for members in photo_sets(_planned(home, run_id)):
            moved = [last[p.path] for p in members if _moved(last.get(p.path))]
            if moved and len(moved) < len(members):
                _put_back(source, moved, j)
    return len(dangling)


APPLY_MARKER = "disk-actions-open"  # HOME/runs/RUN_ID/...: an apply or undo is under way


def _open_marker(home: Home, run_id: str) -> Path:
    marker = home.run_dir(run_id) / APPLY_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return marker


def recover_interrupted(home: Home, source: Path) -> list[str]:
    """Settle the journals of applies and undos of `source` that were killed (their marker is
    still there): each photo is then wholly in SOURCE or wholly at its destination. Returns the
    runs settled; the next `curate run` calls this before it scans SOURCE."""
    settled = []
    for marker in sorted((home.root / "runs").glob(f"*/{APPLY_MARKER}")):
        run_id = marker.parent.name
        run = read_run(home, run_id)
        if run is None or Path(source_folder(run)) != source:
            continue
        recover(home, run_id, source)
        marker.unlink(missing_ok=True)
        settled.append(run_id)
    return settled


def _moved(e: Entry | None) -> bool:
    return bool(e and e.action in ("quarantine", "trash") and e.status == "done")


def _outcome(e: Entry, status: str, detail: str, destination: str | None = None) -> Entry:
    return Entry(
        run_id=e.run_id,
        op_id=e.op_id,
        path=e.path,
        action=e.action,
        status=status,
        destination=destination if destination is not None else e.destination,
        sha256=e.sha256,
        size_bytes=e.size_bytes,
        detail=detail,
    )


def _resolve(e: Entry, source: Path) -> Entry:
    src = source / e.path
    dst = Path(e.destination) if e.destination else None
    part = part_path(dst) if dst else None
    if part is not None and part.exists():
        part.unlink()
    if e.action == "restore":
        src, dst = dst, source / e.path  # a restore moves destination -> original
    at_src = src is not None and src.exists()
    at_dst = dst is not None and dst.exists()
    if e.action == "delete":
        if at_src:
            return _outcome(e, "failed", "interrupted before deleting: file kept")
        return _outcome(e, "done", "recovered: the file was deleted")
    if e.action == "trash" and e.status == "intent" and not at_src:
        found = find_in_trash(source / e.path)
        if found:
            return _outcome(e, "done", "recovered: found in the trash", str(found))
        return _outcome(e, "failed", "recovered: not at its place and not found in the trash")
    if at_src and not at_dst:
        return _outcome(e, "failed", "interrupted before the move: file left in place")
    if at_dst and not at_src:
        return _outcome(e, "done", "recovered: the move had completed")
    if at_src and at_dst:
        assert src is not None and dst is not None
        same = os.path.samefile(src, dst) or sha256_file(src) == sha256_file(dst)
        if same:
            os.unlink(src)  # the second name of a completed link or verified copy
            return _outcome(e, "done", "recovered: completed the interrupted move")
        return _outcome(e, "failed", "recovered: two different files; both left in place")
    return _outcome(e, "failed", "recovered: the file is at neither place")


# ---------------------------------------------------------------- apply


def applicable_run(home: Home, run_id: str) -> dict[str, Any]:
    """The run's record if its plan may be applied: validated, and not stopped before its
    analysis was complete (a run interrupted while applying is resumed)."""
    run = read_run(home, run_id)
    if run is None:
        raise UserError(f"no run {run_id} in {home.root}")
    status = run.get("status")
    if status != "completed" and not (status == "interrupted" and run.get("step") == "apply"):
        raise UserError(f"run {run_id} is {status}: only a completed, validated run is applied")
    return run


def planned_action(home: Home, run_id: str, action: str | None = None) -> str:
    """What applying the run's plan does: `action`, else the one its config recorded."""
    action = action or recorded_config(applicable_run(home, run_id)).actions.action
    if action not in DISK_ACTIONS:
        raise UserError(f"unknown action {action!r}")
    return action


def plan_size(home: Home, run_id: str) -> tuple[int, int]:
    """(files, bytes) the run's plan acts on."""
    path = home.table_file("plan", run_id)
    if not path.exists():
        return 0, 0
    con = duckdb.connect()
    try:
        n, size = con.execute(
            "SELECT count(*), coalesce(sum(size_bytes), 0) FROM read_parquet($p)",
            {"p": str(path)},
        ).fetchall()[0]
    finally:
        con.close()
    return int(n), int(size)


def apply_plan(
    home: Home,
    run_id: str,
    action: str | None = None,
    confirm_delete: bool | None = None,
) -> ApplyResult:
    """Apply (or resume applying) the plan of `run_id`; a delete only when `confirm_delete`."""
    run = applicable_run(home, run_id)
    actions = recorded_config(run).actions
    action = planned_action(home, run_id, action)
    if action == "delete" and confirm_delete is not True:
        raise UserError(
            "delete is permanent: deleted files cannot come back; "
            "repeat with --yes to delete, or use --action quarantine"
        )
    source = Path(source_folder(run))
    if not source.is_dir():
        raise UserError(f"SOURCE {source} of run {run_id} is gone")
    check_writable(source)
    with (
        exclusive(home.lock_file, f"curation home {home.root}"),
        exclusive(source_lock(source), f"SOURCE {source}"),
    ):
        return apply_locked(home, run_id, source, action, list(actions.protected))


def apply_locked(
    home: Home,
    run_id: str,
    source: Path,
    action: str,
    protected: list[str],
    exclude: Collection[str] = (),
) -> ApplyResult:
    """Apply with both locks held by the caller; the photos of the files in `exclude` stay."""
    res = ApplyResult(run_id, action)
    res.recovered = recover(home, run_id, source)
    marker = _open_marker(home, run_id)  # until the end: a kill leaves it for the next run
    journal_path = home.table_file("actions", run_id, ".jsonl")
    states = last_states(journal_path)
    by_path = {e.path: e for e in states.values()}
    planned = _planned(home, run_id)
    excluded = set(exclude)
    left_out = {p.photo_id for p in planned if p.path in excluded}
    files_before = count_regular_files(source, home.root)
    moved: list[tuple[str, Path, str | None]] = []
    qdir = home.quarantine_dir(run_id)
    with (
        interrupts.deferred() as stop,  # Ctrl-C: stop between two photos, never inside one
        Journal(home, run_id) as j,
        StepProgress("apply", len(planned), "files") as prog,
    ):
        for batch in _batches(photo_sets(planned), BATCH):
            todo: list[list[tuple[Planned, Entry]]] = []
            for members in batch:
                pending = [p for p in members if not _already_done(by_path.get(p.path))]
                res.already += len(members) - len(pending)
                if not pending:
                    continue
                if members[0].photo_id in left_out:
                    for p in pending:
                        op = f"{action}-{uuid.uuid4().hex[:12]}"
                        j.write(Entry(run_id, op, p.path, action, "skipped", detail=EXCLUDED))
                    res.skipped += len(pending)
                    res.excluded += len(pending)
                    continue
                why = _precheck_photo(source, pending, protected, action)
                if why:
                    for p in pending:
                        op = f"{action}-{uuid.uuid4().hex[:12]}"
                        j.write(Entry(run_id, op, p.path, action, "skipped", detail=why))
                    res.skipped += len(pending)
                    res.skipped_examples.append(f"{pending[0].path}: {why}")
                    continue
                intents = []
                for p in pending:
                    op = f"{action}-{uuid.uuid4().hex[:12]}"
                    dest = str(qdir / p.path) if action == "quarantine" else None
                    e = Entry(run_id, op, p.path, action, "intent", dest, p.sha256, p.size_bytes)
                    j.write(e)
                    intents.append((p, e))
                todo.append(intents)
            j.sync()  # intents are durable before the disk changes
            for intents in todo:
                if not res.stopped and interrupts.requested():
                    res.stopped = "interrupted"
                    stop.where = (
                        f"during apply of run {run_id} ({res.done} files done, the others "
                        f"untouched): `curate apply {run_id}` goes on, `curate undo {run_id}` "
                        "puts them back"
                    )
                if res.stopped:  # intents with no attempt: close them, the files are in place
                    for _p, e in intents:
                        j.write(_outcome(e, "failed", f"not attempted: {res.stopped}"))
                    res.failed += len(intents)
                    continue
                stopped = _apply_photo(source, intents, action, j, res, moved)
                if stopped:
                    res.stopped = stopped
            j.sync()
            prog.advance(sum(len(m) for m in batch))
            if res.stopped:
                break
    deleted = res.done if action == "delete" else 0
    files_after = count_regular_files(source, home.root)
    try:
        _validate_apply(home, run_id, res, files_before, files_after, moved, deleted)
        _refresh(home, run_id)
    except OSError as exc:
        if not (res.stopped and exc.errno in _FULL):
            raise  # with HOME itself full, the journal above is what counts
    if res.stopped:
        res.success = False
    marker.unlink(missing_ok=True)
    return res


def _already_done(last: Entry | None) -> bool:
    return bool(last and last.action in DISK_ACTIONS and last.status == "done")


def _precheck_photo(
    source: Path, members: list[Planned], protected: list[str], action: str
) -> str | None:
    """None if every file of the photo may be acted on, else why none of them is."""
    many = len(members) > 1
    for p in members:
        why = _precheck(source, p, protected)
        # a photo's files are deleted together: every one is checked before the first goes
        deleting = why is None and action == "delete" and many and p.sha256
        if deleting and sha256_file(source / p.path) != p.sha256:
            why = "content changed since the run (sha256)"
        if why:
            return f"{p.path}: {why} (the photo's other files stay with it)" if many else why
    return None


def _apply_photo(
    source: Path,
    intents: list[tuple[Planned, Entry]],
    action: str,
    j: Journal,
    res: ApplyResult,
    moved: list[tuple[str, Path, str | None]],
) -> str | None:
    """Act on the files of one photo; if one fails, the ones already moved are put back, so a
    photo is never split. Returns why the apply must stop (a full disk), else None."""
    done: list[tuple[Planned, Entry, str | None]] = []
    for p, e in intents:
        try:
            done.append((p, e, _do(source, p, e, action)))
        except Exception as exc:
            j.write(_outcome(e, "failed", f"{type(exc).__name__}: {exc}"[:300]))
            rest = [x for _p, x in intents[len(done) + 1 :]]
            for x in rest:
                j.write(_outcome(x, "failed", f"not attempted: {p.path} of its photo failed"))
            moved_here = [_outcome(x, "done", "ok", dest) for _p, x, dest in done]
            for x in moved_here:
                j.write(x)
            j.sync()
            res.failed += 1 + len(rest) + len(done)
            _put_back(source, moved_here, j)
            if isinstance(exc, OSError) and exc.errno in _FULL:
                return (
                    f"no space left for {e.destination or action} ({exc.strerror}); the "
                    f"file stays in place. Free space, then `curate apply {e.run_id}` goes on "
                    f"(or `curate undo {e.run_id}`)"
                )
            return None
    for p, e, dest in done:
        j.write(_outcome(e, "done", "ok", dest))
        res.done += 1
        res.bytes_done += p.size_bytes or 0
        if action != "delete":
            assert dest is not None
            moved.append((p.path, Path(dest), p.sha256))
    return None


def _put_back(source: Path, entries: list[Entry], j: Journal) -> int:
    """Restore moved files of a photo whose other files did not move (journaled as restores).
    A deleted file cannot come back. Returns how many were put back."""
    back = 0
    for e in entries:
        if e.action not in ("quarantine", "trash") or not e.destination:
            continue
        r = _restore_entry(e)
        j.write(r)
        j.sync()
        try:
            _move_back(e, source)
            j.write(_outcome(r, "done", "put back: its photo's other files did not move"))
            back += 1
        except Exception as exc:
            j.write(_outcome(r, "failed", f"{type(exc).__name__}: {exc}"[:300]))
    j.sync()
    return back


def _move_back(e: Entry, source: Path) -> None:
    """Put a moved file back at its place in SOURCE (never over a file); from the trash, its
    trash record goes too."""
    assert e.destination is not None
    move_no_clobber(Path(e.destination), source / e.path, e.sha256)
    if e.action == "trash":
        _trash_info_for(Path(e.destination)).unlink(missing_ok=True)


def _precheck(source: Path, p: Planned, protected: list[str]) -> str | None:
    if _protected(p.path, protected):
        return "under a protected folder"
    why = _unchanged(source / p.path, p.size_bytes, p.mtime_ns)
    if why:
        return why
    if p.keeper:
        kwhy = _unchanged(source / p.keeper, p.keeper_size, p.keeper_mtime_ns)
        if kwhy:
            return f"its keeper {p.keeper} is {kwhy}: not removing what may be the last copy"
    return None


def _do(source: Path, p: Planned, e: Entry, action: str) -> str | None:
    src = source / p.path
    if action == "quarantine":
        assert e.destination is not None
        move_no_clobber(src, Path(e.destination), p.sha256)
        return e.destination
    if action == "trash":
        from send2trash import send2trash

        send2trash(str(src))
        found = find_in_trash(src)
        if found is None:
            raise OSError("trashed, but not found in the trash afterwards")
        return str(found)
    # delete: only the very file that was analysed
    if p.sha256 and sha256_file(src) != p.sha256:
        raise OSError("content changed since the run (sha256): not deleted")
    os.unlink(src)
    _fsync_dir(src.parent)
    return None


def _validate_apply(
    home: Home,
    run_id: str,
    res: ApplyResult,
    before: int,
    after: int,
    moved: list[tuple[str, Path, str | None]],
    deleted: int,
) -> None:
    import pandas as pd

    from photo_curate.validation import Check, run_suites
    from tasks.validate import record_outcomes

    counts = pd.DataFrame([{"before": before, "after_plus_removed": after + len(moved) + deleted}])
    hashes = pd.DataFrame(
        [
            {"path": path, "at_destination": dest.exists(),
             "same_hash": dest.exists() and (sha is None or sha256_file(dest) == sha)}
            for path, dest, sha in moved
        ]
        or [{"path": None, "at_destination": True, "same_hash": True}]
    )  # fmt: skip
    outcomes = run_suites(
        {
            "apply_counts": (
                counts,
                [
                    Check(
                        "ExpectColumnPairValuesToBeEqual",
                        {"column_A": "before", "column_B": "after_plus_removed"},
                    )
                ],
            ),
            "apply_moved": (
                hashes,
                [
                    Check("ExpectColumnValuesToBeInSet", {"column": c, "value_set": [True]})
                    for c in ("at_destination", "same_hash")
                ],
            ),
        }
    )  # fmt: skip
    record_outcomes(home, run_id, "apply", outcomes)
    res.success = all(o.success for o in outcomes)
    res.checks = [  # the column tells apart two checks of one kind (they printed alike)
        f"{o.suite}: {o.expectation}{f' on {o.column}' if o.column else ''} "
        f"{'passed' if o.success else 'FAILED'} ({o.observed})"
        for o in outcomes
    ]


def _refresh(home: Home, run_id: str | None = None) -> None:
    """A fresh catalog, and the run's report showing what was done (if it has one)."""
    from photo_curate import catalog

    catalog.rebuild(home)
    if run_id and home.report_file(run_id).exists():
        from photo_curate.report import build_report

        build_report(home, run_id)


# ---------------------------------------------------------------- undo


def undo_run(home: Home, run_id: str) -> UndoResult:
    run = read_run(home, run_id)
    if run is None:
        raise UserError(f"no run {run_id} in {home.root}")
    source = Path(source_folder(run))
    journal_path = home.table_file("actions", run_id, ".jsonl")
    if not journal_path.exists():
        raise UserError(f"run {run_id} changed nothing on disk: nothing to undo")
    check_writable(source)
    res = UndoResult(run_id)
    with (
        exclusive(home.lock_file, f"curation home {home.root}"),
        exclusive(source_lock(source), f"SOURCE {source}"),
    ):
        recover(home, run_id, source)
        marker = _open_marker(home, run_id)
        states = last_states(journal_path)
        latest: dict[str, Entry] = {}
        for e in states.values():
            if e.status in ("done",):
                latest[e.path] = e
        todo = [e for e in latest.values() if e.action in ("quarantine", "trash")]
        res.deleted_unrecoverable = sum(1 for e in latest.values() if e.action == "delete")
        with Journal(home, run_id) as j:
            intents = []
            for e in sorted(todo, key=lambda x: x.path):
                original = source / e.path
                if original.exists() or original.is_symlink():
                    j.write(
                        _outcome(
                            _restore_entry(e), "skipped", "a file now exists at the original path"
                        )
                    )
                    res.skipped += 1
                    res.notes.append(
                        f"{e.path}: a file now exists at the original path; left in {e.destination}"
                    )
                    continue
                if not e.destination or not Path(e.destination).exists():
                    j.write(_outcome(_restore_entry(e), "failed", "not found where it was moved"))
                    res.failed += 1
                    res.notes.append(f"{e.path}: not found at {e.destination}")
                    continue
                r = _restore_entry(e)
                j.write(r)
                intents.append((e, r))
            j.sync()
            for e, r in intents:
                try:
                    _move_back(e, source)
                    j.write(_outcome(r, "done", "restored"))
                    res.restored += 1
                except Exception as exc:
                    j.write(_outcome(r, "failed", f"{type(exc).__name__}: {exc}"[:300]))
                    res.failed += 1
            j.sync()
        marker.unlink(missing_ok=True)
    remove_empty_folders(home.quarantine_dir(run_id))
    _refresh(home, run_id)
    return res


def remove_empty_folders(root: Path) -> None:
    """Remove the folders under `root` (and `root`) that are empty: a file that could not be
    put back keeps its folder."""
    if not root.is_dir():
        return
    for folder, _dirs, _files in os.walk(root, topdown=False):
        try:
            os.rmdir(folder)  # refuses a folder that is not empty
        except OSError:
            continue


def latest_undoable(home: Home) -> tuple[str, int] | None:
    """(run id, files) of the newest run whose moves (quarantine, trash) are not all undone."""
    folder = home.table_dir("actions")
    for journal in sorted(folder.glob("*.jsonl"), reverse=True) if folder.is_dir() else []:
        last: dict[str, Entry] = {}
        for e in last_states(journal).values():
            if e.status == "done":
                last[e.path] = e
        moved = sum(1 for e in last.values() if e.action in ("quarantine", "trash"))
        if moved:
            return journal.stem, moved
    return None


def _restore_entry(e: Entry) -> Entry:
    return Entry(
        run_id=e.run_id,
        op_id=f"restore:{e.op_id}",
        path=e.path,
        action="restore",
        status="intent",
        destination=e.destination,
        sha256=e.sha256,
        size_bytes=e.size_bytes,
    )


@task(name="apply", retries=0)
def apply_task(
    home_root: str,
    run_id: str,
    source: str,
    action: str,
    protected: list[str],
    exclude: list[str] | None = None,
) -> ApplyResult:
    """Apply the plan inside the flow (which holds the home and SOURCE locks); no automatic
    retries: a person should look at a failed apply."""
    home = Home(Path(home_root))
    return apply_locked(home, run_id, Path(source), action, protected, exclude or ())
