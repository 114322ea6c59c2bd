"""What ``git.read`` and ``git.write`` share: running git, locating a repo, naming a revision.

Everything here runs git's plumbing through ``procs`` as ``git.launch`` says:
as the repo's owner when we are root and it is someone else's, with none of
the repo's hooks and none of the programs its config names, and without the
repository-location variables a git hook sets (``GIT_DIR``, ``GIT_WORK_TREE``,
...), so the ``repo`` argument always wins; the object-directory variables
stay, so a pre-receive hook can read the pushed objects still held in
quarantine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gitops_mail.errors import RepoError
from gitops_mail.git import launch
from gitops_mail.host import procs

_NOT_A_REPO_HINT = "pass --repo PATH, or run inside a checkout of the conf repo"


def resolve_revision(repo: Path, rev: str = "HEAD") -> str:
    """The full commit id that ``rev`` (a branch, tag, short or full id) names."""
    if not rev.startswith("-"):
        found = run_git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if found.returncode == 0:
            return found.text.strip()
    raise bad_revision(repo, rev)


def repo_toplevel(path: Path) -> Path:
    """The top of the work tree ``path`` is in, or the git dir of a bare repo."""
    where = locate(path)
    if not where.inside_work_tree:
        return where.git_dir
    return Path(run_git(path, "rev-parse", "--show-toplevel").text.strip())


def is_bare(repo: Path) -> bool:
    return locate(repo).bare


def run_git(
    repo: Path,
    *args: str,
    input: bytes | None = None,
    check: bool = True,
) -> procs.Result:
    return run_git_with(repo, {}, *args, input=input, check=check)


def run_git_with(
    repo: Path,
    extra: Mapping[str, str],
    *args: str,
    input: bytes | None = None,
    check: bool = True,
) -> procs.Result:
    """``run_git`` with more environment variables (an index file, an identity)."""
    who = launch.owner(repo)
    env = launch.environment(who) | dict(extra)
    argv: list[str | Path] = ["git", "-C", repo, *args]
    return procs.run(argv, input=input, env=env, check=check, as_user=who)


@contextlib.contextmanager
def converse_git(
    repo: Path, *args: str, timeout: float = 60.0
) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """``procs.converse`` with git on ``repo`` (``cat-file --batch``), started as ``run_git``."""
    who = launch.owner(repo)
    argv: list[str | Path] = ["git", "-C", repo, *args]
    with procs.converse(argv, env=launch.environment(who), timeout=timeout, as_user=who) as pipes:
        yield pipes


def decode(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


def shown(path: Path) -> str:
    return os.path.abspath(path)


@dataclass(frozen=True)
class Location:
    bare: bool
    inside_work_tree: bool
    git_dir: Path


def locate(path: Path) -> Location:
    """Where ``path`` is in git's terms; RepoError when it is in no repository."""
    flags = ("--is-bare-repository", "--is-inside-work-tree", "--absolute-git-dir")
    found = run_git(path, "rev-parse", *flags, check=False)
    if found.returncode != 0:
        raise _not_a_repo(path, as_text(found.stderr))
    bare, inside, git_dir = found.text.split("\n")[:3]
    return Location(bare == "true", inside == "true", Path(git_dir))


def as_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _not_a_repo(path: Path, stderr: str) -> RepoError:
    where = shown(path)
    if "cannot change to" in stderr and "Permission denied" in stderr:
        return RepoError(
            f"git cannot reach {where} as the user who owns it",
            hint="git runs as the repository's owner: let that user search (x) every "
            "directory above it",
        )
    if "dubious ownership" in stderr:
        return RepoError(
            f"git refuses to read {where}: it belongs to another user",
            hint=f"if you trust it, run: git config --global --add safe.directory {where}",
        )
    return RepoError(f"{where} is not a git repository", hint=_NOT_A_REPO_HINT)


def bad_revision(repo: Path, rev: str) -> RepoError:
    locate(repo)
    has_refs = run_git(repo, "for-each-ref", "--count=1").stdout.strip()
    has_head = run_git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    if not has_refs and has_head.returncode != 0:
        return RepoError(
            f"{shown(repo)} has no commits yet",
            hint="commit something first, or use --worktree to read the files on disk",
        )
    return RepoError(
        f"no revision {rev!r} in {shown(repo)}",
        hint="check the name with `git log --oneline`, or `git fetch` first if it is remote",
    )
