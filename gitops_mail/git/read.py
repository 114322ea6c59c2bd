"""Read any revision of a repository: its files, its parent, what changed.

Reads use git's plumbing through ``procs.run`` and never import GitPython:
``import git`` alone costs 150-200 ms, more than the whole time budget of
``gitops-mail validate``. A revision is read by one ``cat-file
--batch-command --buffer`` process, whatever its size, asked in rounds: the
commit, its trees level by level, the size of every blob (``info``), then
every blob at once (``git.objects`` parses what it answers). Sizes come before
contents: a revision over the host's ``limits:`` (a file over
``file_bytes``, files over ``revision_bytes`` in all, more than
``revision_files`` paths, a commit or tree object over ``file_bytes``) is
refused, every offending path named, before any of its files is read
(``core.bounds``). Trees and blobs of the last revision read are kept by id,
so reading a plan's base next asks only for what differs, and its parent is
known without asking. Only the commit's tree is read, never the working
tree, so bare repos, CI checkouts and dirty work trees all give the same
answer. Reads start git as ``git.plumbing`` does (as the repo's owner, no
hooks, no programs from its config). Writes live in ``git.write``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path

from gitops_mail.core import bounds
from gitops_mail.core.policy import Limits
from gitops_mail.core.snapshot import MODE_EXEC, MODE_FILE, MODE_GITLINK, Entry, Snapshot
from gitops_mail.errors import CommandError, RepoError
from gitops_mail.git import catfile
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

# The limits of a read given none: those of the innermost ``bounded`` block, else the defaults.
_limits: ContextVar[Limits | None] = ContextVar("read_limits", default=None)


@contextlib.contextmanager
def bounded(limits: Limits) -> Iterator[None]:
    """Reads in this block that are given no ``limits`` use these (a host's)."""
    token = _limits.set(limits)
    try:
        yield
    finally:
        _limits.reset(token)


def read_revision(repo: Path, rev: str = "HEAD", *, limits: Limits | None = None) -> Snapshot:
    """Every file of the commit ``rev`` names, read from git objects only.

    ``InvalidConfig`` names every path over ``limits`` (default: ``bounded``'s,
    else ``Limits()``) before any file is read.
    """
    budget = bounds.Budget(limits or _limits.get() or Limits())
    with converse_git(repo, "cat-file", "--batch-command", "--buffer") as pipes:
        batch = catfile.Batch(repo, *pipes, largest=budget.limits.file_bytes)
        commit, tree = _read_commit(batch, rev, budget)
        named = commit[:7] if rev == commit else f"{rev} ({commit[:7]})"
        trees = _read_trees(batch, tree, budget, named)
        listing = gitobjects.walk(tree, trees, decode)
        blobs = _read_blobs(batch, listing, budget, named)
    files = {
        path: Entry(b"" if mode == MODE_GITLINK else blobs[oid], _mode(mode))
        for path, mode, oid in listing
    }
    source = f"{rev} ({commit[:7]})"
    return Snapshot(files=files, source=source, revision=commit, directories=_parents(files))


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


# The commit last read as (repo, id, first parent): a plan asks for the parent next.
_last_commit: tuple[str, str, str | None] = ("", "", None)


def _read_commit(batch: catfile.Batch, rev: str, budget: bounds.Budget) -> tuple[str, str]:
    """``(commit id, tree id)`` of the commit ``rev`` names."""
    global _last_commit  # noqa: PLW0603 - a one-entry cache
    if rev.startswith("-") or "\n" in rev or "\r" in rev or "\0" in rev:
        raise bad_revision(batch.repo, rev)  # not a revision for rev-parse; cat-file would split it
    try:
        found = next(batch.objects([f"{rev}^{{commit}}"]))
    except catfile.Oversize as big:
        what = "its commit object is "
        problem = budget.object(f"commit {big.oid[:7]}", big.size, what)
        raise bounds.refusal(f"revision {rev}", [problem] if problem else []) from None
    if found is None or found[1] != "commit":
        raise bad_revision(batch.repo, rev)
    commit, _, data = found
    tree, parents = gitobjects.commit_fields(data)
    _last_commit = (os.fspath(batch.repo), commit, parents[0] if parents else None)
    return commit, tree


# The trees and blobs of the last revision read, by object id. An id names one
# content forever, so the next read (a plan's base, mostly the same files) asks
# only for what differs; holding one revision's worth keeps the memory bounded.
_last_trees: dict[str, list[gitobjects.TreeEntry]] = {}
_last_blobs: dict[str, bytes] = {}


def _read_trees(
    batch: catfile.Batch, root: str, budget: bounds.Budget, source: str
) -> dict[str, list[gitobjects.TreeEntry]]:
    """Every tree under ``root`` (included), one round of asking per level.

    Each level counts the paths it holds and measures the longest, so a
    revision over ``revision_files`` or with an impossible path is refused
    before its paths are listed."""
    global _last_trees  # noqa: PLW0603 - a cache, replaced whole on every read
    known, trees = _last_trees, dict[str, list[gitobjects.TreeEntry]]()
    level: gitobjects.Level = {root: (1, b"")}
    id_bytes, paths = len(root) // 2, 0
    while level:
        asked = [oid for oid in level if oid not in known and oid not in trees]
        trees.update((o, known[o]) for o in level if o in known)
        try:
            for oid, data in batch.need(asked, "tree"):
                trees[oid] = gitobjects.tree_entries(data, id_bytes)
        except catfile.Oversize as big:
            where = decode(level[big.oid][1]) or "."
            problem = budget.object(where, big.size, "its directory's git tree object is ")
            raise bounds.refusal(f"revision {source}", [problem] if problem else []) from None
        paths = _judge_level(level, trees, budget, paths, source)
        level = gitobjects.next_level(level, trees)
    _last_trees = trees
    return trees


def _judge_level(
    level: gitobjects.Level,
    trees: dict[str, list[gitobjects.TreeEntry]],
    budget: bounds.Budget,
    paths: int,
    source: str,
) -> int:
    """The paths counted so far with this level's; refuses a level over the limits."""
    for oid, (times, prefix) in level.items():
        paths += times * len(trees[oid])
        problem = budget.count(paths, decode(prefix)) or budget.path(
            decode(gitobjects.longest_entry(prefix, trees[oid]))
        )
        if problem is not None:
            raise bounds.refusal(f"revision {source}", [problem])
    return paths


def _read_blobs(
    batch: catfile.Batch, listing: list[tuple[str, int, str]], budget: bounds.Budget, source: str
) -> dict[str, bytes]:
    """Contents of every blob once their sizes pass: those of the last revision read,
    the rest from git."""
    global _last_blobs  # noqa: PLW0603 - a cache, replaced whole on every read
    known = _last_blobs
    oids = sorted({oid for _, mode, oid in listing if mode != MODE_GITLINK})
    blobs = {oid: known[oid] for oid in oids if oid in known}
    asked = [oid for oid in oids if oid not in known]
    sizes = {oid: len(data) for oid, data in blobs.items()}
    sizes.update(batch.sizes(asked, "blob"))
    problems = budget.files([(p, sizes[o]) for p, mode, o in listing if mode != MODE_GITLINK])
    if problems:
        raise bounds.refusal(f"revision {source}", problems)
    blobs.update(batch.need(asked, "blob"))
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
