"""The one module that writes into chasquid's live config dir.

A change goes live as a journal of per-file ``os.replace`` calls, not as a
symlink flip: a running chasquid keeps reading the directory it started in,
and on a real server the config dir starts out as the package's plain
directory. Every file chasquid reads is therefore always a whole old or a whole
new file, and its 30 s reload never sees half of one.

Scratch space lives inside the config dir, in ``.gitops-mail/`` (``scan.WORK_DIR``;
chasquid reads only ``chasquid.conf``, ``certs/``, ``domains/`` and ``hooks/``, and
``scan`` leaves it out of the live tree, drift and staging): ``staging/`` (the
whole future tree, built by ``stage``; one at a time), ``checkpoint/<id>/``
(``files/<n>``: a hard link to the live file that change number n replaces or
removes; ``record.json``: the changes, the directories made and removed, the old
inventory) and ``journal.json`` (which checkpoint a swap or restore in progress
goes back to). Renames and links never cross filesystems, nor mounts: a
service whose only writable path is the config dir (systemd's
``ReadWritePaths=``, a bind mount) still swaps. The old files are never
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

This module is the public entry (``LiveDir``: stage, swap; the names callers
import). ``journal`` holds the paths, journal, inventory, ``restore``,
``recover`` and ``cleanup``; ``fs`` the filesystem steps. No module
outside these three writes into the config dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from gitops_mail.core.tree import DesiredTree
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.livefs import scan as livescan
from gitops_mail.host.livefs.fs import (
    backup_path,
    link_into,
    link_or_copy,
    make_dir,
    remove_empty_dir,
    sync_filesystem,
    unlink,
    write_file,
)
from gitops_mail.host.livefs.journal import (
    FAULT_ENV,
    FAULT_POINTS,
    Checkpoint,
    JournaledDir,
    fault_point,
)
from gitops_mail.host.livefs.scan import Change, Drift, Live, Want, owner_mode
from gitops_mail.host.localfs import atomic_write

__all__ = [
    "FAULT_ENV",
    "FAULT_POINTS",
    "Checkpoint",
    "LiveDir",
    "Staged",
    "fault_point",
]


@dataclass(frozen=True)
class Staged:
    path: Path
    changes: tuple[Change, ...]
    tree: DesiredTree
    adopted: tuple[str, ...] = ()  # foreign files the tree takes over
    new_dirs: tuple[str, ...] = ()  # created by the swap, parents first
    gone_dirs: tuple[str, ...] = ()  # emptied by the swap and removed, children first


class LiveDir(JournaledDir):
    """chasquid's config dir, changed only through stage/swap/restore."""

    # --- reading -----------------------------------------------------------

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
            make_dir(self.staging_dir, os.lstat(self.config_dir))
            for current in plan.dirs:
                make_dir(self.staging_dir / current, plan.live.dirs.get(current))
            for current in plan.files:
                want = plan.wants.get(current) if current in changed else None
                self._stage_file(current, want, plan.live)
            current = ""
            sync_filesystem(self.staging_dir)  # the new files' data, before any rename
        except OSError as exc:
            raise self._error(f"stage {self.staging_dir / current}", exc) from exc

    def _stage_file(self, path: str, want: Want | None, live: Live) -> None:
        """Write a changed file; link an unchanged or foreign one; copy a foreign symlink."""
        source, target = self.config_dir / path, self.staging_dir / path
        if want is not None:
            write_file(target, want)
        elif stat.S_ISLNK(live.files[path].st_mode):
            target.symlink_to(livescan.link_target(source, self.config_dir))
        elif stat.S_ISREG(live.files[path].st_mode):
            link_or_copy(source, target)
        # a FIFO, socket or device is foreign and not read by chasquid: not staged

    def discard(self, staged: Staged) -> None:
        """Remove a staged tree; idempotent."""
        if staged.path == self.staging_dir:
            self._clear_staging()

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
                if link_into(self.config_dir / current, backup_path(root, index)):
                    saved.append(current)
            current = ""
            self._write_record(root, staged, saved)
        except (OSError, GitopsMailError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            action = f"save a checkpoint of {self.config_dir / current} in {self.work_dir}"
            raise self._error(action, exc) from exc
        return Checkpoint(checkpoint_id, root, staged.changes, staged.adopted)

    def _write_record(self, root: Path, staged: Staged, saved: list[str]) -> None:
        sync_filesystem(root)  # the links, before the record and the journal name them
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
                make_dir(self.config_dir / current, os.lstat(staged.path / current))
            for number, change in enumerate(staged.changes):
                current = change.path
                if change.op == "remove":
                    unlink(self.config_dir / current)
                else:
                    os.replace(staged.path / current, self.config_dir / current)
                if number == 0:
                    fault_point("mid-replace")
            for current in staged.gone_dirs:
                remove_empty_dir(self.config_dir / current)
            sync_filesystem(self.config_dir)
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
