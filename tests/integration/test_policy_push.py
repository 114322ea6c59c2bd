"""A pusher who is not root tries to make the host do more than its policy allows.

Each test is an attack as a pusher makes it: the bare repo belongs to the
pusher (``gitops-test-pusher``), root installed gitops-mail's hooks with host
settings the pusher can read but not change, and the pusher runs ``git push``
as themselves. The pre-receive hook judges the pushed tip with the host's
policy: the push is refused, the message names the host setting that would
allow it, and the branch stays where it was. What the host allows goes in.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.hostpython import open_python
from support.pusher import Pusher
from support.repo import ALIASES, ALIASES_PATH, CONF_PATH, MANIFEST, MANIFEST_PATH, repo_files

from gitops_mail.cli import hooks

REJECTED = "gitops-mail: push rejected: fix the problems above and push again"
REFUSED = "is not allowed by this host's policy"
HOOK = "#!/bin/sh\ntouch /tmp/pwned-by-the-pusher\n"


def hint(setting: str) -> str:
    return f"    hint: root can allow it in the host settings: policy.{setting}"


class Host:
    """Root's side: host settings in a directory the pusher may read, hooks installed."""

    def __init__(self, where: Path, repo: Path) -> None:
        self.where, self.repo = where, repo
        self.settings = where / "gitops-mail.yaml"

    def write(self, policy: str = "") -> None:
        self.settings.write_text(
            f"repo: {self.repo}\nbranch: main\nstate_dir: {self.where / 'state'}\n{policy}"
        )
        self.settings.chmod(0o644)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``gitops-mail hooks install``, recording a Python the pusher may run."""
        args = argparse.Namespace(
            command="hooks", repo=str(self.repo), config=str(self.settings), timeout=0.05
        )
        args.force = False
        with monkeypatch.context() as patch:
            patch.setattr(sys, "executable", str(open_python(self.where)))
            assert hooks.run(args) == 0


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """Root's directory for the host settings: 0755, so the pusher's hooks can read them."""
    where = Path(tempfile.mkdtemp(prefix="gitops-host-", dir="/tmp"))
    where.chmod(0o755)
    yield where
    shutil.rmtree(where)


@pytest.fixture
def setup(
    pusher: Pusher, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Pusher, Path, Path, Host]:
    """(pusher, their bare repo, their clone, the host); a valid first commit is on main."""
    repo = pusher.bare_repo()
    work = pusher.clone(repo)
    pusher.commit(work, repo_files(), "first")
    pusher.push(work)
    host = Host(host_dir, repo)
    host.write()
    host.install(monkeypatch)
    return pusher, repo, work, host


def tip(pusher: Pusher, repo: Path) -> str:
    return pusher.git(repo, "rev-parse", "main").stdout.strip()


def push(pusher: Pusher, work: Path) -> tuple[int, list[str]]:
    """``git push`` as the pusher: its exit code and what the hooks printed."""
    done = pusher.push(work, check=False)
    said = [
        line.removeprefix("remote: ").rstrip()
        for line in done.stderr.splitlines()
        if line.startswith("remote: ")
    ]
    return done.returncode, said


def attack(setup, files: dict[str, str | None], *, mode: int = 0o644) -> tuple[str, list[str]]:
    """Commit ``files`` as the pusher and push; assert the push was refused and the branch
    stayed. The commit's short id and the lines the hooks printed."""
    pusher, repo, work, _ = setup
    before = tip(pusher, repo)
    for name, content in files.items():
        pusher.write(work / name, content, mode=mode if "hooks/" in name else 0o644)
    commit = pusher.commit(work, {}, "attack")
    code, said = push(pusher, work)
    assert code == 1, said
    assert said[-1] == REJECTED
    assert tip(pusher, repo) == before
    return commit[:7], said


def accepted(setup) -> list[str]:
    pusher, repo, work, _ = setup
    code, said = push(pusher, work)
    assert code == 0, said
    assert tip(pusher, repo) == pusher.git(work, "rev-parse", "HEAD").stdout.strip()
    return said


# --- (a) a delivery agent of the pusher's choosing --------------------------------------------


def test_a_pushed_shell_as_delivery_agent_is_refused(setup) -> None:
    conf = (
        'hostname: "mail.example.com"\nmail_delivery_agent_bin: "/bin/sh"\n'
        'mail_delivery_agent_args: "-c"\nmail_delivery_agent_args: "id > /tmp/pwned"\n'
    )
    commit, said = attack(setup, {CONF_PATH: conf})
    assert said == [
        f'{CONF_PATH}:2: error: mail_delivery_agent_bin "/bin/sh" {REFUSED}',
        hint("delivery_agents"),
        f"main ({commit}): invalid: 1 error, 0 warnings",
        REJECTED,
    ]


