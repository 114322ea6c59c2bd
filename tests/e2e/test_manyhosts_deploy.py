"""Two servers from one conf repo (``hosts:``), deployed to two pretend hosts.

Each host is a real sshd with its own root, fake systemctl and network
namespace (deploy_fixtures.py); each daemon reconciles the same commits,
pushed to each host's repo (push fan-out). Each renders its own hostname,
listen address, data_dir and certificate; the zone lists both; a change and
its ``git revert`` reach both, as chasquid on each answers RCPT.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["apply_fixtures", "deploy_fixtures"]
pytest.register_assert_rewrite("deploy_fixtures")

from deploy_fixtures import (  # noqa: E402 - after the plugins
    ALIASES,
    REPO,
    SETTINGS,
    Host,
    World,
    make_pusher,
)
from support import chasquiduser  # noqa: E402

from gitops_mail.host import settings as hostsettings  # noqa: E402

SMTP = {"mx1": 2525, "mx2": 2625}  # mx2 listens elsewhere: its overrides say so
SESSION = """
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.test", timeout=10) as s:
    greeting = s.ehlo()[1].split(b"\\n")[0].decode().split(" ")[0]
    s.mail("<>"); print(s.rcpt(sys.argv[2])[0], greeting)
"""


def answer(host: Host, name: str, address: str) -> tuple[str, str]:
    """(RCPT reply code, the EHLO greeting's first line) from the host's own chasquid."""
    done = host.in_netns([sys.executable, "-c", SESSION, str(SMTP[name]), address])
    code, _, greeting = (done.stdout.strip() or done.stderr.strip()).partition(" ")
    return code, greeting


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def hosts_manifest(world: World, base: str) -> str:
    """The world's manifest with two hosts: each its hostname, address, certificate,
    listen address, data_dir and mail log."""
    certs = world.mail / "certs"
    entries = "".join(
        f"  - name: {n}.example.test\n"
        f"    files: {{fullchain: {certs}/{n}.example.test/fullchain.pem, "
        f"key: {certs}/{n}.example.test/privkey.pem}}\n"
        for n in SMTP
    )
    manifest = base.replace("certificates:\n", "certificates:\n" + entries, 1)
    hosts = "hosts:\n"
    for number, name in enumerate(SMTP, start=2):
        hosts += (
            f"  {name}:\n    hostname: {name}.example.test\n    ipv4: [192.0.2.{number}]\n"
            f"    certificate: {name}.example.test\n    overrides:\n"
            f"      data_dir: {world.mail}/data-{name}\n"
            f"      mail_log_path: {world.mail}/mail-{name}.log\n"
        )
    hosts += f'      smtp_address: ["127.0.0.1:{SMTP["mx2"]}"]\n'  # the last host's: mx2
    return manifest + hosts


def test_two_hosts_from_one_repo_render_their_own_and_a_revert_reaches_both(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    world = deploy_world
    make_pusher(world.base, world.keys.public.read_text())  # the hosts share this machine's users
    mx1, mx2 = world.add_host(name="mx1"), world.add_host(name="mx2")
    hosts = {"mx1": mx1, "mx2": mx2}
    conf = world.conf_repo(workdir, users_files.ana, tls_cert())
    for name in hosts:
        cert = tls_cert(f"{name}.example.test")
        where = world.mail / "certs" / f"{name}.example.test"
        where.mkdir(parents=True)
        shutil.copy(cert.fullchain, where / "fullchain.pem")
        shutil.copy(cert.privkey, where / "privkey.pem")
        chasquiduser.give(world.mail / f"data-{name}", directory=True)
        chasquiduser.give(world.mail / f"mail-{name}.log")
    manifest = hosts_manifest(world, (conf / "gitops-mail.yaml").read_text())
    workdir.commit({"gitops-mail.yaml": manifest}, "Two servers: mx1 and mx2")

    done = world.deploy(f"mx1={mx1.spec}", f"mx2={mx2.spec}", conf=conf)

    assert done.code == 0, done.out + done.err
    assert "2 of 2 host(s) deployed" in done.out
    for name, host in hosts.items():
        assert hostsettings.load(str(host.at(SETTINGS))).host == name
        live = host.at("etc/chasquid/chasquid.conf").read_text()
        assert f'hostname: "{name}.example.test"' in live
        assert f'data_dir: "{world.mail}/data-{name}"' in live
        assert sorted(p.name for p in host.at("etc/chasquid/certs").iterdir()) == [
            "mail.example.test",
            f"{name}.example.test",
        ]
        assert answer(host, name, "postmaster@example.test") == ("250", f"{name}.example.test")
    assert 'smtp_address: "127.0.0.1:2625"' in mx2.at("etc/chasquid/chasquid.conf").read_text()
    # the zone lists both, as each daemon committed it back: the same commit on both
    heads = {
        n: git(h.at(REPO), "-c", "safe.directory=*", "rev-parse", "main") for n, h in hosts.items()
    }
    assert heads["mx1"] == heads["mx2"]
    zone = git(mx1.at(REPO), "-c", "safe.directory=*", "show", "main:dns/example.test.zone")
    for line in (
        "@          IN MX   10 mx1.example.test.",
        "@          IN MX   20 mx2.example.test.",
        "mx1        IN A    192.0.2.2",
        "mx2        IN A    192.0.2.3",
    ):
        assert line in zone

    # a change pushed to mx1 only: the rollout status names the host it did not reach
    env = world.env
    git(conf, "pull", "--quiet", "--rebase", "vps-mx1", "main", env=env)
    (conf / ALIASES).write_text("postmaster: ana\nsales: ana\n")
    git(conf, "commit", "--quiet", "-am", "Forward sales@")
    change = git(conf, "rev-parse", "HEAD").strip()
    assert f"applied {change[:7]}: " in git(conf, "push", "vps-mx1", "main", env=env)
    lagging = world.deploy("--status", f"mx1={mx1.spec}", f"mx2={mx2.spec}", conf=conf)
    assert lagging.code == 1, lagging.out + lagging.err
    assert f"{change[:7]} is live on mx1; not yet on mx2" in lagging.out
    assert "its main lacks the tip: push to it (git push vps-mx2 main)" in lagging.out
    assert answer(mx1, "mx1", "sales@example.test")[0] == "250"
    assert answer(mx2, "mx2", "sales@example.test")[0] == "550"

    assert f"applied {change[:7]}: " in git(conf, "push", "vps-mx2", "main", env=env)
    for name, host in hosts.items():
        assert answer(host, name, "sales@example.test")[0] == "250"

    # the revert reaches both
    git(conf, "revert", "--no-edit", "HEAD")
    revert = git(conf, "rev-parse", "HEAD").strip()
    for name, host in hosts.items():
        assert f"applied {revert[:7]}: " in git(conf, "push", f"vps-{name}", "main", env=env)
        assert answer(host, name, "sales@example.test")[0] == "550"
        assert answer(host, name, "postmaster@example.test")[0] == "250"
    reached = world.deploy("--status", f"mx1={mx1.spec}", f"mx2={mx2.spec}", conf=conf)
    assert reached.code == 0, reached.out + reached.err
    assert f"{revert[:7]} is live on every host (mx1, mx2)" in reached.out


def test_a_target_that_is_none_of_the_hosts_is_refused_before_any_login(
    deploy_world: World, workdir: Any, users_files: Any, tls_cert: Any
) -> None:
    host = deploy_world.add_host(start=False)
    conf = deploy_world.conf_repo(workdir, users_files.ana, tls_cert())
    manifest = (conf / "gitops-mail.yaml").read_text() + (
        "hosts:\n  mx1: {hostname: mx1.example.test}\n  mx2: {hostname: mx2.example.test}\n"
    )
    workdir.commit({"gitops-mail.yaml": manifest}, "Two servers")

    done = deploy_world.deploy(host.spec, conf=conf)

    assert done.code == 1
    assert f"'{host.spec}': 127.0.0.2 is none of the manifest's hosts (mx1, mx2)" in done.err, (
        done.err
    )
    assert f"NAME={host.spec}, NAME one of mx1, mx2" in done.err
    assert not host.at("opt").exists()
