"""The only module that touches git: read any revision, write new commits.

Reads use git's plumbing through ``procs.run`` and never import GitPython:
``import git`` alone costs 150-200 ms, more than the whole time budget of
``gitops-mail validate``. A revision is read by one ``cat-file --batch``
process, whatever its size, asked in rounds: the commit, its trees level by
level, then every blob at once (``gitobjects`` parses what it answers). Trees
and blobs of the last revision read are kept by id, so reading a plan's base
next asks only for what differs, and its parent is known without asking. Only
the commit's tree is read, never the working tree, so bare repos, CI checkouts
and dirty work trees all give the same answer.

Writes (init, add, commit) go through GitPython, imported inside the functions
that write, so commands that only read never pay for it. The daemon's writes
(``commit_files``, ``push``, ``fetch``) use plumbing through ``procs`` like the
reads: they need no working tree, and a commit moves its branch only if nobody
moved it meanwhile.

Reads run without the repository-location variables a git hook sets
(``GIT_DIR``, ``GIT_WORK_TREE``, ...), so the ``repo`` argument always wins;
the object-directory variables stay, so a pre-receive hook can read the pushed
objects still held in quarantine. Writes run in the caller's environment
(GitPython adds to it and cannot remove from it): do not call them from a hook.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gitops_mail import gitobjects, procs
from gitops_mail.errors import CommandError, RepoError
from gitops_mail.localfs import write_tree
from gitops_mail.snapshot import MODE_EXEC, MODE_FILE, MODE_GITLINK, Entry, Snapshot

_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")
_DEFAULT_NAME = "gitops-mail"
_DEFAULT_EMAIL = "gitops-mail@localhost"
_NOT_A_REPO_HINT = "pass --repo PATH, or run inside a checkout of the conf repo"


def resolve_revision(repo: Path, rev: str = "HEAD") -> str:
    """The full commit id that ``rev`` (a branch, tag, short or full id) names."""
    if not rev.startswith("-"):
        found = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if found.returncode == 0:
            return found.text.strip()
    raise _bad_revision(repo, rev)


def read_revision(repo: Path, rev: str = "HEAD") -> Snapshot:
    """Every file of the commit ``rev`` names, read from git objects only."""
    with procs.converse(["git", "-C", repo, "cat-file", "--batch"], env=_read_env()) as pipes:
        batch = _Batch(repo, *pipes)
        found = _read_commit(batch, rev)
        if found is None:
            raise _bad_revision(repo, rev)
        commit, tree = found
        listing = gitobjects.walk(tree, _read_trees(batch, tree), _decode)
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
    found = _git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^1", check=False)
    return found.text.strip() if found.returncode == 0 else None


def repo_toplevel(path: Path) -> Path:
    """The top of the work tree ``path`` is in, or the git dir of a bare repo."""
    where = _locate(path)
    if not where.inside_work_tree:
        return where.git_dir
    return Path(_git(path, "rev-parse", "--show-toplevel").text.strip())


def is_bare(repo: Path) -> bool:
    return _locate(repo).bare


def changed_paths(repo: Path, old: str, new: str) -> list[str]:
    """Paths whose content, mode or type differ between two commits (renames as two)."""
    old_id, new_id = resolve_revision(repo, old), resolve_revision(repo, new)
    out = _git(repo, "diff-tree", "-r", "-z", "--no-renames", "--name-only", old_id, new_id)
    return sorted(_decode(path) for path in out.stdout.split(b"\0") if path)


def merge_base(repo: Path, a: str, b: str) -> str | None:
    """The best common ancestor of two commits, or ``None`` for unrelated histories."""
    a_id, b_id = resolve_revision(repo, a), resolve_revision(repo, b)
    found = _git(repo, "merge-base", a_id, b_id, check=False)
    if found.returncode == 1 and not found.stdout.strip():
        return None
    if found.returncode != 0:
        raise CommandError(found.argv, found.returncode, found.text, _text(found.stderr))
    return found.text.strip()


def init_repo(
    directory: Path, files: Mapping[str, Entry], message: str, *, branch: str = "main"
) -> str:
    """Create a repo on ``branch`` holding ``files`` in one first commit; its id."""
    _refuse_git_paths(files)
    created = _prepare_empty_directory(directory)
    try:
        identity = _identity(directory)
        _write(directory, "init", "--quiet", f"--initial-branch={branch}")
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
    if not _locate(repo).inside_work_tree:
        raise RepoError(
            f"{_shown(repo)} has no working tree to commit from",
            hint="run this in a checkout (git clone) of the conf repo",
        )
    if not paths:
        raise RepoError("nothing to commit: no paths given")
    top = repo_toplevel(repo)
    env = {"GIT_LITERAL_PATHSPECS": "1", **_identity(top)}
    _write(top, "add", "--all", "--", *paths, env=env)
    quiet_diff = ("--literal-pathspecs", "diff", "--cached", "--quiet", "--", *paths)
    staged = _git(top, *quiet_diff, check=False)
    if staged.returncode == 0:
        raise RepoError(f"nothing to commit: {', '.join(paths)} unchanged in {top}")
    _write(top, "commit", "--quiet", "-m", message, "--", *paths, env=env)
    return resolve_revision(top)


# --- reading ---------------------------------------------------------------


def _git(
    repo: Path,
    *args: str,
    input: bytes | None = None,
    check: bool = True,
) -> procs.Result:
    return procs.run(["git", "-C", repo, *args], input=input, env=_read_env(), check=check)


def _read_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LOCATION_VARS}
    env["LC_ALL"] = "C"
    return env


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
                    f"object {oid} is missing from {_shown(self.repo)}",
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


def _decode(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


def _shown(path: Path) -> str:
    return os.path.abspath(path)


@dataclass(frozen=True)
class _Location:
    bare: bool
    inside_work_tree: bool
    git_dir: Path


def _locate(path: Path) -> _Location:
    """Where ``path`` is in git's terms; RepoError when it is in no repository."""
    flags = ("--is-bare-repository", "--is-inside-work-tree", "--absolute-git-dir")
    found = _git(path, "rev-parse", *flags, check=False)
    if found.returncode != 0:
        raise _not_a_repo(path, _text(found.stderr))
    bare, inside, git_dir = found.text.split("\n")[:3]
    return _Location(bare == "true", inside == "true", Path(git_dir))


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _not_a_repo(path: Path, stderr: str) -> RepoError:
    shown = _shown(path)
    if "dubious ownership" in stderr:
        return RepoError(
            f"git refuses to read {shown}: it belongs to another user",
            hint=f"if you trust it, run: git config --global --add safe.directory {shown}",
        )
    return RepoError(f"{shown} is not a git repository", hint=_NOT_A_REPO_HINT)


