"""``gitops-mail deploy`` against real sshd "hosts" on loopback (see deploy_fixtures.py).

The deployed daemon is started by the fake systemctl from the unit deploy
installed, so what runs is what a host would run: the unit's ExecStart, the
link it names, the venv made from the uploaded wheels, the host settings
deploy wrote. Those say ``service: supervise``: the fake starts ``gitops-mail
supervise`` for chasquid's socket units, standing in for socket-activated
chasquid, and each host's units run in the host's own network namespace.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["apply_fixtures", "deploy_fixtures"]
pytest.register_assert_rewrite("deploy_fixtures")

from deploy_fixtures import (  # noqa: E402 - after the plugins
    ALIASES,
    PUSHER,
    REPO,
    SETTINGS,
    USERS,
    Host,
    World,
    make_pusher,
)
from support.livetree import tree_state  # noqa: E402

from gitops_mail.host import settings as hostsettings  # noqa: E402

RCPT = """
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.test", timeout=10) as s:
    s.ehlo(); s.mail("<>"); print(s.rcpt(sys.argv[2])[0])
"""
LINK = "usr/local/bin/gitops-mail"
VENV_COMMAND = "opt/gitops-mail/venv/bin/gitops-mail"
UNIT = "etc/systemd/system/gitops-mail.service"


def rcpt(host: Host, address: str, port: int = 2525) -> str:
    """chasquid's reply code to RCPT TO ``address``, asked inside the host's network."""
    done = host.in_netns([sys.executable, "-c", RCPT, str(port), address])
    return done.stdout.strip() or done.stderr.strip()


def status(host: Host) -> dict[str, Any]:
    """``gitops-mail status --format json`` with the deployed command and settings."""
    done = subprocess.run(
        [host.at(LINK), "--config", host.at(SETTINGS), "status", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def git(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )


def contains(host: Host, live: str, revision: str) -> bool:
    """Whether the host's live revision is ``revision`` or a commit after it (commit-back)."""
    argv = ["git", "-c", "safe.directory=*", "-C", str(host.at(REPO))]
    done = subprocess.run([*argv, "merge-base", "--is-ancestor", revision, live], check=False)
    return done.returncode == 0


def progress(out: str, host: Host) -> dict[str, str]:
    """Each step's result in the progress lines of ``host``: {step: "unchanged"|...}."""
    prefix = f"[{host.sshd.address}] "
    found = {}
    for line in out.splitlines():
        if line.startswith(prefix) and ": " in line and "remote:" not in line:
            step, _, rest = line[len(prefix) :].partition(": ")
            found[step] = rest.split(":")[0].split(" (")[0]
    return found


