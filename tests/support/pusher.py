"""A pusher who is not root: a real system user that owns a bare repo and pushes to it.

The trust boundary says a pusher controls the mail configuration, never the
host. Tests of that boundary run the pusher's side (the bare repo's owner, its
clone, ``git push``, hooks it plants) as this user through ``runuser``, while
gitops-mail runs as root, as on a server. The user is created once per machine
(``useradd --system``) and reused; each test gets its own directory that the
user owns, outside pytest's root-only temporary tree.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

USER = "gitops-test-pusher"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Pusher",
    "GIT_AUTHOR_EMAIL": "pusher@example.test",
    "GIT_COMMITTER_NAME": "Pusher",
    "GIT_COMMITTER_EMAIL": "pusher@example.test",
}


def ensure_user(name: str = USER) -> pwd.struct_passwd:
    """The pusher's account, created (no login, no password) if this machine has none."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/bin/sh", name],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(name)


@dataclass(frozen=True)
class Pusher:
    """The pusher: ``run`` executes as the user, with ``home`` as HOME, in ``root``."""

    name: str
    uid: int
    gid: int
    root: Path  # owned by the user; everything the pusher makes goes below it

    @property
    def home(self) -> Path:
        return self.root / "home"

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` as the pusher, with a clean environment; fails the test on error if asked."""
        environment = {
            "HOME": str(self.home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "GIT_CONFIG_NOSYSTEM": "1",
            **_IDENTITY,
            **(env or {}),
        }
        command = ["runuser", "-u", self.name, "--", "env", "-i"]
        command += [f"{key}={value}" for key, value in environment.items()]
        command += [str(arg) for arg in argv]
        done = subprocess.run(
            command,
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"as {self.name}: {' '.join(map(str, argv))} exited {done.returncode}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    def git(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["git", *args], cwd=cwd, check=check)

    def bare_repo(self, name: str = "mail-conf.git") -> Path:
        """A bare repo on branch main, owned by the pusher, as ``deploy`` would make it."""
        path = self.root / name
        self.git(self.root, "init", "--quiet", "--bare", "--initial-branch=main", str(path))
        return path

    def clone(self, repo: Path, name: str = "work") -> Path:
        path = self.root / name
        self.git(self.root, "clone", "--quiet", str(repo), str(path))
        return path

    def commit(
        self, work: Path, files: Mapping[str, bytes | str | None], message: str = "change"
    ) -> str:
        """Write (None: delete) ``files`` as the pusher, commit them; the new commit id."""
        for relative, content in files.items():
            self.write(work / relative, content)
        self.git(work, "add", "--all")
        self.git(work, "commit", "--quiet", "--allow-empty", "-m", message)
        return self.git(work, "rev-parse", "HEAD").stdout.strip()

    def write(self, path: Path, content: bytes | str | None, mode: int = 0o644) -> None:
        """Create or replace (None: remove) a file as the pusher would, owned by the user."""
        if content is None:
            path.unlink()
            return
        for parent in reversed(path.parents):
            if parent.is_relative_to(self.root) and not parent.exists():
                parent.mkdir()
                os.chown(parent, self.uid, self.gid)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)

    def push(
        self, work: Path, *refspecs: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``git push origin REFSPEC...`` as the pusher (``HEAD:main`` by default)."""
        return self.git(
            work, "push", "origin", *(refspecs or ("HEAD:refs/heads/main",)), check=check
        )


@dataclass(frozen=True)
class PusherCheckout:
    """``Origin`` or ``Workdir`` of ``tests/conftest.py``, but the pusher's: git runs as them."""

    pusher: Pusher
    path: Path

    def git(self, *args: str) -> str:
        return self.pusher.git(self.path, *args).stdout

    def commit(self, files: Mapping[str, bytes | str | None], message: str = "change") -> str:
        return self.pusher.commit(self.path, files, message)

    def push(self) -> None:
        self.pusher.push(self.path)  # fails the test if the push fails

    def sync(self) -> None:
        """Take what the daemon committed back (a fast-forward)."""
        self.git("pull", "--quiet", "--ff-only", "origin", "main")


def pusher_conf_repo(pusher: Pusher) -> tuple[PusherCheckout, PusherCheckout]:
    """A bare repo and its clone, both the pusher's (for a ``conf_repo`` fixture)."""
    repo = pusher.bare_repo()
    return PusherCheckout(pusher, repo), PusherCheckout(pusher, pusher.clone(repo))


def not_owned_by(root: Path, uid: int) -> Iterator[Path]:
    """Every path below ``root`` (``root`` too) whose owner is not ``uid``."""
    for path in [root, *root.rglob("*")]:
        if path.lstat().st_uid != uid:
            yield path


def make_pusher(name: str = USER) -> Pusher:
    """A fresh directory for one test, owned by the pusher, readable by everyone."""
    account = ensure_user(name)
    root = Path(tempfile.mkdtemp(prefix="gitops-pusher-", dir="/tmp"))
    root.chmod(0o755)
    os.chown(root, account.pw_uid, account.pw_gid)
    pusher = Pusher(account.pw_name, account.pw_uid, account.pw_gid, root)
    pusher.home.mkdir()
    os.chown(pusher.home, account.pw_uid, account.pw_gid)
    return pusher


def remove_pusher_root(pusher: Pusher) -> None:
    shutil.rmtree(pusher.root, ignore_errors=True)
