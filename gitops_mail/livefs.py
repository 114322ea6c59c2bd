"""The one module that writes into chasquid's live config dir.

A change goes live as a journal of per-file ``os.replace`` calls, not as a
symlink flip: a running chasquid keeps reading the directory it started in,
and on a real server the config dir starts out as the package's plain
directory. Every file chasquid reads is therefore always a whole old or a whole
new file, and its 30 s reload never sees half of one.

Scratch space lives beside the config dir, on its filesystem, in
``<parent>/.<name>.gitops-mail/``: ``staging/`` (the whole future tree, built
by ``stage``; one at a time), ``checkpoint/<id>/`` (``files/<n>``: a hard link
to the live file that change number n replaces or removes; ``record.json``:
the changes, the directories made and removed, the old inventory) and
``journal.json`` (which checkpoint a swap or restore in progress goes back
to). Renames and links never cross filesystems, and the old files are never
modified in place, so a hard link keeps them byte for byte, modes included.

``swap`` checkpoints, writes the journal, replaces, writes the inventory
(``state_dir/inventory.json``: what gitops-mail manages) and deletes the
journal. A crash at any instant leaves, after ``recover``, exactly the old tree
(journal present) or the new one (journal gone). Durability comes from one
syncfs(2) per step rather than an fsync per file. Callers hold the state lock
around all of this and call ``recover`` first.

Only inventory files are ever replaced or removed; every other file is foreign
(an admin's own), copied into staging so that a pre-flight judges the exact
future tree, and never touched. A directory that a removal empties is removed
too, except the top-level ones (``domains/``, ``certs/``, ``hooks/``).

``fault_point(name)`` is a test-only hook: when the environment variable
``GITOPS_MAIL_FAULT`` equals ``name`` the process kills itself with SIGKILL
there. Swap calls it at each phase boundary (``FAULT_POINTS``); a test runs a
child with the variable set, then checks that ``recover`` restores the old tree.
Unset (always, outside tests) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mail import livescan
from gitops_mail.errors import GitopsMailError
from gitops_mail.livescan import Change, DesiredTree, Drift, FileSpec, Live, Want, owner_mode
from gitops_mail.localfs import atomic_write

__all__ = [
    "FAULT_ENV",
    "FAULT_POINTS",
    "Change",
    "Checkpoint",
    "DesiredTree",
    "Drift",
    "FileSpec",
    "LiveDir",
    "Staged",
    "fault_point",
]

FAULT_ENV = "GITOPS_MAIL_FAULT"
FAULT_POINTS = (
    "after-checkpoint",
    "after-journal",
    "mid-replace",  # after the first replace
    "after-replace",
    "after-inventory",
    "mid-restore",  # restore, after the first file is put back
)
INVENTORY = "inventory.json"
_NEW_DIR_MODE = 0o755
_ROOT_UID = 0
_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Staged:
    path: Path
    changes: tuple[Change, ...]
    tree: DesiredTree
    adopted: tuple[str, ...] = ()  # foreign files the tree takes over
    new_dirs: tuple[str, ...] = ()  # created by the swap, parents first
    gone_dirs: tuple[str, ...] = ()  # emptied by the swap and removed, children first


@dataclass(frozen=True)
class Checkpoint:
    id: str
    path: Path
    changes: tuple[Change, ...]
    adopted: tuple[str, ...] = ()  # after cleanup, their originals stay in adopted/<id>/


def fault_point(name: str) -> None:
    """Test-only: die by SIGKILL here when ``GITOPS_MAIL_FAULT`` equals ``name``."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class LiveDir:
    """chasquid's config dir, changed only through stage/swap/restore."""

    def __init__(self, config_dir: Path, state_dir: Path) -> None:
        self.config_dir = Path(os.path.realpath(config_dir))
        self.state_dir = Path(os.path.abspath(state_dir))
        self.work_dir = self.config_dir.parent / f".{self.config_dir.name}.gitops-mail"
        self.staging_dir = self.work_dir / "staging"
        self.journal_path = self.work_dir / "journal.json"
        self.inventory_path = self.state_dir / INVENTORY

    # --- reading -----------------------------------------------------------

    def inventory(self) -> dict[str, str]:
        """Path -> sha256 of every file gitops-mail installed; {} before the first apply."""
        raw = livescan.read_json(self.inventory_path)
        return {} if raw is None else dict(raw["files"])

    def drift(self) -> Drift:
        return livescan.drift(self.config_dir, self.inventory())

    def changes(self, tree: DesiredTree) -> tuple[Change, ...]:
        """What ``stage(tree)`` would change, computed without writing anything."""
        return livescan.plan(self.config_dir, tree, self.inventory()).changes

    # --- stage ---------------------------------------------------------------

    def stage(self, tree: DesiredTree) -> Staged:
        """Build the whole future tree in ``staging/``; nothing live is touched.

        Managed files absent from ``tree`` are removed; foreign files are kept
        (linked into staging), and one at a path ``tree`` wants is taken over:
        an "update", its original kept by the checkpoint and then ``cleanup``.
        """
        self._refuse_if_interrupted()
        plan = livescan.plan(self.config_dir, tree, self.inventory())
        self._prepare_work_dir()
        try:
            self._build(plan)
        except BaseException:
            self._clear_staging()
            raise
        return Staged(
            self.staging_dir, plan.changes, tree, plan.adopted, plan.new_dirs, plan.gone_dirs
        )

    def _build(self, plan: livescan.Plan) -> None:
        changed = {c.path for c in plan.changes}
        current = ""
        try:
            _make_dir(self.staging_dir, os.lstat(self.config_dir))
            for current in plan.dirs:
                _make_dir(self.staging_dir / current, plan.live.dirs.get(current))
            for current in plan.files:
                want = plan.wants.get(current) if current in changed else None
                self._stage_file(current, want, plan.live)
            current = ""
            _sync_filesystem(self.staging_dir)  # the new files' data, before any rename
        except OSError as exc:
            raise self._error(f"stage {self.staging_dir / current}", exc) from exc

    def _stage_file(self, path: str, want: Want | None, live: Live) -> None:
        """Write a changed file; link an unchanged or foreign one; copy a foreign symlink."""
        source, target = self.config_dir / path, self.staging_dir / path
        if want is not None:
            _write_file(target, want)
        elif stat.S_ISLNK(live.files[path].st_mode):
            target.symlink_to(livescan.link_target(source, self.config_dir))
        elif stat.S_ISREG(live.files[path].st_mode):
            _link_or_copy(source, target)
        # a FIFO, socket or device is foreign and not read by chasquid: not staged

    def discard(self, staged: Staged) -> None:
        """Remove a staged tree; idempotent."""
        if staged.path == self.staging_dir:
            self._clear_staging()

    def _clear_staging(self) -> None:
        shutil.rmtree(self.staging_dir, ignore_errors=True)

    # --- swap ------------------------------------------------------------------

    def swap(self, staged: Staged) -> Checkpoint:
        """Checkpoint, journal, replace, inventory, end journal; undone on the spot on error.

        After a failed swap the staged tree may be half used: discard it and stage again.
        """
        if staged.path != self.staging_dir or not staged.path.is_dir():
            raise GitopsMailError(f"the staged tree {staged.path} is gone", hint="stage again")
        self._refuse_if_interrupted()
        checkpoint = self._checkpoint(staged)
        fault_point("after-checkpoint")
        try:
            self._begin_journal(checkpoint.id, "swap")
            fault_point("after-journal")
            self._replace_all(staged)
            fault_point("after-replace")
            inventory = {p: hashlib.sha256(s.data).hexdigest() for p, s in staged.tree.items()}
            self._write_inventory(inventory)
            fault_point("after-inventory")
            self._end_journal()
        except GitopsMailError as exc:
            raise self._undo(checkpoint, exc) from exc
        except BaseException:  # KeyboardInterrupt, SystemExit: never leave half a tree
            self._undo(checkpoint, GitopsMailError("interrupted"))
            raise
        return checkpoint

    def _checkpoint(self, staged: Staged) -> Checkpoint:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        checkpoint_id = f"{stamp}-{os.getpid()}-{os.urandom(3).hex()}"
        root = self.work_dir / "checkpoint" / checkpoint_id
        saved: list[str] = []
        current = ""
        try:
            (root / "files").mkdir(parents=True)
            for index, change in enumerate(staged.changes):
                current = change.path
                if _link_into(self.config_dir / current, _backup(root, index)):
                    saved.append(current)
            current = ""
            self._write_record(root, staged, saved)
        except (OSError, GitopsMailError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            action = f"save a checkpoint of {self.config_dir / current} in {self.work_dir}"
            raise self._error(action, exc) from exc
        return Checkpoint(checkpoint_id, root, staged.changes, staged.adopted)

    def _write_record(self, root: Path, staged: Staged, saved: list[str]) -> None:
        _sync_filesystem(root)  # the links, before the record and the journal name them
        gone = [[d, *owner_mode(os.lstat(self.config_dir / d))] for d in staged.gone_dirs]
        record = {
            "changes": [[c.path, c.op] for c in staged.changes],
            "saved": saved,
            "new_dirs": list(staged.new_dirs),
            "gone_dirs": gone,
            "inventory": livescan.read_json(self.inventory_path),
        }
        atomic_write(root / "record.json", json.dumps(record).encode(), mode=0o600)

    def _replace_all(self, staged: Staged) -> None:
        current = ""
        try:
            for current in staged.new_dirs:
                _make_dir(self.config_dir / current, os.lstat(staged.path / current))
            for number, change in enumerate(staged.changes):
                current = change.path
                if change.op == "remove":
                    _unlink(self.config_dir / current)
                else:
                    os.replace(staged.path / current, self.config_dir / current)
                if number == 0:
                    fault_point("mid-replace")
            for current in staged.gone_dirs:
                _remove_empty_dir(self.config_dir / current)
            _sync_filesystem(self.config_dir)
        except OSError as exc:
            raise self._error(f"change {self.config_dir / current}", exc) from exc

    def _undo(self, checkpoint: Checkpoint, failure: GitopsMailError) -> GitopsMailError:
        try:
            self._roll_back(checkpoint.path)
            self._end_journal()
        except (OSError, GitopsMailError) as exc:
            return GitopsMailError(
                f"{failure.message}; putting the old tree back failed too: {livescan.reason(exc)}",
                hint=f"{failure.hint}; then run gitops-mail again: it finishes restoring first",
            )
        shutil.rmtree(checkpoint.path, ignore_errors=True)
        return GitopsMailError(f"{failure.message}; the live tree was restored", failure.hint)

    # --- restore, recover, cleanup ----------------------------------------------

    def restore(self, checkpoint: Checkpoint) -> None:
        """Put the tree and the inventory back as they were before ``swap``."""
        try:
            self._begin_journal(checkpoint.id, "restore")
            self._roll_back(checkpoint.path)
            self._end_journal()
        except (OSError, GitopsMailError) as exc:
            raise GitopsMailError(
                f"cannot restore {self.config_dir} from {checkpoint.path}: {livescan.reason(exc)}",
                hint="fix the cause, then run gitops-mail again: it finishes restoring first",
            ) from exc

    def recover(self) -> str | None:
        """Roll back a swap or restore that a crash interrupted; say what was done.

        Also removes what a crash left behind: the staging dir and every
        checkpoint (with no journal, the tree they belong to is the live one).
        """
        journal = livescan.read_json(self.journal_path)
        if journal is None:
            self._clear_leftovers()
            return None
        root = self.work_dir / "checkpoint" / journal["checkpoint"]
        try:
            count = self._roll_back(root)
            self._end_journal()
        except (OSError, GitopsMailError) as exc:
            raise GitopsMailError(
                f"cannot roll back the interrupted {journal['phase']} in {self.config_dir} "
                f"from {root}: {livescan.reason(exc)}",
                hint="fix the cause and run gitops-mail again; the journal is kept until then",
            ) from exc
        self._clear_leftovers()
        return (
            f"an interrupted {journal['phase']} in {self.config_dir} was rolled back: "
            f"{count} file(s) are as they were before it"
        )

    def cleanup(self, checkpoint: Checkpoint) -> None:
        """Drop a checkpoint; originals of adopted files move to ``adopted/<id>/``."""
        try:
            for index, change in enumerate(checkpoint.changes):
                path = change.path
                saved = _backup(checkpoint.path, index)
                if path in checkpoint.adopted and os.path.lexists(saved):
                    kept = self.work_dir / "adopted" / checkpoint.id / path
                    kept.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(saved, kept)
        except OSError as exc:
            action = f"keep the originals of adopted files from {checkpoint.path}"
            raise self._error(action, exc) from exc
        shutil.rmtree(checkpoint.path, ignore_errors=True)

    def _roll_back(self, root: Path) -> int:
        record = livescan.read_json(root / "record.json")
        if record is None:
            raise GitopsMailError(
                f"checkpoint record {root / 'record.json'} is missing",
                hint=f"the old tree cannot be put back: check {self.config_dir} by hand, "
                f"then delete {self.journal_path}",
            )
        for path, uid, gid, mode in reversed(record["gone_dirs"]):
            _make_dir(self.config_dir / path, None, (uid, gid, mode))
        saved = set(record["saved"])
        for index, (path, _op) in reversed(list(enumerate(record["changes"]))):
            backup = _backup(root, index)
            if path not in saved:
                _unlink(self.config_dir / path)
            elif os.path.lexists(backup):  # gone: already put back by an earlier attempt
                os.rename(backup, self.config_dir / path)
            if index == len(record["changes"]) - 1:
                fault_point("mid-restore")
        for path in reversed(record["new_dirs"]):
            _remove_empty_dir(self.config_dir / path)
        _sync_filesystem(self.config_dir)
        self._put_inventory_back(record["inventory"])
        return len(record["changes"])

    def _put_inventory_back(self, raw: dict[str, Any] | None) -> None:
        if livescan.read_json(self.inventory_path) == raw:
            return  # never changed (the swap failed before or while writing it)
        if raw is None:
            _unlink(self.inventory_path)
        else:
            self._write_inventory(raw["files"])

    def _clear_leftovers(self) -> None:
        self._clear_staging()
        checkpoints = self.work_dir / "checkpoint"
        if checkpoints.is_dir():
            for leftover in checkpoints.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------

    def _refuse_if_interrupted(self) -> None:
        if self.journal_path.exists():
            raise GitopsMailError(
                f"{self.journal_path} shows an interrupted swap or restore",
                hint="roll it back first: gitops-mail does so at the start of every apply",
            )

    def _prepare_work_dir(self) -> None:
        try:
            self.work_dir.mkdir(mode=0o700, exist_ok=True)
            self._clear_staging()
            same = os.stat(self.work_dir).st_dev == os.stat(self.config_dir).st_dev
        except OSError as exc:
            raise self._error(f"create the work dir {self.work_dir}", exc) from exc
        if not same:
            raise GitopsMailError(
                f"{self.config_dir} and {self.work_dir} are on different filesystems",
                hint=_EXDEV_HINT.format(config=self.config_dir),
            )

    def _begin_journal(self, checkpoint_id: str, phase: str) -> None:
        record = {"checkpoint": checkpoint_id, "phase": phase, "time": time.time()}
        try:
            atomic_write(self.journal_path, json.dumps(record).encode(), mode=0o600)
        except GitopsMailError as exc:
            raise self._error(f"write the journal {self.journal_path}", exc) from exc

    def _end_journal(self) -> None:
        try:
            _unlink(self.journal_path)
            _fsync_dir(self.work_dir)
        except OSError as exc:
            raise self._error(f"remove the journal {self.journal_path}", exc) from exc

    def _write_inventory(self, files: Mapping[str, str]) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(f"create the state dir {self.state_dir}", exc) from exc
        data = json.dumps({"files": dict(sorted(files.items()))}, indent=1).encode()
        try:
            atomic_write(self.inventory_path, data, mode=0o600)
        except GitopsMailError as exc:
            raise self._error(f"write the inventory {self.inventory_path}", exc) from exc

    def _error(self, action: str, exc: OSError | GitopsMailError) -> GitopsMailError:
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        if isinstance(cause, OSError):
            return GitopsMailError(f"cannot {action}: {cause.strerror}", self._hint(cause))
        hint = exc.hint if isinstance(exc, GitopsMailError) else ""
        return GitopsMailError(f"cannot {action}: {livescan.reason(exc)}", hint)

    def _hint(self, exc: OSError) -> str:
        number = exc.errno or 0
        if number in (errno.ENOSPC, errno.EDQUOT):
            return f"the filesystem is full: free space there (df -h {self.work_dir.parent})"
        if number == errno.EROFS:
            return "the filesystem is mounted read-only: remount it read-write"
        if number in (errno.EACCES, errno.EPERM):
            return (
                f"run gitops-mail as root, and check that nothing under {self.config_dir.parent} "
                "is immutable (lsattr) or on a read-only mount"
            )
        if number == errno.EXDEV:
            return _EXDEV_HINT.format(config=self.config_dir)
        return f"check {self.config_dir} and {self.work_dir}"


_EXDEV_HINT = (
    "gitops-mail keeps its scratch space beside {config}, so that every rename stays on "
    "one filesystem and mount; is the config dir a mount point or a bind mount? "
    "Mount its parent instead"
)


# --- filesystem helpers ---------------------------------------------------------------


def _write_file(path: Path, want: Want) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(os.open(path, flags, 0o600), "wb") as handle:
        handle.write(want.data)
        handle.flush()
        if (want.uid, want.gid) != (os.geteuid(), os.getegid()):
            os.fchown(handle.fileno(), want.uid, want.gid)
        os.fchmod(handle.fileno(), want.mode)  # after chown, which clears set-id bits


def _make_dir(
    path: Path, like: os.stat_result | None, ids_mode: tuple[int, int, int] | None = None
) -> None:
    """Create ``path`` (if missing) with the owner and mode of ``like``, or 0755 root."""
    uid, gid, mode = ids_mode or (owner_mode(like) if like else (_ROOT_UID, 0, _NEW_DIR_MODE))
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
        if (uid, gid) != (os.geteuid(), os.getegid()):
            os.chown(path, uid, gid)
        os.chmod(path, mode)


def _remove_empty_dir(path: Path) -> None:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:  # someone put a file there meanwhile: keep it
            raise


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _backup(checkpoint: Path, index: int) -> Path:
    """Where a checkpoint keeps the old file of its change number ``index``."""
    return checkpoint / "files" / str(index)


def _link_into(source: Path, target: Path) -> bool:
    """Hard-link ``source`` (itself, never a symlink's target) to ``target``; False if absent."""
    if not os.path.lexists(source):
        return False
    os.link(source, target, follow_symlinks=False)
    return True


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # a mount inside the config dir: copy instead
            raise
        shutil.copy2(source, target, follow_symlinks=False)
        info = os.lstat(source)
        os.chown(target, info.st_uid, info.st_gid)
        os.chmod(target, stat.S_IMODE(info.st_mode))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_filesystem(path: Path) -> None:
    """Make everything written on ``path``'s filesystem durable.

    One syncfs(2) costs about what one fsync does, instead of one per file and
    directory (200 of them took 0.1-0.2 s here).
    """
    syncfs = getattr(_LIBC, "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if syncfs(fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number), str(path))
    finally:
        os.close(fd)