def test_first_deploy_installs_and_starts_then_a_second_changes_nothing(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    host = deploy_world.add_host()
    conf = deploy_world.conf_repo(workdir, users_files.ana, tls_cert())
    tip = git(conf, "rev-parse", "HEAD").stdout.strip()

    first = deploy_world.deploy(host.spec, conf=conf)

    assert first.code == 0, first.out + first.err
    assert "1 of 1 host(s) deployed" in first.out
    steps = progress(first.out, host)
    assert steps["venv"] == steps["unit"] == steps["gitops-mail service"] == "changed"
    assert f"pushed {tip[:7]}" in first.out
    assert (
        f"applied {tip[:7]}: restarted chasquid, probes ok" in first.out
    )  # post-receive, from the daemon
    # the pusher deploy created owns the watched repo and can only run git
    account = pwd.getpwnam(PUSHER)
    assert account.pw_shell == "/usr/bin/git-shell"
    assert host.at(REPO).stat().st_uid == account.pw_uid
    # the unit's ExecStart, the link and the venv agree, and systemd accepts the unit
    unit = host.at(UNIT).read_text()
    assert f"ExecStart={host.at(LINK)} daemon" in unit
    assert os.readlink(host.at(LINK)) == str(host.at(VENV_COMMAND))
    verify = subprocess.run(
        ["systemd-analyze", "verify", host.at(UNIT)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0 and "gitops-mail" not in verify.stderr, verify.stderr
    # the host settings are deploy/gitops-mail.yaml's, with this host's paths
    settings = hostsettings.load(str(host.at(SETTINGS)))
    assert (settings.repo, settings.chasquid.service) == (host.at(REPO), "supervise")
    assert settings.chasquid.config_dir == host.at("etc/chasquid")
    calls = host.calls()
    assert ["enable", "gitops-mail.service"] in calls and ["start", "gitops-mail.service"] in calls
    assert [
        "enable",
        "chasquid-smtp.socket",
        "chasquid-submission.socket",
        "chasquid-submission_tls.socket",
    ] in calls
    url = git(conf, "remote", "get-url", "vps").stdout.strip()
    assert url == f"ssh://{PUSHER}@{host.sshd.address}:{host.sshd.port}{host.at(REPO)}"
    live = status(host)
    assert live["chasquid_running"] and live["daemon"]["running"]
    assert contains(host, live["live"], tip)
    assert rcpt(host, "postmaster@example.test") == "250"
    assert "@          IN MX   10 mail.example.test." in first.out

    before = len(calls)
    second = deploy_world.deploy(host.spec, conf=conf)

    assert second.code == 0, second.out + second.err
    assert "ok: no change" in second.out, second.out
    assert set(progress(second.out, host).values()) == {"unchanged"}
    verbs = {call[0] for call in host.calls()[before:]}
    assert verbs <= {"is-enabled", "is-active"}, host.calls()[before:]


def test_a_push_to_the_deployed_repo_is_applied_by_the_deployed_daemon(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    host = deploy_world.add_host()
    conf = deploy_world.conf_repo(workdir, users_files.ana, tls_cert())
    assert deploy_world.deploy(host.spec, conf=conf).code == 0
    assert rcpt(host, "sales@example.test") == "550"
    # the daemon committed the zone back ([skip ci]): build on that, as the README says
    env = deploy_world.env
    git(conf, "pull", "--quiet", "--rebase", "vps", "main", env=env)
    (conf / ALIASES).write_text("postmaster: ana\nsales: ana\n")
    git(conf, "commit", "--quiet", "-am", "Forward sales@")
    new = git(conf, "rev-parse", "HEAD").stdout.strip()

    pushed = subprocess.run(
        ["git", "-C", str(conf), "push", "vps", "main"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert pushed.returncode == 0, pushed.stderr
    assert f"applied {new[:7]}: " in pushed.stderr
    assert rcpt(host, "sales@example.test") == "250"
    assert contains(host, status(host)["live"], new)


def _existing_chasquid(world: World, host: Host, users: bytes) -> Path:
    """A chasquid config made by hand on the host, before gitops-mail: conf, certs, one domain."""
    live = host.at("etc/chasquid")
    files = world.conf_files(users)
    for path, data in files.items():
        if path.startswith("chasquid/"):
            target = live / path.removeprefix("chasquid/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.encode() if isinstance(data, str) else data)
    (live / "domains/example.test/aliases").write_text("postmaster: ana\n# kept by hand\n*: ana\n")
    certs = live / "certs" / "mail.example.test"
    certs.mkdir(parents=True)
    for name in ("fullchain.pem", "privkey.pem"):
        (certs / name).symlink_to(world.mail / "certs" / "mail.example.test" / name)
    return live


def test_adopt_imports_an_existing_config_and_nothing_is_lost(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any, tmp_path: Path
) -> None:
    host = deploy_world.add_host()
    deploy_world.conf_repo(workdir, users_files.ana, tls_cert())  # the certificate and mda
    live = _existing_chasquid(deploy_world, host, users_files.ana)
    before = tree_state(live)
    users, aliases = (
        (live / "domains/example.test/users").read_bytes(),
        (live / "domains/example.test/aliases").read_bytes(),
    )

    refused = deploy_world.deploy(host.spec, conf=Path(workdir.path))

    assert refused.code == 1
    assert (
        "has a chasquid config in /etc/chasquid that gitops-mail does not manage yet" in refused.out
    )
    assert (
        "hint: pass --adopt to import it into the conf repo first (nothing is lost)" in refused.out
    )
    assert tree_state(live) == before and not host.at("opt").exists()

    adopted = tmp_path / "adopted"
    done = deploy_world.deploy("--adopt", host.spec, conf=adopted)

    assert done.code == 0, done.out + done.err
    assert "adopt: changed: imported /etc/chasquid" in done.out
    assert (adopted / USERS).read_bytes() == users and (adopted / ALIASES).read_bytes() == aliases
    manifest = (adopted / "gitops-mail.yaml").read_text()
    assert (
        f'files: {{"fullchain": "{deploy_world.mail}/certs/mail.example.test/fullchain.pem"'
        in manifest
    )
    assert (live / "domains/example.test/users").read_bytes() == users
    assert (live / "domains/example.test/aliases").read_bytes() == aliases
    assert rcpt(host, "anyone@example.test") == "250"  # the catch-all still delivers
    assert status(host)["live"]


def test_one_unreachable_host_of_three_is_reported_and_the_others_deploy(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    make_pusher(deploy_world.base, deploy_world.keys.public.read_text())
    one, two = deploy_world.add_host(), deploy_world.add_host()
    down = deploy_world.add_host(start=False)
    conf = deploy_world.conf_repo(workdir, users_files.ana, tls_cert())

    done = deploy_world.deploy(one.spec, two.spec, down.spec, conf=conf)

    assert done.code == 1
    assert "2 of 3 host(s) deployed; failed: 127.0.0.4" in done.out
    assert f"[127.0.0.4] FAILED: {down.spec}: cannot connect: Connection refused" in done.out
    for host in (one, two):
        assert progress(done.out, host)["gitops-mail service"] == "changed"
        assert status(host)["live"]
        assert rcpt(host, "postmaster@example.test") == "250"
        remote = f"vps-{host.sshd.address}"
        assert git(conf, "remote", "get-url", remote).stdout.strip().endswith(str(host.at(REPO)))
    assert not down.at("opt").exists()


def test_a_host_whose_key_is_not_the_known_one_is_refused_untouched(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    other = deploy_world.base / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    host = deploy_world.add_host(trusted=False)
    deploy_world.keys.trust(
        host.sshd, other.with_name("other_host_key.pub")
    )  # someone in the middle
    stranger = deploy_world.add_host(trusted=False)  # never seen
    conf = deploy_world.conf_repo(workdir, users_files.ana, tls_cert())

    done = deploy_world.deploy(host.spec, stranger.spec, conf=conf)

    assert done.code == 1
    assert f"{host.spec}: the host key is not the one known_hosts has for it" in done.out
    assert f"{stranger.spec}: the host key is unknown" in done.out
    assert "hint: check the key, then pass --accept-new-host-key" in done.out
    assert not host.at("opt").exists() and not stranger.at("opt").exists()
    assert host.calls() == [] and stranger.calls() == []
    assert git(conf, "remote").stdout.split() == ["origin"]


def test_accept_new_host_key_trusts_a_new_host_once_and_keeps_known_hosts(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    stranger = deploy_world.add_host(trusted=False)
    known = deploy_world.keys.known_hosts
    ca = deploy_world.keys.public.read_text().split()[:2]  # any valid key
    known.write_text(f"# kept as it is\n@cert-authority *.example.test {' '.join(ca)}\n")
    before = known.read_text()
    conf = deploy_world.conf_repo(workdir, users_files.ana, tls_cert())

    done = deploy_world.deploy("--accept-new-host-key", stranger.spec, conf=conf)

    assert done.code == 0, done.out + done.err
    host_key = deploy_world.host_key.with_name(deploy_world.host_key.name + ".pub").read_text()
    line = f"[{stranger.sshd.address}]:{stranger.sshd.port} {' '.join(host_key.split()[:2])}\n"
    assert known.read_text() == before + line  # git's OpenSSH push then found it there


ADMIN = f"gitops-deploy-admin-{secrets.token_hex(3)}"  # a real user: this run's own


@pytest.fixture
def sudo_admin(deploy_world: World) -> Iterator[str]:
    """A login user whose sudo needs no password, as on a cloud image's default user.

    Its sudoers file is a bind mount over /etc/sudoers.d made inside the test's
    private mount namespace (scripts/netns-run): the machine's own stays as it is.
    """
    drop = deploy_world.base / "sudoers.d"
    drop.mkdir(mode=0o750)
    (drop / "deploy-test").write_text(f"{ADMIN} ALL=(ALL) NOPASSWD: ALL\n")
    (drop / "deploy-test").chmod(0o440)
    useradd = ["useradd", "--create-home", "--home-dir", str(deploy_world.base / ADMIN)]
    subprocess.run([*useradd, "--shell", "/bin/sh", "--password", "*", ADMIN], check=True)
    subprocess.run(["mount", "--bind", str(drop), "/etc/sudoers.d"], check=True)
    try:
        yield ADMIN
    finally:
        subprocess.run(["umount", "/etc/sudoers.d"], check=True)
        subprocess.run(["userdel", ADMIN], check=True)


def test_a_sudo_user_deploys_as_root_through_sudo(
    deploy_world: World, sudo_admin: str, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    host = deploy_world.add_host()
    (host.sshd.root / f"authorized_keys_{sudo_admin}").write_text(
        deploy_world.keys.public.read_text()
    )
    conf = deploy_world.conf_repo(workdir, users_files.ana, tls_cert())
    spec = f"{sudo_admin}@{host.sshd.address}:{host.sshd.port}"

    done = deploy_world.deploy(spec, conf=conf)

    assert done.code == 0, done.out + done.err
    assert host.at(VENV_COMMAND).exists() and host.at(UNIT).stat().st_uid == 0
    assert rcpt(host, "postmaster@example.test") == "250"
    leftovers = list(Path("/tmp").glob("gitops-mail-deploy.*"))  # the staging dir, as root
    assert not [p for p in leftovers if p.stat().st_uid == pwd.getpwnam(sudo_admin).pw_uid]


def test_a_login_user_without_sudo_is_told_how_to_fix_it(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    host = deploy_world.add_host()
    (host.sshd.root / f"authorized_keys_{PUSHER}").write_text(deploy_world.keys.public.read_text())
    make_pusher(deploy_world.base, deploy_world.keys.public.read_text())
    subprocess.run(["usermod", "--shell", "/bin/sh", PUSHER], check=True)  # a shell, no sudo
    conf = deploy_world.conf_repo(workdir, users_files.ana, tls_cert())

    done = deploy_world.deploy(f"{PUSHER}@{host.sshd.address}:{host.sshd.port}", conf=conf)

    assert done.code == 1
    assert (
        "hint: sudo needs a password: allow it without one (NOPASSWD) or log in as root" in done.out
    )
    assert not host.at("opt").exists()
