"""Fixtures for the apply transaction's end-to-end tests (a pytest plugin).

A test module loads them with ``pytest_plugins = ["apply_fixtures"]`` and
imports names from here only; they live in ``apply_host`` (names, paths,
ports, processes, the mail client) and ``apply_sandbox`` (``Sandbox``).

``make_sandbox(...) -> Sandbox`` builds one host as a server would have it:

- a bare conf repo (``origin``) and a clone to commit and push from
  (``workdir``), seeded with a manifest, a chasquid.conf listening on free
  loopback ports, one users file (``ana@example.test``) and aliases;
- a ``files:`` certificate source (the session test CA's leaf for
  mail.example.test and 127.0.0.1) and a delivery agent that appends each
  message to ``mailboxes/<recipient>``;
- host settings (``service: supervise``) and a ``Supervisor`` running the real
  chasquid (as the chasquid user, which owns ``data/``, ``mail.log`` and
  ``mailboxes/``) on the config dir in a thread, stopped at teardown, after
  which no chasquid started under the test's directory may be left (read from /proc).

The ``gitops-mail`` command line runs as a child process (``Sandbox.gm``,
``Sandbox.start_gm``), as an operator would run it: exit codes, standard
output and standard error are the contract. ``Sandbox.run`` calls the same
``main`` in this process, for the many reads (status, history) and cheap
no-ops, without a Python start-up each.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("apply_host", "apply_sandbox")

from apply_host import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    ANA,
    ANA_PASSWORD,
    BASE_ALIASES,
    BOB,
    BOB_PASSWORD,
    CONF_PATH,
    DOMAIN,
    GITOPS_MAIL,
    MANIFEST_PATH,
    USERS_PATH,
    Ports,
    chasquids_under,
    free_port,
    leaf_sha256,
    poll,
)
from apply_sandbox import Sandbox, UsersFiles  # noqa: E402
from support import chasquiduser  # noqa: E402
from support.livetree import Mounts, fill  # noqa: E402
from support.mail import MDA  # noqa: E402

__all__ = [
    "ALIASES_PATH",
    "ANA",
    "BASE_ALIASES",
    "BOB",
    "CONF_PATH",
    "DOMAIN",
    "GITOPS_MAIL",
    "MANIFEST_PATH",
    "USERS_PATH",
    "MakeSandbox",
    "MountFn",
    "Sandbox",
    "fill",
    "leaf_sha256",
    "poll",
]

MountFn = Mounts
MakeSandbox = Callable[..., Sandbox]


@pytest.fixture(scope="session")
def users_files(tmp_path_factory: pytest.TempPathFactory) -> UsersFiles:
    """Users files written once per session by ``gitops-mail user add`` (scrypt is slow)."""
    repo = tmp_path_factory.mktemp("users")
    found = []
    for address, password in ((ANA, ANA_PASSWORD), (BOB, BOB_PASSWORD)):
        subprocess.run(
            [*GITOPS_MAIL, "user", "add", address, "--password-stdin", "--create-domain"],
            cwd=repo,
            input=f"{password}\n",
            text=True,
            capture_output=True,
            check=True,
        )
        found.append((repo / USERS_PATH).read_bytes())
    return UsersFiles(*found)


@pytest.fixture
def mount() -> Iterator[Mounts]:
    """A ``Mounts``; whatever is still mounted is undone (lazily) at teardown."""
    mounts = Mounts()
    yield mounts
    mounts.undo_all(lazy=True)


@pytest.fixture
def conf_repo(origin: Any, workdir: Any) -> tuple[Any, Any]:
    """tests/conftest.py's bare ``origin`` and its clone ``workdir``."""
    return origin, workdir


@pytest.fixture
def make_sandbox(
    tmp_path: Path,
    mount: MountFn,
    conf_repo: tuple[Any, Any],
    tls_cert: Callable[..., Any],
    users_files: UsersFiles,
) -> Iterator[MakeSandbox]:
    """``make_sandbox(config_dir=None, debian=False, chasquid_args=()) -> Sandbox``, once a test.

    The base revision is committed and pushed, the supervisor runs (chasquid
    fails to start until the first apply fills the config dir), nothing is
    applied yet. ``config_dir`` defaults to ``tmp_path/etc/chasquid``;
    ``debian`` copies the package's /etc/chasquid skeleton into it first.
    Mounts made with the ``mount`` fixture outlive the supervisor.
    """
    made: list[Sandbox] = []

    def make(
        config_dir: Path | None = None, debian: bool = False, chasquid_args: Sequence[str] = ()
    ) -> Sandbox:
        config_dir = config_dir or tmp_path / "etc" / "chasquid"
        if debian:
            config_dir.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "-a", "/etc/chasquid", str(config_dir)], check=True)
        else:
            config_dir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        ports = Ports(*(free_port(taken) for _ in range(4)))
        box = Sandbox(
            root=tmp_path,
            config_dir=config_dir,
            state_dir=tmp_path / "state",
            host_file=tmp_path / "host.yaml",
            origin=conf_repo[0],
            workdir=conf_repo[1],
            ports=ports,
            ca_file=Path(),
            fullchain=Path(),
            privkey=Path(),
            users=users_files,
            issue_cert=tls_cert,
            chasquid_args=tuple(chasquid_args),
        )
        box.fullchain, box.privkey = box.new_cert("first")
        # chasquid runs as chasquid: its data dir, mail log and the agent's mailboxes are its own
        chasquiduser.give(tmp_path / "mailboxes", directory=True)
        chasquiduser.give(tmp_path / "data", directory=True)
        chasquiduser.give(tmp_path / "mail.log")
        mda = tmp_path / "mda.sh"
        mda.write_text(MDA.format(mailboxes=tmp_path / "mailboxes"))
        mda.chmod(0o755)
        box.commit(box.base_files(), "base")
        box.write_host()
        made.append(box)
        box.start_supervisor()
        return box

    yield make
    for box in made:
        box.close()
    assert chasquids_under(tmp_path) == []


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> Sandbox:
    """A sandbox with its base revision applied and serving."""
    box = make_sandbox()
    box.apply_ok()
    return box
