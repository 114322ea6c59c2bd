"""Fixtures shared by every test: an isolated environment and real git repos.

Helpers are handed out as fixtures (``git_run``, ``make_repo``, ``origin``,
``workdir``) rather than imported, so that other ``conftest.py`` files never
shadow this one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.pusher import Pusher, make_pusher, remove_pusher_root

GitRun = Callable[..., str]
MakeRepo = Callable[..., Path]

_HOOK_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")


@pytest.fixture(autouse=True)
def _isolated_environment(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pin git's identity, hide the real home and the real host settings."""
    home = tmp_path_factory.mktemp("home")  # outside tmp_path, which stays empty for the test
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test Author")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")
    for variable in _HOOK_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", str(tmp_path / "no-host-settings" / "config.yaml"))


def _git_run(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its stdout. Fails the test with git's stderr on error."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"git {' '.join(args)} failed in {cwd}: {done.stderr}")
    return done.stdout


def _write_files(root: Path, files: Mapping[str, bytes | str | None]) -> None:
    for name, content in files.items():
        path = root / name
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def _make_repo(tmp_path: Path, files: Mapping[str, bytes | str], bare: bool = False) -> Path:
    """A repo on branch main with one commit of ``files``: ``tmp_path/repo[.git]``."""
    work = tmp_path / "repo"
    tmp_path.mkdir(parents=True, exist_ok=True)
    _git_run(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    _write_files(work, files)
    _git_run(work, "add", "--all")
    _git_run(work, "commit", "--quiet", "--allow-empty", "-m", "initial")
    if not bare:
        return work
    _git_run(tmp_path, "clone", "--quiet", "--bare", str(work), str(tmp_path / "repo.git"))
    return tmp_path / "repo.git"


@dataclass(frozen=True)
class Origin:
    """A bare repository on branch main, as a server would hold it."""

    path: Path

    def git(self, *args: str) -> str:
        return _git_run(self.path, *args)


@dataclass(frozen=True)
class Workdir:
    """A clone of ``origin`` to commit in and push from."""

    path: Path

    def git(self, *args: str) -> str:
        return _git_run(self.path, *args)

    def commit(self, files: Mapping[str, bytes | str | None], message: str = "change") -> str:
        """Write (or, for None, delete) ``files``, commit every change; the new id."""
        _write_files(self.path, files)
        self.git("add", "--all")
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def push(self) -> None:
        self.git("push", "--quiet", "origin", "HEAD:refs/heads/main")


@pytest.fixture
def git_run() -> GitRun:
    """``git_run(cwd, *args) -> stdout``."""
    return _git_run


@pytest.fixture
def make_repo() -> MakeRepo:
    """``make_repo(tmp_path, files, bare=False) -> path`` of a one-commit repo."""
    return _make_repo


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    path = tmp_path / "origin.git"
    _git_run(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(path))
    return Origin(path)


@pytest.fixture
def workdir(tmp_path: Path, origin: Origin) -> Workdir:
    path = tmp_path / "workdir"
    _git_run(tmp_path, "clone", "--quiet", str(origin.path), str(path))
    return Workdir(path)


@pytest.fixture
def pusher() -> Iterator[Pusher]:
    """A real non-root user (``support.pusher``) with a fresh directory of its own."""
    made = make_pusher()
    yield made
    remove_pusher_root(made)
