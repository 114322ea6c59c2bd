"""Read any revision of a repository: its files, its parent, what changed.

Reads use git's plumbing through ``procs.run`` and never import GitPython:
``import git`` alone costs 150-200 ms, more than the whole time budget of
``gitops-mail validate``. A revision is read by one ``cat-file --batch``
process, whatever its size, asked in rounds: the commit, its trees level by
level, then every blob at once (``git.objects`` parses what it answers). Trees
and blobs of the last revision read are kept by id, so reading a plan's base
next asks only for what differs, and its parent is known without asking. Only
the commit's tree is read, never the working tree, so bare repos, CI checkouts
and dirty work trees all give the same answer. Reads start git as
``git.plumbing`` does (as the repo's owner, no hooks, no programs from its
config). Writes live in ``git.write``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from gitops_mail.core.snapshot import MODE_EXEC, MODE_FILE, MODE_GITLINK, Entry, Snapshot
from gitops_mail.errors import CommandError, RepoError
from gitops_mail.git import objects as gitobjects
from gitops_mail.git.plumbing import (
    as_text,
    bad_revision,
    converse_git,
    decode,
    resolve_revision,
    run_git,
    shown,
)


def read_revision(repo: Path, rev: str = "HEAD") -> Snapshot:
    """Every file of the commit ``rev`` names, read from git objects only."""
    with converse_git(repo, "cat-file", "--batch") as pipes:
        batch = _Batch(repo, *pipes)
        found = _read_commit(batch, rev)
        if found is None:
            raise bad_revision(repo, rev)
        commit, tree = found
        listing = gitobjects.walk(tree, _read_trees(batch, tree), decode)
        wanted = sorted({oid for _, mode, oid in listing if mode != MODE_GITLINK})
        blobs = _read_blobs(batch, wanted)
    files = {
        path: Entry(b"" if mode == MODE_GITLINK else blobs[oid], _mode(mode))
        for path, mode, oid in listing
    }
    return Snapshot(
        files=files,
        source=f"{rev} ({commit[:7]})",
        revision=commit,
        directories=_parents(files),
    )


def parent_revision(repo: Path, rev: str = "HEAD") -> str | None:
    """The full id of the first parent of ``rev``; ``None`` for a first commit."""
    if _last_commit[:2] == (os.fspath(repo), rev):  # just read: its object named the parent
        return _last_commit[2]
    commit = resolve_revision(repo, rev)
    found = run_git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^1", check=False)
    return found.text.strip() if found.returncode == 0 else None


def changed_paths(repo: Path, old: str, new: str) -> list[str]:
    """Paths whose content, mode or type differ between two commits (renames as two)."""
    old_id, new_id = resolve_revision(repo, old), resolve_revision(repo, new)
    out = run_git(repo, "diff-tree", "-r", "-z", "--no-renames", "--name-only", old_id, new_id)
    return sorted(decode(path) for path in out.stdout.split(b"\0") if path)


def merge_base(repo: Path, a: str, b: str) -> str | None:
    """The best common ancestor of two commits, or ``None`` for unrelated histories."""
    a_id, b_id = resolve_revision(repo, a), resolve_revision(repo, b)
    found = run_git(repo, "merge-base", a_id, b_id, check=False)
    if found.returncode == 1 and not found.stdout.strip():
        return None
    if found.returncode != 0:
        raise CommandError(found.argv, found.returncode, found.text, as_text(found.stderr))
    return found.text.strip()


def commit_author(repo: Path, rev: str) -> tuple[str, str]:
    """The ``(name, email)`` a commit records as its author, as written (no mailmap)."""
    raw = run_git(repo, "cat-file", "commit", resolve_revision(repo, rev)).stdout
    for line in raw.split(b"\n\n", 1)[0].split(b"\n"):
        if line.startswith(b"author "):
            who = decode(line[len(b"author ") :]).rpartition(">")[0]
            name, _, email = who.partition("<")
            return name.strip(), email
    raise RepoError(f"commit {rev} in {shown(repo)} records no author")


# --- the cat-file conversation -------------------------------------------


class _Batch:
    """One ``git cat-file --batch``: ask for many objects, read the answers in order."""

    _ROUND = 500  # names per write: stays under the pipe's buffer, so writing never blocks

    def __init__(self, repo: Path, ask: IO[bytes], answers: IO[bytes]) -> None:
        self.repo, self.ask, self.answers = repo, ask, answers

    def objects(self, names: list[str]) -> Iterator[tuple[str, str, bytes] | None]:
        """``(id, type, content)`` of each name in turn; None for one git does not have."""
        for start in range(0, len(names), self._ROUND):
            chunk = names[start : start + self._ROUND]
            with contextlib.suppress(BrokenPipeError):  # git ended: the reads below say so
                self.ask.write("".join(f"{n}\n" for n in chunk).encode("utf-8", "surrogateescape"))
                self.ask.flush()
            for _ in chunk:
                yield self._answer()

    def _answer(self) -> tuple[str, str, bytes] | None:
        header = self.answers.readline().decode("ascii", "replace").split()
        if len(header) != 3:  # "<name> missing", "<name> ambiguous", or git ended
            return None
        oid, kind, size = header
        data = self.answers.read(int(size) + 1)  # contents are followed by one newline
        if len(data) != int(size) + 1:
            return None
        return oid, kind, data[:-1]

    def need(self, oids: list[str], kind: str) -> Iterator[tuple[str, bytes]]:
        """``(id, content)`` of objects that must exist; RepoError for one missing."""
        for oid, found in zip(oids, self.objects(oids), strict=True):
            if found is None or found[1] != kind:
                raise RepoError(
                    f"object {oid} is missing from {shown(self.repo)}",
                    hint="the clone may be partial or damaged: run `git fsck`, or fetch again",
                )
            yield oid, found[2]


# The commit last read as (repo, id, first parent): a plan asks for the parent next.
_last_commit: tuple[str, str, str | None] = ("", "", None)


def _read_commit(batch: _Batch, rev: str) -> tuple[str, str] | None:
    """``(commit id, tree id)`` of the commit ``rev`` names; None if it names none."""
    global _last_commit  # noqa: PLW0603 - a one-entry cache
    if rev.startswith("-") or "\n" in rev or "\r" in rev or "\0" in rev:
        return None  # not a revision for rev-parse; cat-file would split the line
    found = next(batch.objects([f"{rev}^{{commit}}"]))
    if found is None or found[1] != "commit":
        return None
    commit, _, data = found
    tree, parents = gitobjects.commit_fields(data)
    _last_commit = (os.fspath(batch.repo), commit, parents[0] if parents else None)
    return commit, tree


# The trees and blobs of the last revision read, by object id. An id names one
# content forever, so the next read (a plan's base, mostly the same files) asks
# only for what differs; holding one revision's worth keeps the memory bounded.
_last_trees: dict[str, list[gitobjects.TreeEntry]] = {}
_last_blobs: dict[str, bytes] = {}


def _read_trees(batch: _Batch, root: str) -> dict[str, list[gitobjects.TreeEntry]]:
    """Every tree under ``root`` (included), one round of asking per level."""
    global _last_trees  # noqa: PLW0603 - a cache, replaced whole on every read
    known, level = _last_trees, [root]
    trees: dict[str, list[gitobjects.TreeEntry]] = {}
    id_bytes = len(root) // 2
    while level:
        asked = [oid for oid in dict.fromkeys(level) if oid not in known and oid not in trees]
        trees.update((o, known[o]) for o in level if o in known)
        for oid, data in batch.need(asked, "tree"):
            trees[oid] = gitobjects.tree_entries(data, id_bytes)
        level = [sub for oid in dict.fromkeys(level) for sub in gitobjects.subtrees(trees[oid])]
    _last_trees = trees
    return trees


def _read_blobs(batch: _Batch, oids: list[str]) -> dict[str, bytes]:
    """Contents of every blob: those of the last revision read, the rest from git."""
    global _last_blobs  # noqa: PLW0603 - a cache, replaced whole on every read
    known = _last_blobs
    blobs = {oid: known[oid] for oid in oids if oid in known}
    blobs.update(batch.need([oid for oid in oids if oid not in known], "blob"))
    _last_blobs = blobs
    return blobs


def _mode(mode: int) -> int:
    """git's mode; old-style 100664 file modes fold into 100644."""
    if mode & 0o170000 == 0o100000:
        return MODE_EXEC if mode & 0o100 else MODE_FILE
    return mode


def _parents(paths: Mapping[str, Entry]) -> frozenset[str]:
    """Every directory above some file: git has no empty directories."""
    found: set[str] = set()
    for path in paths:
        parent = path.rpartition("/")[0]
        while parent and parent not in found:
            found.add(parent)
            parent = parent.rpartition("/")[0]
    return frozenset(found)
