"""Turn the common ``--repo/--rev/--worktree`` options into a snapshot and a state."""

from __future__ import annotations

import argparse
import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path

from gitops_mail.core.snapshot import Snapshot
from gitops_mail.core.state import State, load_state
from gitops_mail.errors import RepoError, UsageError
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.git import read as gitread
from gitops_mail.host import localfs


def read_source(args: argparse.Namespace) -> Snapshot:
    repo = Path(args.repo)
    if getattr(args, "worktree", False):
        return read_worktree(repo)
    return gitread.read_revision(repo, args.rev)


def read_worktree(path: Path) -> Snapshot:
    """The uncommitted files of a checkout (or of any directory, git or not)."""
    try:
        root = gitplumbing.repo_toplevel(path)
    except RepoError:
        return localfs.read_directory(path)
    if gitplumbing.is_bare(root):
        raise UsageError(
            f"{path} is a bare repository: it has no working tree to read",
            "drop --worktree to read a commit, or point --repo at a checkout",
        )
    return localfs.read_directory(root)


def load_source(args: argparse.Namespace) -> State:
    return load_state(read_source(args))


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector while a command reads and checks.

    Reading a large repo builds a few hundred thousand objects that all live
    until the command ends and hold almost no reference cycles; the collector
    would only scan them again and again (a sixth of ``plan``'s time at the
    benchmark's scale). Long-running commands (daemon, supervise) keep it on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
