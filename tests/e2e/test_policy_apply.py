"""The host's policy where the host acts: ``apply`` and the daemon, on a real chasquid.

A commit can reach the watched repo without the push hooks (hooks not
installed, a push by another way): the daemon and ``gitops-mail apply`` judge
it again with the host's policy and refuse it with the words pre-receive
uses; the live tree stays byte for byte, chasquid keeps serving the last good
configuration. Certificate paths the policy refuses tell ``history`` nothing
about the host. The sandbox's policy allows exactly what it uses
(``Sandbox.host_policy``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.register_assert_rewrite("apply_fixtures", "daemon_fixtures")

from apply_fixtures import (  # noqa: E402 - after the assertion rewrite is registered
    ALIASES_PATH,
    BASE_ALIASES,
    CONF_PATH,
    MANIFEST_PATH,
    Sandbox,
)
from daemon_fixtures import StartDaemon, attempt  # noqa: E402
from support.livetree import TreeState  # noqa: E402

pytest_plugins = ["apply_fixtures", "daemon_fixtures"]
pytestmark = [pytest.mark.netns, pytest.mark.chasquid]

REFUSED = "is not allowed by this host's policy"
HOOK = "#!/bin/sh\nid >&2\n"
HOSTNAME = "mail.example.test"
ALIAS_HOOK = "alias-resolve"


def hooked(box: Sandbox, hook: str = HOOK) -> dict[str, str]:
    """A manifest allowing hooks and an executable chasquid/hooks/post-data."""
    path = box.workdir.path / "chasquid" / "hooks" / "post-data"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(hook)
    path.chmod(0o755)  # the clone's mode is what git records
    manifest = box.manifest().replace('version: "1.11"\n', 'version: "1.11"\n  hooks: true\n')
    return {MANIFEST_PATH: manifest, "chasquid/hooks/post-data": hook}


def piped(box: Sandbox) -> str:
    return box.manifest().replace('version: "1.11"\n', 'version: "1.11"\n  pipe_aliases: true\n')


# (name, files of the attack from a Sandbox, the first problem line of the refusal)
ATTACKS = {
    "delivery agent": (
        lambda box: {CONF_PATH: box.conf(mail_delivery_agent_bin="/bin/sh")},
        f'{CONF_PATH}:8: error: mail_delivery_agent_bin "/bin/sh" {REFUSED}',
    ),
    "repo hook": (
        hooked,
        "chasquid/hooks/post-data: error: hook 'post-data' (a program chasquid runs for every "
        f"message) {REFUSED}",
    ),
    "pipe alias": (
        lambda box: {MANIFEST_PATH: piped(box), ALIASES_PATH: BASE_ALIASES + "x: | /bin/sh\n"},
        f"{ALIASES_PATH}:2: error: alias 'x' (a pipe to a command) {REFUSED}",
    ),
    "data dir": (
        lambda box: {CONF_PATH: box.conf(data_dir="/etc")},
        f'{CONF_PATH}:6: error: data_dir "/etc" {REFUSED}',
    ),
    "listen address": (
        lambda box: {CONF_PATH: box.conf(smtp_address="192.0.2.1:25")},
        f'{CONF_PATH}:2: error: smtp_address "192.0.2.1:25" {REFUSED}',
    ),
}


def refusal(revision: str, problem: str) -> str:
    """How history's reason for a refused revision starts (it keeps it whole): the
    headline, the problem, then its hint (which setting root would change)."""
    return (
        f"revision {revision[:7]} is invalid (1 error); nothing was changed:\n{problem}\n"
        "hint: root can allow it in the host settings: policy."
    )


def assert_refused(box: Sandbox, before: TreeState, revision: str, problem: str) -> None:
    """The live tree as ``before``, chasquid serves, history says why."""
    assert box.tree() == before
    last = box.history()[0]
    assert last["result"] == "invalid"
    assert last["reason"].startswith(refusal(revision, problem)), last["reason"]
    assert "\n" not in last["reason"].removeprefix(refusal(revision, problem))
    box.mail_works()


def test_a_commit_past_the_hooks_is_refused_by_the_daemon_and_mail_goes_on(
    sandbox: Sandbox, start_daemon: StartDaemon
) -> None:
    box = sandbox
    live, before = box.tip(), box.tree()
    daemon = start_daemon(box)
    daemon.ready()

    revision = box.commit({CONF_PATH: box.conf(mail_delivery_agent_bin="/bin/sh")}, "sh")

    found = attempt(box, revision, "invalid")
    assert found["reason"].startswith(refusal(revision, ATTACKS["delivery agent"][1]))
    assert box.tree() == before
    assert box.status()["live"] == live
    box.mail_works()
    assert daemon.stop() == 0


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_apply_refuses_what_the_policy_refuses_in_the_pre_receive_words(
    sandbox: Sandbox, name: str
) -> None:
    box = sandbox
    files, problem = ATTACKS[name]
    before = box.tree()
    revision = box.commit(files(box), name)

    done = box.gm("apply")

    assert (done.code, done.out) == (1, "")
    assert done.err.splitlines()[:2] == [
        f"gitops-mail: error: revision {revision[:7]} is invalid (1 error); nothing was changed:",
        problem,
    ]
    assert_refused(box, before, revision, problem)


def test_what_the_host_allows_goes_live(sandbox: Sandbox) -> None:
    box = sandbox
    box.write_host(policy={"repo_hooks": True})
    box.commit(hooked(box, "#!/bin/sh\n"), "hook")
    box.apply_ok()
    assert box.tree()["hooks/post-data"][:2] == ("file", 0o755)
    box.mail_works()


# --- certificates: nothing about the host -------------------------------------------------


def files_source(box: Sandbox, key: Path) -> dict[str, str]:
    return {MANIFEST_PATH: box.manifest(key=key)}


def test_a_key_outside_the_certificate_dirs_tells_history_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    box = sandbox
    before = box.tree()
    secret_dir = tmp_path / "root-only"
    secret_dir.mkdir(mode=0o700)
    secret = secret_dir / "other.pem"
    secret.write_bytes(box.privkey.read_bytes())  # a key that would even match
    secret.chmod(0o600)
    reasons = []
    for key in (secret, secret_dir / "missing.pem", Path("/etc/shadow")):
        revision = box.commit(files_source(box, key), f"key {key}")
        assert box.run("apply").code == 1
        problem = f"{MANIFEST_PATH}:6: error: certificate '{HOSTNAME}': key file {key} {REFUSED}"
        assert_refused(box, before, revision, problem)
        reasons.append(box.history()[0]["reason"].replace(revision[:7], "R").replace(str(key), "K"))
    assert reasons[0] == reasons[1] == reasons[2]


def test_a_link_out_of_the_certificate_dirs_is_refused_as_it_resolves(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    box = sandbox
    before = box.tree()
    secret = tmp_path / "elsewhere" / "key.pem"
    secret.parent.mkdir()
    secret.write_bytes(box.privkey.read_bytes())
    reasons = []
    for name, target in (("to-key.pem", secret), ("to-nothing.pem", secret.with_name("no.pem"))):
        link = box.root / "certs" / "first" / name
        os.symlink(target, link)
        revision = box.commit(files_source(box, link), name)
        assert box.run("apply").code == 1
        reason = box.history()[0]["reason"]
        assert reason == (
            f"certificate '{HOSTNAME}': key file {link} is not allowed by this host's policy"
        )
        reasons.append(reason.replace(name, "L"))
        assert box.tree() == before
        assert revision != box.status()["live"]
    assert reasons[0] == reasons[1]
    assert str(secret) not in "".join(reasons)
    box.mail_works()


def test_an_alias_resolve_hook_the_host_allows_answers_for_addresses_no_file_names(
    sandbox: Sandbox,
) -> None:
    """chasquid 1.11 runs hooks/alias-resolve ADDRESS for local lookups and takes what it
    prints as recipients: validate must not call it unknown, and mail for an address only
    the hook knows is accepted (250), the others still refused (550)."""
    box = sandbox
    box.write_host(policy={"repo_hooks": True})
    hook = '#!/bin/sh\n[ "$1" = "onlyhook@example.test" ] && echo ana@example.test\nexit 0\n'
    path = box.workdir.path / "chasquid" / "hooks" / ALIAS_HOOK
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(hook)
    path.chmod(0o755)
    manifest = box.manifest().replace('version: "1.11"\n', 'version: "1.11"\n  hooks: true\n')
    box.commit({MANIFEST_PATH: manifest, f"chasquid/hooks/{ALIAS_HOOK}": hook}, "alias hook")
    checked = box.run("validate", "--repo", str(box.workdir.path))
    assert checked.code == 0, checked.out
    assert "hooks.unknown" not in checked.out, checked.out
    resolved = box.run("alias", "resolve", "onlyhook@example.test", "--repo", str(box.workdir.path))
    assert resolved.code == 0 and f"it depends on chasquid/hooks/{ALIAS_HOOK}" in resolved.out
    box.apply_ok()
    assert box.tree()[f"hooks/{ALIAS_HOOK}"][:2] == ("file", 0o755)
    assert box.rcpt("onlyhook@example.test") == 250
    assert box.rcpt("nobody@example.test") == 550