# --- (b) a repo hook, allowed only by the manifest -------------------------------------------


HOOKED = MANIFEST.replace("version: 1\n", "version: 1\nchasquid:\n  hooks: true\n")


def test_a_hook_the_manifest_allows_is_refused_unless_the_host_allows_repo_hooks(setup) -> None:
    files = {MANIFEST_PATH: HOOKED, "chasquid/hooks/post-data": HOOK}
    commit, said = attack(setup, files, mode=0o755)
    assert said == [
        "chasquid/hooks/post-data: error: hook 'post-data' (a program chasquid runs for every "
        f"message) {REFUSED}",
        hint("repo_hooks"),
        f"main ({commit}): invalid: 1 error, 0 warnings",
        REJECTED,
    ]
    setup[3].write("policy:\n  repo_hooks: true\n")
    assert accepted(setup)[0] == f"main ({commit}): valid"


# --- (c) a pipe alias -------------------------------------------------------------------------


PIPES = MANIFEST.replace("version: 1\n", "version: 1\nchasquid:\n  pipe_aliases: true\n")


def test_a_pipe_alias_is_refused_unless_the_host_allows_pipe_aliases(setup) -> None:
    files = {MANIFEST_PATH: PIPES, ALIASES_PATH: ALIASES + "run: | /bin/sh -c id\n"}
    commit, said = attack(setup, files)
    assert said == [
        f"{ALIASES_PATH}:3: error: alias 'run' (a pipe to a command) {REFUSED}",
        hint("pipe_aliases"),
        f"main ({commit}): invalid: 1 error, 0 warnings",
        REJECTED,
    ]
    setup[3].write("policy:\n  pipe_aliases: true\n")
    assert accepted(setup)[0] == f"main ({commit}): valid"


# --- (d) a key of the host --------------------------------------------------------------------


def test_a_certificate_key_elsewhere_on_the_host_is_refused_and_nothing_is_told(
    setup, host_dir: Path
) -> None:
    secret_dir = host_dir / "private"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "other.key").write_text("-----BEGIN PRIVATE KEY-----\nroot's\n")
    (secret_dir / "other.key").chmod(0o600)
    said = {}
    for name in ("other.key", "missing.key"):
        key = secret_dir / name
        source = f"    files: {{fullchain: /etc/letsencrypt/live/x/fullchain.pem, key: {key}}}\n"
        manifest = MANIFEST.replace("    acme_sh: /root/.acme.sh/mail.example.com_ecc\n", source)
        commit, said[name] = attack(setup, {MANIFEST_PATH: manifest})
        assert said[name] == [
            f"{MANIFEST_PATH}:4: error: certificate 'mail.example.com': key file {key} {REFUSED}",
            hint("certificate_dirs"),
            f"main ({commit}): invalid: 1 error, 0 warnings",
            REJECTED,
        ]
    existing, missing = ("\n".join(said[n][:2]) for n in ("other.key", "missing.key"))
    assert existing.replace("other.key", "K") == missing.replace("missing.key", "K")


# --- (e) where chasquid writes ----------------------------------------------------------------


def test_data_dir_and_mail_log_outside_the_write_dirs_are_refused(setup) -> None:
    conf = 'hostname: "mail.example.com"\ndata_dir: "/etc"\nmail_log_path: "/etc/cron.d/x"\n'
    commit, said = attack(setup, {CONF_PATH: conf})
    assert said == [
        f'{CONF_PATH}:2: error: data_dir "/etc" {REFUSED}',
        hint("chasquid_write_dirs"),
        f'{CONF_PATH}:3: error: mail_log_path "/etc/cron.d/x" {REFUSED}',
        hint("chasquid_write_dirs"),
        f"main ({commit}): invalid: 2 errors, 0 warnings",
        REJECTED,
    ]


# --- (f) where the probes connect -------------------------------------------------------------


def test_a_listen_address_outside_the_probe_networks_is_refused(setup) -> None:
    conf = 'hostname: "mail.example.com"\nsmtp_address: "192.0.2.10:25"\n'
    commit, said = attack(setup, {CONF_PATH: conf})
    assert said == [
        f'{CONF_PATH}:2: error: smtp_address "192.0.2.10:25" {REFUSED}',
        hint("probe_networks"),
        f"main ({commit}): invalid: 1 error, 0 warnings",
        REJECTED,
    ]
