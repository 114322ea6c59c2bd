"""The config dir's bookkeeping for ``configdir``: journal, inventory, checkpoints put back.

``JournaledDir`` knows the paths (config dir, its work dir inside it, the
state dir), writes and ends the journal, writes the inventory, turns an
``OSError`` into an error with a hint, and puts a checkpoint back: ``restore``
after a swap that went live, ``recover`` after a crash, ``cleanup`` when a
checkpoint is no longer needed. ``configdir.LiveDir`` adds stage and swap.

Versions before this one kept the work dir beside the config dir
(``<parent>/.<name>.gitops-mail/``); ``recover`` still rolls back a swap that
one of them left half done there.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mail.core.words import counted
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.livefs import scan as livescan
from gitops_mail.host.livefs.fs import (
    backup_path,
    make_dir,
    remove_empty_dir,
    sync_filesystem,
    unlink,
)
from gitops_mail.host.livefs.scan import WORK_DIR, Change
from gitops_mail.host.localfs import atomic_write, fsync_directory

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
# chasquid, which the pre-flight runs as chasquid, reaches staging/ and its own
# data dir in here; nobody but root lists or writes it.
_WORK_DIR_MODE = 0o711


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


class JournaledDir:
    """chasquid's config dir, its work dir and inventory; checkpoints put back."""

    def __init__(self, config_dir: Path, state_dir: Path, work_dir: Path | None = None) -> None:
        self.config_dir = Path(os.path.realpath(config_dir))
        self.state_dir = Path(os.path.abspath(state_dir))
        self.work_dir = work_dir or self.config_dir / WORK_DIR
        self.staging_dir = self.work_dir / "staging"
        self.journal_path = self.work_dir / "journal.json"
        self.inventory_path = self.state_dir / INVENTORY

    def inventory(self) -> dict[str, str]:
        """Path -> sha256 of every file gitops-mail installed; {} before the first apply."""
        raw = livescan.read_json(self.inventory_path)
        return {} if raw is None else dict(raw["files"])

    def _clear_staging(self) -> None:
        shutil.rmtree(self.staging_dir, ignore_errors=True)

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
        earlier = self._recover_beside()
        journal = livescan.read_json(self.journal_path)
        if journal is None:
            self._clear_leftovers()
            return earlier
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
            f"{counted(count, 'file')} {'is' if count == 1 else 'are'} as they were before it"
        )

    def _recover_beside(self) -> str | None:
        """A swap or restore interrupted when the work dir was beside the config dir."""
        beside = self._beside()
        if self.work_dir == beside or not (beside / "journal.json").exists():
            return None
        return JournaledDir(self.config_dir, self.state_dir, beside).recover()

    def cleanup(self, checkpoint: Checkpoint) -> None:
        """Drop a checkpoint; originals of adopted files move to ``adopted/<id>/``."""
        try:
            for index, change in enumerate(checkpoint.changes):
                path = change.path
                saved = backup_path(checkpoint.path, index)
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
            make_dir(self.config_dir / path, None, (uid, gid, mode))
        saved = set(record["saved"])
        for index, (path, _op) in reversed(list(enumerate(record["changes"]))):
            backup = backup_path(root, index)
            if path not in saved:
                unlink(self.config_dir / path)
            elif os.path.lexists(backup):  # gone: already put back by an earlier attempt
                os.rename(backup, self.config_dir / path)
            if index == len(record["changes"]) - 1:
                fault_point("mid-restore")
        for path in reversed(record["new_dirs"]):
            remove_empty_dir(self.config_dir / path)
        sync_filesystem(self.config_dir)
        self._put_inventory_back(record["inventory"])
        return len(record["changes"])

    def _put_inventory_back(self, raw: dict[str, Any] | None) -> None:
        if livescan.read_json(self.inventory_path) == raw:
            return  # never changed (the swap failed before or while writing it)
        if raw is None:
            unlink(self.inventory_path)
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
        for journal in (self.journal_path, self._beside() / "journal.json"):
            if journal.exists():
                raise GitopsMailError(
                    f"{journal} shows an interrupted swap or restore",
                    hint="roll it back first: gitops-mail does so at the start of every apply",
                )

    def _beside(self) -> Path:
        """Where versions before this one kept the work dir: beside the config dir."""
        return self.config_dir.parent / f".{self.config_dir.name}.gitops-mail"

    def _prepare_work_dir(self) -> None:
        try:
            self.work_dir.mkdir(mode=0o700, exist_ok=True)
            if os.stat(self.work_dir).st_mode & 0o7777 != _WORK_DIR_MODE:
                os.chmod(self.work_dir, _WORK_DIR_MODE)
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
            unlink(self.journal_path)
            fsync_directory(self.work_dir)
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
    "gitops-mail keeps its scratch space inside {config} (" + WORK_DIR + "/), so that every "
    "rename stays on one filesystem and mount; is a directory inside the config dir a mount "
    "point or a bind mount? Keep the whole config dir on one mount"
)
