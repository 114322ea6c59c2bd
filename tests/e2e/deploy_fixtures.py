"""Fixtures for ``gitops-mail deploy`` end to end (a pytest plugin, with ``apply_fixtures``).

``deploy_world() -> World``: pretend hosts, each a real ``sshd`` on its own
loopback address (127.0.0.2, ...) with a throwaway host key, a directory the
deploy installs below (``--root``) and a fake ``systemctl`` (support.fakesystemctl)
that runs the installed unit's ExecStart in the host's own network namespace.
The deployer logs in as root with a throwaway client key; the pusher deploy
creates is a real system user (``gitops-deploy-pusher-`` and a token of this
test run), removed at the end: runs side by side on one machine (several
checkouts) never remove or re-key each other's.

``World.conf_repo()`` makes the conf repo to deploy: chasquid on loopback
ports, one user, aliases, a certificate from the session CA. Every path it
names lies under the world's shared ``mail/`` directory, which the host
settings' policy allows (``World.settings_template``). The wheelhouse cache is
shared by the session (``XDG_CACHE_HOME``): it is built once.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import chasquiduser, fakesystemctl
from support.mail import MDA
from support.sshd import ClientKeys, Sshd, keygen
from support.wait import poll

GITOPS_MAIL = [sys.executable, "-m", "gitops_mail"]
PUSHER = f"gitops-deploy-pusher-{secrets.token_hex(3)}"  # a system user: this run's own
DOMAIN = "example.test"
HOSTNAME = "mail.example.test"
ALIASES = f"chasquid/domains/{DOMAIN}/aliases"
USERS = f"chasquid/domains/{DOMAIN}/users"
SETTINGS = "etc/gitops-mail/gitops-mail.yaml"
REPO = "srv/mail-conf.git"
TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "gitops-mail.yaml"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass
class Host:
    sshd: Sshd
    root: Path  # --root of this host
    fake: Path  # the fake systemctl's directory (its script, state and calls)

    @property
    def spec(self) -> str:
        return self.sshd.spec

    def at(self, path: str) -> Path:
        return self.root / path

    def calls(self) -> list[list[str]]:
        return fakesystemctl.calls(self.fake)

    def in_netns(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """``argv`` inside this host's network namespace (where its chasquid listens)."""
        holder = fakesystemctl._state_at(self.fake)["holder"]
        enter = ["nsenter", f"--net=/proc/{holder}/ns/net", "--"]
        return subprocess.run(
            [*enter, *argv], capture_output=True, text=True, timeout=60, check=False
        )


