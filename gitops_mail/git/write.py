"""Writing git: new repos and new commits, pushes and fetches that never force.

Writes from a checkout (``init_repo``, ``commit_paths``) go through GitPython,
imported inside the function that runs it, so commands that only read never
pay for it. The daemon's writes (``commit_files``, ``push``, ``fetch``) use
plumbing through ``procs`` like the reads: they need no working tree, and a
commit moves its branch only if nobody moved it meanwhile.

Every write starts git as ``git.launch`` says, like the reads: as the repo's
owner when we are root and it is someone else's (so what git writes stays
the owner's), with none of the repo's hooks and none of the programs its
config names. The plumbing writes also run without the repository-location
variables a git hook sets. GitPython's writes run in the caller's environment
(GitPython adds to it and cannot remove from it): do not call them from a hook.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from gitops_mail.core.snapshot import MODE_FILE, Entry
from gitops_mail.errors import RepoError
from gitops_mail.git import launch
from gitops_mail.git.plumbing import (
    as_text,
    locate,
    repo_toplevel,
    resolve_revision,
    run_git,
    run_git_with,
    shown,
)
from gitops_mail.host import procs
from gitops_mail.host.localfs import write_tree

_DEFAULT_NAME = "gitops-mail"
_DEFAULT_EMAIL = "gitops-mail@localhost"


def init_repo(
    directory: Path, files: Mapping[str, Entry], message: str, *, branch: str = "main"
) -> str:
    """Create a repo on ``branch`` holding ``files`` in one first commit; its id."""
    _refuse_git_paths(files)
    created = _prepare_empty_directory(directory)
    try:
        identity = _identity(directory)
        # As ourselves: the directory is ours, whoever owns a repository above it.
        _write(directory, "init", "--quiet", f"--initial-branch={branch}", owned=False)
        write_tree(directory, files)
        _write(directory, "add", "--all")
        _write(directory, "commit", "--quiet", "--allow-empty", "-m", message, env=identity)
    except BaseException:
        _undo_init(directory, created)
        raise
    return resolve_revision(directory)


def commit_paths(repo: Path, paths: Sequence[str], message: str) -> str:
    """Stage ``paths`` (relative to the work tree top) and commit only them; the new id.

    Other staged or unstaged changes in the checkout stay as they were.
    """
    if not locate(repo).inside_work_tree:
        raise RepoError(
            f"{shown(repo)} has no working tree to commit from",
            hint="run this in a checkout (git clone) of the conf repo",
        )
    if not paths:
        raise RepoError("nothing to commit: no paths given")
    top = repo_toplevel(repo)
    env = {"GIT_LITERAL_PATHSPECS": "1", **_identity(top)}
    _write(top, "add", "--all", "--", *paths, env=env)
    quiet = ("diff", "--cached", "--quiet", "--no-ext-diff", "--no-textconv")
    staged = run_git(top, "--literal-pathspecs", *quiet, "--", *paths, check=False)
    if staged.returncode == 0:
        raise RepoError(f"nothing to commit: {', '.join(paths)} unchanged in {top}")
    _write(top, "commit", "--quiet", "-m", message, "--", *paths, env=env)
    return resolve_revision(top)


# --- writing through GitPython ---------------------------------------------


def _write(cwd: Path, *args: str, env: Mapping[str, str] | None = None, owned: bool = True) -> str:
    """Run one git command that writes, through GitPython; RepoError with git's words.

    As the repo's owner (``git.launch``) unless ``owned`` is False (``git init``).
    """
    import git  # noqa: PLC0415 - GitPython is slow to import; only writes need it

    who = launch.owner(cwd) if owned else None
    status, stdout, stderr = git.Git(str(cwd)).execute(
        ["git", *args],
        with_extended_output=True,
        with_exceptions=False,
        env=launch.environment(who) | dict(env or {}),
        **procs.identity_args(who),
    )
    if status != 0:
        detail = str(stderr).strip() or str(stdout).strip()
        raise RepoError(f"git {args[0]} failed in {cwd}: {detail}")
    return str(stdout)


def _identity(cwd: Path) -> dict[str, str]:
    """Author/committer variables to set because nothing else names them."""
    pattern = r"^(user|author|committer)\.(name|email)$"
    found = run_git(cwd, "config", "--get-regexp", pattern, check=False)
    configured = {line.split(" ", 1)[0] for line in found.text.splitlines()}
    env = {}
    for role in ("author", "committer"):
        for field, default in (("name", _DEFAULT_NAME), ("email", _DEFAULT_EMAIL)):
            variable = f"GIT_{role.upper()}_{field.upper()}"
            known = {f"user.{field}", f"{role}.{field}"} & configured
            if not known and variable not in os.environ:
                env[variable] = default
    return env


def _refuse_git_paths(files: Mapping[str, Entry]) -> None:
    for path in files:
        if ".git" in (part.lower() for part in path.split("/")):
            raise RepoError(
                f"refusing to write {path!r}: git's own directory cannot be part of a commit",
                hint="remove the .git entries from the files to commit",
            )


def _prepare_empty_directory(directory: Path) -> bool:
    """Check ``directory`` is new or empty; True when it did not exist yet."""
    if not directory.exists():
        directory.mkdir(parents=True)
        return True
    if not directory.is_dir() or any(directory.iterdir()):
        raise RepoError(
            f"{shown(directory)} is not empty",
            hint="choose a new or empty directory so nothing there is overwritten",
        )
    return False


def _undo_init(directory: Path, created: bool) -> None:
    """Remove what a failed ``init_repo`` made: the directory, or what is inside it."""
    import shutil  # noqa: PLC0415 - only a failed init needs it; reads start faster without

    if created:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# --- committing without a working tree -------------------------------------


class BranchMoved(RepoError):
    """The branch is no longer at the commit the caller built on: someone pushed."""

    def __init__(self, repo: Path, branch: str, expected: str, current: str | None) -> None:
        now = f"is at {current[:7]}" if current else "no longer exists"
        super().__init__(
            f"branch {branch} in {shown(repo)} {now}, not at {expected[:7]}: "
            "it moved while this commit was made",
            hint="read the new tip and build on it; nothing was overwritten",
        )
        self.branch, self.expected, self.current = branch, expected, current


class PushRejected(RepoError):
    """The remote refused a push that is not a fast-forward: it has commits we lack."""


def commit_files(
    repo: Path,
    branch: str,
    parent: str,
    files: Mapping[str, bytes | None],
    message: str,
    *,
    author: tuple[str, str],
) -> str:
    """Commit ``files`` on top of ``parent`` and move ``branch`` there; the new id.

    Works on bare and non-bare repos alike and never reads or writes a working
    tree or the repo's own index: blobs, a tree from a temporary index and a
    commit are written with plumbing, then the branch moves only if it is still
    at ``parent`` (compare-and-swap); otherwise ``BranchMoved``, and nothing
    but unreferenced objects was written. ``None`` removes a path. Paths not
    named keep their content and mode. ``author`` (name, email) is also the
    committer. A checkout of ``branch`` is not updated (as after a push into a
    checked-out branch): use bare repos where the branch moves by itself.

    The commit's dates are the parent's commit date, so the same files on the
    same parent make the same commit wherever they are made: several servers
    fed by one push (``hosts:``) commit back the same zone as the same commit,
    and their branches stay one history.
    """
    parent_id = resolve_revision(repo, parent)
    tree = _tree_with(repo, parent_id, files)
    if tree == run_git(repo, "rev-parse", f"{parent_id}^{{tree}}").text.strip():
        raise RepoError(f"nothing to commit: {parent_id[:7]} already holds these files")
    body = (message if message.endswith("\n") else message + "\n").encode()
    sign = "--no-gpg-sign"  # the bot's commit: commit.gpgSign in the repo's config asks nothing
    date = run_git(repo, "show", "-s", "--date=raw", "--format=%cd", parent_id).text.strip()
    env = _as(author) | {"GIT_AUTHOR_DATE": f"@{date}", "GIT_COMMITTER_DATE": f"@{date}"}
    made = run_git_with(repo, env, "commit-tree", sign, tree, "-p", parent_id, input=body)
    commit = made.text.strip()
    _move_branch(repo, branch, commit, parent_id)
    return commit


def push(repo: Path, remote: str, branch: str) -> None:
    """Push ``branch`` to the same branch of ``remote``; never forced.

    ``PushRejected`` when the remote has commits the local branch lacks (fetch,
    rebuild and try again); ``RepoError`` for any other failure.
    """
    ref = f"refs/heads/{branch}"
    args = ("push", "--porcelain", *_PUSH_PROGRAMS, remote, f"{ref}:{ref}")
    done = run_git_with(repo, _NO_PROMPT, *args, check=False)
    if done.returncode == 0:
        return
    shown = _redact_url(remote)
    if any(line.startswith("!") and "\t[rejected]" in line for line in done.text.splitlines()):
        raise PushRejected(
            f"{shown} refused the push of {branch}: it has commits this repo lacks",
            hint="fetch, build on the new tip, and push again",
        )
    raise RepoError(f"git push of {branch} to {shown} failed: {_git_words(done)}")


def fetch(repo: Path, remote: str, branch: str) -> str:
    """Make ``branch`` here what it is on ``remote``; its commit id.

    The local branch mirrors the remote one (forced, like a remote-tracking
    ref): in poll mode the remote is the source of truth, and a local commit
    it never accepted is dropped from the branch. The repo should be bare: git
    refuses to fetch into the checked-out branch of a working tree.
    """
    ref = f"refs/heads/{branch}"
    args = ("fetch", "--quiet", "--no-tags", *_FETCH_PROGRAMS, remote, f"+{ref}:{ref}")
    done = run_git_with(repo, _NO_PROMPT, *args, check=False)
    if done.returncode != 0:
        said = _git_words(done)
        checked_out = "refusing to fetch into" in said
        raise RepoError(
            f"git fetch of {branch} from {_redact_url(remote)} failed: {said}",
            hint=_OWN_REPO_HINT if checked_out else "check the remote's address and access",
        )
    return resolve_revision(repo, ref)


_OWN_REPO_HINT = "poll mode needs a repository of its own: create one with git init --bare"
_NO_PROMPT = {"GIT_TERMINAL_PROMPT": "0"}  # fail instead of waiting for a password
# What a remote named in the repo's config (remote.<name>.uploadpack, .receivepack,
# push.gpgSign, submodule settings) would otherwise make a fetch or push run.
_FETCH_PROGRAMS = ("--upload-pack=git-upload-pack", "--no-recurse-submodules")
_PUSH_PROGRAMS = (
    "--receive-pack=git-receive-pack",
    "--no-verify",
    "--no-signed",
    "--no-recurse-submodules",
)
_URL_USER = re.compile(r"(?<=://)[^/@\s]*@")


def _as(author: tuple[str, str]) -> dict[str, str]:
    """The environment that makes ``author`` both author and committer."""
    name, email = author
    roles = ("AUTHOR", "COMMITTER")
    return {f"GIT_{r}_NAME": name for r in roles} | {f"GIT_{r}_EMAIL": email for r in roles}


def _tree_with(repo: Path, parent: str, files: Mapping[str, bytes | None]) -> str:
    """The tree of ``parent`` with ``files`` written (or, for None, removed)."""
    added = [
        (path, run_git(repo, "hash-object", "-w", "--stdin", input=data).text.strip())
        for path, data in sorted(files.items())
        if data is not None
    ]
    removed = sorted(path for path, data in files.items() if data is None)
    with _scratch_index(repo) as index:
        run_git_with(repo, index, "read-tree", parent)
        if added:  # --cacheinfo refuses invalid paths (.git, ..) and file/directory clashes
            infos = [a for p, o in added for a in ("--cacheinfo", f"{MODE_FILE:o},{o},{p}")]
            done = run_git_with(repo, index, "update-index", "--add", *infos, check=False)
            if done.returncode != 0:
                raise RepoError(f"git refused the files to commit: {_git_words(done)}")
        if removed:  # --force-remove needs a working tree; mode 0 in --index-info does not
            listing = "".join(f"0 {'0' * 40}\t{path}\0" for path in removed).encode()
            run_git_with(repo, index, "update-index", "-z", "--index-info", input=listing)
        return run_git_with(repo, index, "write-tree").text.strip()


@contextlib.contextmanager
def _scratch_index(repo: Path) -> Iterator[dict[str, str]]:
    """``GIT_INDEX_FILE`` naming a new file in the git dir, removed on leaving.

    Git creates it (as the repo's owner, who can write there); we only pick a
    name nobody uses and remove what git left.
    """
    path = os.path.join(locate(repo).git_dir, f"gitops-mail-index.{secrets.token_hex(8)}")
    try:
        yield {"GIT_INDEX_FILE": path}
    finally:
        for leftover in (path, f"{path}.lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _move_branch(repo: Path, branch: str, new: str, old: str) -> None:
    ref = f"refs/heads/{branch}"
    done = run_git(repo, "update-ref", "-m", "gitops-mail: commit", ref, new, old, check=False)
    if done.returncode == 0:
        return
    if run_git(repo, "check-ref-format", ref, check=False).returncode != 0:
        raise RepoError(f"{branch!r} is not a valid branch name")
    found = run_git(repo, "rev-parse", "--verify", "--quiet", ref, check=False)
    current = found.text.strip() if found.returncode == 0 else None
    if current != old:
        raise BranchMoved(repo, branch, old, current)
    raise RepoError(f"cannot move {branch} in {shown(repo)}: {_git_words(done)}")


def _git_words(done: procs.Result) -> str:
    """What git said about a failure, credentials in URLs removed."""
    return _redact_url(as_text(done.stderr).strip() or done.text.strip())


def _redact_url(text: str) -> str:
    return _URL_USER.sub("", text)
