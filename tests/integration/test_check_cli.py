"""``check`` and ``send-test`` refuse bad input before any network, saying how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_mail.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_resolver_must_be_an_address(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", "--resolver", "dns.example"])
    assert exited.value.code == 64  # EX_USAGE, as every usage error
    assert capsys.readouterr().err.splitlines()[-1] == (
        "gitops-mail check: error: argument --resolver: 'dns.example' is not an IP address"
        " (e.g. --resolver 9.9.9.9)"
    )


def test_check_on_a_host_without_settings_says_where_it_looked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.yaml"
    code, out, err = run(capsys, "--config", str(missing), "check")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"gitops-mail: error: cannot read the host settings {missing}: No such file or directory",
        "    hint: create it (see the README), or pass --config / set GITOPS_MAIL_CONFIG",
    ]


def test_check_of_a_checkout_without_a_valid_manifest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_repo
) -> None:
    repo = make_repo(tmp_path, {"gitops-mail.yaml": "version: 7\n"})
    code, out, err = run(capsys, "check", "--repo", str(repo))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"gitops-mail: error: HEAD of {repo} has no valid gitops-mail.yaml",
        "    hint: run gitops-mail validate to see why",
    ]


def test_send_test_without_a_server_and_without_host_settings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITOPS_MAIL_PASSWORD", "pw-never-shown")
    missing = tmp_path / "nowhere.yaml"
    code, out, err = run(
        capsys, "--config", str(missing), "send-test", "--from", "a@example.com", "--to", "b@x.org"
    )
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "gitops-mail: error: no --server, and this host's chasquid.conf cannot say: cannot read"
        f" the host settings {missing}: No such file or directory",
        "    hint: pass --server HOST",
    ]
    assert "pw-never-shown" not in err
