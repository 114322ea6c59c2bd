"""``gitops-mail validate`` and the host's policy: an error on a host, a note without one.

With host settings (``--config``, or ``GITOPS_MAIL_CONFIG`` naming a file that
exists) validate judges as the pre-receive hook and the daemon do. Without
(a checkout, CI; the autouse fixture points ``GITOPS_MAIL_CONFIG`` nowhere)
it tells which fields a host must allow, as notes that fail nothing, not even
``--strict``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.repo import CONF_PATH, repo_files

from gitops_mail.cli.main import main

SH = 'hostname: "mail.example.com"\nmail_delivery_agent_bin: "/bin/sh"\n'
LINE = (
    f'{CONF_PATH}:2: error: mail_delivery_agent_bin "/bin/sh" is not allowed by this host\'s policy'
)
NOTE = (
    f'{CONF_PATH}:2: note: mail_delivery_agent_bin "/bin/sh" needs a host whose policy allows '
    "it (the default policy does not)"
)
HINT = "    hint: root can allow it in the host settings: policy.delivery_agents"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def checkout(workdir) -> Path:
    workdir.commit({**repo_files(), CONF_PATH: SH}, "an agent of our own")
    return Path(workdir.path)


def host(tmp_path: Path, policy: str = "") -> Path:
    settings = tmp_path / "host.yaml"
    settings.write_text(f"repo: {tmp_path / 'repo.git'}\n{policy}")
    return settings


def test_without_a_host_a_field_a_host_must_allow_is_a_note(capsys, checkout) -> None:
    code, out, err = run(capsys, "validate", "--repo", str(checkout))
    assert (code, err) == (0, "")
    assert out.splitlines() == [NOTE, HINT, f"HEAD ({_short(checkout)}): valid, 1 note"]
    assert run(capsys, "validate", "--repo", str(checkout), "--strict")[0] == 0


def test_a_fresh_scaffold_asks_nothing_of_a_host(capsys, tmp_path) -> None:
    """No note, on a host or not: the policy adds nothing for --strict to fail on (the
    scaffold's warnings are its placeholders, and its alias 'i' beside the user i is
    accepted in its manifest: none is the policy's)."""
    assert run(capsys, "init", "example.org", str(tmp_path / "conf"))[0] == 0
    _, without, _ = run(capsys, "validate", "--repo", str(tmp_path / "conf"), "--strict")
    settings = str(host(tmp_path))
    _, on_host, _ = run(
        capsys, "validate", "--repo", str(tmp_path / "conf"), "--strict", "--config", settings
    )
    assert without == on_host
    assert [line for line in without.splitlines() if ": note: " in line or "policy" in line] == []
    assert without.splitlines()[-1].endswith("valid, 6 warnings, 1 accepted"), without


def test_with_the_hosts_settings_the_policy_refuses_it(capsys, checkout, tmp_path) -> None:
    settings = host(tmp_path)
    code, out, err = run(capsys, "validate", "--repo", str(checkout), "--config", str(settings))
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        LINE,
        HINT,
        f"HEAD ({_short(checkout)}): invalid: 1 error, 0 warnings",
    ]


def test_the_settings_named_by_the_environment_are_used(
    capsys, checkout, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", str(host(tmp_path)))
    assert run(capsys, "validate", "--repo", str(checkout))[0] == 1
    allowing = host(tmp_path, "policy:\n  delivery_agents: [/bin/sh]\n")
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", str(allowing))
    code, out, _ = run(capsys, "validate", "--repo", str(checkout), "--strict")
    assert (code, out) == (0, f"HEAD ({_short(checkout)}): valid\n")


def test_host_settings_named_on_the_command_line_must_exist(capsys, checkout, tmp_path) -> None:
    missing = tmp_path / "nowhere.yaml"
    code, out, err = run(capsys, "--config", str(missing), "validate", "--repo", str(checkout))
    assert (code, out) == (1, "")
    assert err.startswith(
        f"gitops-mail: error: cannot read the host settings {missing}: No such file or directory\n"
    )


def _short(repo: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short=7", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_plan_judges_as_validate_does(capsys, checkout, tmp_path, monkeypatch) -> None:
    code, out, _ = run(capsys, "plan", "--repo", str(checkout), "--base", "HEAD")
    assert code == 0  # no change against itself; the note is only told
    assert out.splitlines()[-2:] == [f"  {NOTE}", f"  {HINT}"]
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", str(host(tmp_path)))
    code, out, _ = run(capsys, "plan", "--repo", str(checkout), "--base", "HEAD")
    assert code == 1
    assert out.splitlines()[-2:] == [f"  {LINE}", f"  {HINT}"]