@dataclass
class World:
    base: Path  # world-readable: the pusher walks to its home and repo below it
    keys: ClientKeys
    host_key: Path
    env: dict[str, str]
    ports: Callable[[], dict[str, int]]
    hosts: list[Host] = field(default_factory=list)

    @property
    def mail(self) -> Path:
        return self.base / "mail"

    def add_host(self, *, start: bool = True, trusted: bool = True, name: str = "") -> Host:
        """The next pretend host; ``name``: deploy calls it so (``NAME=`` or the manifest's
        hosts:), which names its directories (``{host}``); else its address."""
        number = len(self.hosts) + 2
        address = f"127.0.0.{number}"
        root = self.base / (name or address)
        root.mkdir(mode=0o755)
        sshd = Sshd(address, 2200 + number, self.base / f"sshd-{address}", self.host_key)
        fake = self.base / f"systemctl-{name or address}"
        fakesystemctl.install_fake_systemctl(fake, root / "etc" / "systemd" / "system")
        host = Host(sshd, root, fake)
        self.hosts.append(host)
        if start:
            sshd.start(self.keys.public)
        if trusted:
            self.keys.trust(sshd)
        return host

    def conf_repo(self, workdir: Any, users: bytes, cert: Any, smtp: int = 2525) -> Path:
        """Commit the conf to ``workdir`` (tests/conftest.py's clone): the repo deploy pushes."""
        certs = self.mail / "certs" / HOSTNAME
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(cert.fullchain, certs / "fullchain.pem")
        shutil.copy(cert.privkey, certs / "privkey.pem")
        mda = self.mail / "mda.sh"
        mda.write_text(MDA.format(mailboxes=self.mail / "mailboxes"))
        mda.chmod(0o755)
        for name in ("mailboxes", "data"):  # chasquid runs as chasquid, and writes these
            chasquiduser.give(self.mail / name, directory=True)
        chasquiduser.give(self.mail / "mail.log")
        workdir.commit(self.conf_files(users, smtp), "base")
        return Path(workdir.path)

    def conf_files(self, users: bytes, smtp: int = 2525) -> dict[str, bytes | str]:
        certs = self.mail / "certs" / HOSTNAME
        conf = {
            "hostname": HOSTNAME,
            "smtp_address": f"127.0.0.1:{smtp}",
            "submission_address": f"127.0.0.1:{smtp + 1}",
            "submission_over_tls_address": f"127.0.0.1:{smtp + 2}",
            "monitoring_address": f"127.0.0.1:{smtp + 3}",
            "data_dir": str(self.mail / "data"),
            "mail_log_path": str(self.mail / "mail.log"),
            "mail_delivery_agent_bin": str(self.mail / "mda.sh"),
            "mail_delivery_agent_args": "%to%",
        }
        manifest = (
            'version: 1\nchasquid:\n  version: "1.11"\ncertificates:\n'
            f"  - name: {HOSTNAME}\n"
            f"    files: {{fullchain: {certs}/fullchain.pem, key: {certs}/privkey.pem}}\n"
            f"domains:\n  {DOMAIN}: {{}}\n"
        )
        return {
            "gitops-mail.yaml": manifest,
            "chasquid/chasquid.conf": "".join(f'{k}: "{v}"\n' for k, v in conf.items()),
            USERS: users,
            ALIASES: "postmaster: ana\n",
        }

    def settings_template(self) -> Path:
        """deploy/gitops-mail.yaml with a policy that allows the world's mail/ paths."""
        text = TEMPLATE.read_text()
        for old, new in (
            ("delivery_agents: [maildrop]", f"delivery_agents: [{self.mail}/mda.sh]"),
            (
                "certificate_dirs: [/root/.acme.sh, /etc/letsencrypt]",
                f"certificate_dirs: [{self.mail}/certs]",
            ),
            (
                "chasquid_write_dirs: [/var/lib/chasquid, /var/log/chasquid]",
                f"chasquid_write_dirs: [{self.mail}]",
            ),
        ):
            assert old in text, f"deploy/gitops-mail.yaml changed: {old!r} is gone"
            text = text.replace(old, new)
        path = self.base / "host-settings.yaml"
        path.write_text(text)
        return path

    def deploy(self, *args: str, conf: Path, timeout: float = 600) -> Result:
        done = subprocess.run(
            self.argv(*args, conf=conf),
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def argv(self, *args: str, conf: Path) -> list[str]:
        """The deploy command line for ``args`` (hosts and options) in this world."""
        argv = [*GITOPS_MAIL, "deploy", "--conf", str(conf), "--pusher", PUSHER]
        argv += ["--push-key", str(self.keys.public), "--chasquid-service", "supervise"]
        argv += ["--host-settings", str(self.settings_template())]
        # each pretend host installs below its own directory and has its own systemctl
        argv += ["--root", f"{self.base}/{{host}}"]
        argv += ["--systemctl", f"{self.base}/systemctl-{{host}}/systemctl"]
        return [*argv, *args]

    def close(self) -> None:
        for host in self.hosts:
            fakesystemctl.stop_all(host.fake)
            host.sshd.stop()


@pytest.fixture(scope="session")
def deploy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XDG_CACHE_HOME for every deploy of the session: the wheelhouse is built once."""
    return tmp_path_factory.mktemp("deploy-cache")


@pytest.fixture(scope="session")
def deploy_host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("host-key") / "ssh_host_ed25519_key"
    keygen(path, "host@test")
    return path


def make_pusher(base: Path, public_key: str) -> None:
    """The pusher, made beforehand, with the deployer's key: for several pretend hosts,
    which share this machine's accounts where a real fleet would not."""
    home = base / "pusher-home"
    useradd = ["useradd", "--system", "--user-group", "--create-home", "--home-dir", str(home)]
    subprocess.run(
        [*useradd, "--shell", "/usr/bin/git-shell", "--password", "*", PUSHER], check=True
    )
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh/authorized_keys").write_text(public_key)
    subprocess.run(["chown", "-R", f"{PUSHER}:{PUSHER}", str(home)], check=True)


def remove_pusher() -> None:
    try:
        pwd.getpwnam(PUSHER)
    except KeyError:
        return
    subprocess.run(["userdel", PUSHER], check=True, capture_output=True)


@pytest.fixture
def deploy_world(tmp_path: Path, deploy_cache: Path, deploy_host_key: Path) -> Iterator[World]:
    remove_pusher()  # each test's first deploy creates it
    base = Path(tempfile.mkdtemp(prefix="gitops-deploy-", dir="/tmp"))
    base.chmod(0o755)
    home = Path(os.environ["HOME"])
    keys = ClientKeys(base / "client")
    config = keys.write_ssh_config(home)
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(deploy_cache),
        "GIT_SSH_COMMAND": f"ssh -F {config}",
    }
    (base / "mail").mkdir(mode=0o755)
    world = World(base, keys, deploy_host_key, env, ports=lambda: {})
    yield world
    world.close()
    remove_pusher()
    shutil.rmtree(base, ignore_errors=True)


__all__ = [
    "ALIASES",
    "DOMAIN",
    "HOSTNAME",
    "PUSHER",
    "REPO",
    "SETTINGS",
    "USERS",
    "Host",
    "Result",
    "World",
    "make_pusher",
    "poll",
    "remove_pusher",
]