def _bad_revision(repo: Path, rev: str) -> RepoError:
    _locate(repo)
    has_refs = _git(repo, "for-each-ref", "--count=1").stdout.strip()
    has_head = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    if not has_refs and has_head.returncode != 0:
        return RepoError(
            f"{_shown(repo)} has no commits yet",
            hint="commit something first, or use --worktree to read the files on disk",
        )
    return RepoError(
        f"no revision {rev!r} in {_shown(repo)}",
        hint="check the name with `git log --oneline`, or `git fetch` first if it is remote",
    )


# --- writing ---------------------------------------------------------------


def _write(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run one git command that writes, through GitPython; RepoError with git's words."""
    import git  # noqa: PLC0415 - GitPython is slow to import; only writes need it

    status, stdout, stderr = git.Git(str(cwd)).execute(
        ["git", *args], with_extended_output=True, with_exceptions=False, env=env
    )
    if status != 0:
        detail = str(stderr).strip() or str(stdout).strip()
        raise RepoError(f"git {args[0]} failed in {cwd}: {detail}")
    return str(stdout)


def _identity(cwd: Path) -> dict[str, str]:
    """Author/committer variables to set because nothing else names them."""
    pattern = r"^(user|author|committer)\.(name|email)$"
    found = _git(cwd, "config", "--get-regexp", pattern, check=False)
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
            f"{_shown(directory)} is not empty",
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
            f"branch {branch} in {_shown(repo)} {now}, not at {expected[:7]}: "
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
    """
    parent_id = resolve_revision(repo, parent)
    tree = _tree_with(repo, parent_id, files)
    if tree == _git(repo, "rev-parse", f"{parent_id}^{{tree}}").text.strip():
        raise RepoError(f"nothing to commit: {parent_id[:7]} already holds these files")
    body = (message if message.endswith("\n") else message + "\n").encode()
    made = _git_with(repo, _as(author), "commit-tree", tree, "-p", parent_id, input=body)
    commit = made.text.strip()
    _move_branch(repo, branch, commit, parent_id)
    return commit


def push(repo: Path, remote: str, branch: str) -> None:
    """Push ``branch`` to the same branch of ``remote``; never forced.

    ``PushRejected`` when the remote has commits the local branch lacks (fetch,
    rebuild and try again); ``RepoError`` for any other failure.
    """
    ref = f"refs/heads/{branch}"
    done = _git_with(repo, _NO_PROMPT, "push", "--porcelain", remote, f"{ref}:{ref}", check=False)
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
    args = ("fetch", "--quiet", "--no-tags", remote, f"+{ref}:{ref}")
    done = _git_with(repo, _NO_PROMPT, *args, check=False)
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
_URL_USER = re.compile(r"(?<=://)[^/@\s]*@")


def _git_with(
    repo: Path,
    extra: Mapping[str, str],
    *args: str,
    input: bytes | None = None,
    check: bool = True,
) -> procs.Result:
    """``_git`` with more environment variables (an index file, an identity)."""
    env = {k: v for k, v in os.environ.items() if k not in _LOCATION_VARS}
    env.update({"LC_ALL": "C", **extra})
    return procs.run(["git", "-C", repo, *args], input=input, env=env, check=check)


def _as(author: tuple[str, str]) -> dict[str, str]:
    """The environment that makes ``author`` both author and committer."""
    name, email = author
    roles = ("AUTHOR", "COMMITTER")
    return {f"GIT_{r}_NAME": name for r in roles} | {f"GIT_{r}_EMAIL": email for r in roles}


def _tree_with(repo: Path, parent: str, files: Mapping[str, bytes | None]) -> str:
    """The tree of ``parent`` with ``files`` written (or, for None, removed)."""
    added = [
        (path, _git(repo, "hash-object", "-w", "--stdin", input=data).text.strip())
        for path, data in sorted(files.items())
        if data is not None
    ]
    removed = sorted(path for path, data in files.items() if data is None)
    import tempfile  # noqa: PLC0415 - writes only; reads start faster without it

    with tempfile.TemporaryDirectory(prefix="gitops-mail-index.", dir=_locate(repo).git_dir) as tmp:
        index = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        _git_with(repo, index, "read-tree", parent)
        if added:  # --cacheinfo refuses invalid paths (.git, ..) and file/directory clashes
            infos = [a for p, o in added for a in ("--cacheinfo", f"{MODE_FILE:o},{o},{p}")]
            done = _git_with(repo, index, "update-index", "--add", *infos, check=False)
            if done.returncode != 0:
                raise RepoError(f"git refused the files to commit: {_git_words(done)}")
        if removed:  # --force-remove needs a working tree; mode 0 in --index-info does not
            listing = "".join(f"0 {'0' * 40}\t{path}\0" for path in removed).encode()
            _git_with(repo, index, "update-index", "-z", "--index-info", input=listing)
        return _git_with(repo, index, "write-tree").text.strip()


def _move_branch(repo: Path, branch: str, new: str, old: str) -> None:
    ref = f"refs/heads/{branch}"
    done = _git(repo, "update-ref", "-m", "gitops-mail: commit", ref, new, old, check=False)
    if done.returncode == 0:
        return
    if _git(repo, "check-ref-format", ref, check=False).returncode != 0:
        raise RepoError(f"{branch!r} is not a valid branch name")
    found = _git(repo, "rev-parse", "--verify", "--quiet", ref, check=False)
    current = found.text.strip() if found.returncode == 0 else None
    if current != old:
        raise BranchMoved(repo, branch, old, current)
    raise RepoError(f"cannot move {branch} in {_shown(repo)}: {_git_words(done)}")


def _git_words(done: procs.Result) -> str:
    """What git said about a failure, credentials in URLs removed."""
    return _redact_url(_text(done.stderr).strip() or done.text.strip())


def _redact_url(text: str) -> str:
    return _URL_USER.sub("", text)


def commit_author(repo: Path, rev: str) -> tuple[str, str]:
    """The ``(name, email)`` a commit records as its author, as written (no mailmap)."""
    raw = _git(repo, "cat-file", "commit", resolve_revision(repo, rev)).stdout
    for line in raw.split(b"\n\n", 1)[0].split(b"\n"):
        if line.startswith(b"author "):
            who = _decode(line[len(b"author ") :]).rpartition(">")[0]
            name, _, email = who.partition("<")
            return name.strip(), email
    raise RepoError(f"commit {rev} in {_shown(repo)} records no author")
