"""The command line, in-process through ``cli.main``, on real git repos.

Plus one run of the installed console script. Every error case asserts the
exact message on standard error and the exit code.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.repo import ALIASES, ALIASES_PATH, CONF, MANIFEST_PATH, USERS_PATH, repo_files
from support.tools import needs

from gitops_mail.cli import main as cli
from gitops_mail.cli.main import main
from gitops_mail.core.formats.users.db import parse_users
from gitops_mail.errors import RepoError

UTIL = Path("/usr/bin/chasquid-util")
needs_util = needs(str(UTIL))

FILES = repo_files(pipe_aliases=True)
PASSWORD = "correct-horse-battery-staple"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def published(workdir, origin):
    """``workdir`` with FILES committed and pushed to ``origin``; the commit id."""
    commit = workdir.commit(FILES, "first")
    workdir.push()
    return commit


def stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


# --- help and usage -------------------------------------------------------------------


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("validate", "plan", "user", "alias", "init", "import"):
        assert f"    {command} " in out


def test_no_command_prints_the_help_and_fails(capsys):
    code, out, err = run(capsys)
    assert code == 1
    assert out == ""
    assert err.startswith("usage: gitops-mail ")
    assert "commands:" in err


@pytest.mark.parametrize(
    "argv",
    [["validate", "--bogus"], ["plan", "--bogus"], ["plan", "--format", "yaml"], ["user"]],
)
def test_a_usage_error_exits_64_never_2_which_plan_keeps_for_changes(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 64
    err = capsys.readouterr().err
    assert err.startswith("usage: gitops-mail ")
    assert "gitops-mail" in err.splitlines()[-1]
    assert ": error: " in err.splitlines()[-1]


def help_of(parser: argparse.ArgumentParser, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    return capsys.readouterr().out


@pytest.mark.parametrize("command", list(cli._COMMANDS))
def test_a_command_alone_parses_as_within_the_whole_parser(capsys, command):
    # main builds only the command it runs; its help and parsing must not change.
    alone, whole = cli.build_parser(command), cli.build_parser()
    assert help_of(alone, [command, "--help"], capsys) == help_of(
        whole, [command, "--help"], capsys
    )
    argv = ["--debug", "--config", "/h.yaml", command, *ARGS.get(command, [])]
    assert alone.parse_args(argv) == whole.parse_args(argv)


ARGS = {
    "user": ["list"],
    "alias": ["resolve", "a@example.com"],
    "init": ["example.com", "dir"],
    "import": ["/etc/chasquid", "dir"],
    "hooks": ["install", "repo"],
    "hook": ["pre-receive"],
    "dkim": ["export", "example.com", "s2026"],
    "send-test": ["--from", "a@example.com", "--to", "b@example.com"],
    "deploy": ["root@203.0.113.7"],
    "certs": ["sync"],
}


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["plan", "--repo", "r"], "plan"),
        (["--debug", "--config", "validate", "plan"], "plan"),
        (["--config=/x", "--debug", "hook", "pre-receive"], "hook"),
        (["--conf", "/x", "validate"], None),  # an abbreviation: the whole parser decides
        (["-h", "plan"], None),
        (["--config"], None),
        (["nonsense"], None),
        ([], None),
    ],
)
def test_the_command_main_builds_alone(argv, named):
    assert cli._named_command(argv) == named


def test_the_installed_console_script(published, origin):
    script = Path(sys.executable).parent / "gitops-mail"
    done = subprocess.run(
        [str(script), "validate", "--repo", str(origin.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"HEAD ({published[:7]}): valid\n",
        "",
    )
    bad = subprocess.run(
        [str(script), "validate", "--repo", str(origin.path), "--rev", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"gitops-mail: error: no revision 'nope' in {origin.path}\n")


# --- validate --------------------------------------------------------------------------


def test_validate_a_bare_repo(capsys, published, origin):
    assert run(capsys, "validate", "--repo", str(origin.path)) == (
        0,
        f"HEAD ({published[:7]}): valid\n",
        "",
    )


def test_validate_an_older_revision(capsys, published, origin, workdir):
    second = workdir.commit({ALIASES_PATH: ALIASES + "broken\n"}, "break it")
    workdir.push()
    code, out, err = run(capsys, "validate", "--repo", str(origin.path))
    assert code == 1
    assert out == (
        f"{ALIASES_PATH}:3: error: missing ':' in 'broken' (an alias is `name: address, address` "
        "or `name: | command`)\n"
        "    hint: add the ':' after the alias name, or start the line with '#' for a comment "
        "(chasquid up to 1.15 skips this line silently, 1.16 and newer refuse the file)\n"
        f"HEAD ({second[:7]}): invalid: 1 error, 0 warnings\n"
    )
    assert err == ""
    assert run(capsys, "validate", "--repo", str(origin.path), "--rev", "HEAD~1") == (
        0,
        f"HEAD~1 ({published[:7]}): valid\n",
        "",
    )
    assert run(capsys, "validate", "--repo", str(origin.path), "--rev", published[:10])[0] == 0


def test_validate_worktree_sees_uncommitted_changes(capsys, published, workdir):
    (workdir.path / ALIASES_PATH).write_text(ALIASES + "broken\n")
    assert run(capsys, "validate", "--repo", str(workdir.path))[0] == 0  # HEAD is fine
    code, out, _ = run(capsys, "validate", "--repo", str(workdir.path), "--worktree")
    assert code == 1
    assert out.startswith(f"{ALIASES_PATH}:3: error: missing ':' in 'broken'")
    assert out.endswith(f"working tree {workdir.path}: invalid: 1 error, 0 warnings\n")


def test_validate_worktree_from_a_subdirectory(capsys, published, workdir):
    code, out, _ = run(capsys, "validate", "--repo", str(workdir.path / "chasquid"), "--worktree")
    assert (code, out) == (0, f"working tree {workdir.path}: valid\n")


def test_validate_worktree_of_a_bare_repo_is_refused(capsys, published, origin):
    assert run(capsys, "validate", "--repo", str(origin.path), "--worktree") == (
        1,
        "",
        f"gitops-mail: error: {origin.path} is a bare repository: it has no working tree to "
        "read\n"
        "    hint: drop --worktree to read a commit, or point --repo at a checkout\n",
    )


def test_validate_json(capsys, published, workdir):
    workdir.commit({ALIASES_PATH: "broken\n"}, "break it")
    code, out, _ = run(capsys, "validate", "--repo", str(workdir.path), "--format", "json")
    doc = json.loads(out)
    assert code == 1
    assert doc["valid"] is False
    assert doc["revision"] == workdir.git("rev-parse", "HEAD").strip()
    assert [(p["path"], p["line"], p["code"], p["severity"]) for p in doc["problems"]] == [
        (ALIASES_PATH, None, "aliases.no-postmaster", "warning"),
        (ALIASES_PATH, 1, "aliases.syntax", "error"),
    ]


def test_strict_fails_on_warnings(capsys, published, workdir):
    workdir.commit({"chasquid/domains/example.info/aliases": "postmaster: owner@gmail.com\n"})
    code, out, _ = run(capsys, "validate", "--repo", str(workdir.path))
    assert code == 0
    assert out.splitlines()[0] == (
        "chasquid/domains/example.info: warning: domain 'example.info' receives mail but is not "
        "under domains: in the manifest, so no DNS records (MX, SPF, DKIM, DMARC) are "
        "generated for it [manifest.dir-without-domain]"
    )
    assert out.splitlines()[-1].endswith(": valid, 1 warning")
    assert run(capsys, "validate", "--repo", str(workdir.path), "--strict")[0] == 1


def test_validate_outside_any_repo(capsys, tmp_path):
    code, out, err = run(capsys, "validate", "--repo", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == (
        f"gitops-mail: error: {tmp_path} is not a git repository\n"
        "    hint: pass --repo PATH, or run inside a checkout of the conf repo\n"
    )


# --- plan --------------------------------------------------------------------------------


def test_plan_of_the_first_commit_starts_from_nothing(capsys, published, origin):
    code, out, _ = run(capsys, "plan", "--repo", str(origin.path))
    assert code == 2
    assert out.splitlines()[:5] == [
        f"Plan: nothing -> {published[:7]}",
        "  + domain example.com",
        "  + config chasquid/chasquid.conf",
        "  + alias postmaster@example.com -> owner@gmail.com",
        "  + alias sales@example.com -> carol@fastmail.com",
    ]


def test_plan_against_the_parent_by_default(capsys, published, origin, workdir):
    second = workdir.commit({ALIASES_PATH: ALIASES + "team: sales, postmaster\n"})
    workdir.push()
    assert run(capsys, "plan", "--repo", str(origin.path)) == (
        2,
        f"Plan: {published[:7]} -> {second[:7]}\n"
        "  + alias team@example.com -> carol@fastmail.com, owner@gmail.com\n"
        "chasquid: reload users and aliases (users and aliases of a running domain are "
        "re-read by chasquid's 30 s reload); a host with reload_strategy: restart (the "
        "default) restarts chasquid instead\n",
        "",
    )
    assert run(capsys, "plan", "--repo", str(origin.path), "--rev", "HEAD~1")[1].startswith(
        f"Plan: nothing -> {published[:7]}\n"
    )


def test_plan_against_a_base_like_ci_does(capsys, published, workdir):
    workdir.git("checkout", "--quiet", "-b", "feature")
    workdir.commit({"chasquid/chasquid.conf": 'hostname: "mx.example.com"\n'}, "rename")
    feature = workdir.commit({ALIASES_PATH: ALIASES.replace("carol", "dave")}, "dave")
    code, out, _ = run(capsys, "plan", "--repo", str(workdir.path), "--base", "origin/main")
    assert code == 1  # the new hostname has no certificate
    assert out.splitlines()[:6] == [
        f"Plan: {published[:7]} -> {feature[:7]}",
        "  ~ hostname: mail.example.com -> mx.example.com",
        "      note: point the server's PTR (reverse DNS) record at mx.example.com, and make "
        "sure a certificate covers it",
        "  ~ alias sales@example.com: carol@fastmail.com -> dave@fastmail.com",
        "  ~ record example.com MX: 10 mail.example.com. -> 10 mx.example.com.",
        "chasquid: restart (chasquid reads chasquid.conf only at start)",
    ]
    assert out.splitlines()[6:8] == [
        "Problems in the new revision:",
        "  gitops-mail.yaml:4: error: no certificate is named after the hostname 'mx.example.com' "
        "(set in chasquid/chasquid.conf): clients would not get a certificate for it",
    ]


def test_plan_with_no_change_exits_0(capsys, published, workdir):
    assert run(capsys, "plan", "--repo", str(workdir.path), "--base", "HEAD") == (
        0,
        f"Plan: {published[:7]} -> {published[:7]}\n  no changes\nchasquid: nothing to do\n",
        "",
    )


def test_plan_with_a_bad_base_exits_1(capsys, published, workdir):
    code, out, err = run(capsys, "plan", "--repo", str(workdir.path), "--base", "origin/nope")
    assert (code, out) == (1, "")
    assert err == (
        f"gitops-mail: error: no revision 'origin/nope' in {workdir.path}\n"
        "    hint: check the name with `git log --oneline`, or `git fetch` first if it is "
        "remote\n"
    )


def test_plan_worktree_against_head(capsys, published, workdir):
    (workdir.path / ALIASES_PATH).write_text(ALIASES + "*: owner@gmail.com\n")
    assert run(capsys, "plan", "--repo", str(workdir.path), "--worktree")[:2] == (
        2,
        f"Plan: {published[:7]} -> working tree {workdir.path}\n"
        "  + catch-all *@example.com -> owner@gmail.com\n"
        "chasquid: reload users and aliases (users and aliases of a running domain are "
        "re-read by chasquid's 30 s reload); a host with reload_strategy: restart (the "
        "default) restarts chasquid instead\n",
    )


def test_plan_worktree_of_a_repo_without_commits(capsys, tmp_path):
    for path, text in FILES.items():
        assert text is not None
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(str(text))
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    code, out, _ = run(capsys, "plan", "--repo", str(tmp_path), "--worktree")
    assert code == 2
    assert out.startswith(f"Plan: nothing -> working tree {tmp_path}\n  + domain example.com\n")


def test_plan_markdown_and_json(capsys, published, workdir):
    workdir.commit({ALIASES_PATH: ALIASES + "list: | /usr/bin/list-receive\n"})
    code, out, _ = run(capsys, "plan", "--repo", str(workdir.path), "--format", "markdown")
    assert code == 2
    assert "| + | alias added | `list@example.com` |  | \\| /usr/bin/list-receive |" in out
    code, out, _ = run(capsys, "plan", "--repo", str(workdir.path), "--format", "json")
    doc = json.loads(out)
    assert (code, doc["action"], doc["valid"]) == (2, "reload", True)
    assert doc["changes"][0]["after"] == "| /usr/bin/list-receive"


def test_plan_of_an_invalid_revision_exits_1_and_still_shows_the_plan(capsys, published, workdir):
    workdir.commit({ALIASES_PATH: ALIASES + "loop: loop\n"})
    code, out, _ = run(capsys, "plan", "--repo", str(workdir.path), "--format", "json")
    doc = json.loads(out)
    assert (code, doc["valid"]) == (1, False)
    assert doc["changes"][0]["after"] == "(error: recursion limit exceeded)"
    assert [p["code"] for p in doc["problems"]] == ["aliases.loop"]


def _live_dir(tmp_path: Path) -> Path:
    """A config dir laid out like Debian's /etc/chasquid, one alias behind the repo."""
    live = tmp_path / "etc-chasquid"
    (live / "domains" / "example.com").mkdir(parents=True)
    (live / "chasquid.conf").write_text(CONF)
    (live / "domains" / "example.com" / "aliases").write_text("postmaster: owner@gmail.com\n")
    (live / "certs" / "mail.example.com").mkdir(parents=True)
    (live / "certs" / "mail.example.com" / "privkey.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\n"
    )
    return live


def _host_settings(tmp_path: Path, config_dir: Path, repo: Path | None = None) -> Path:
    path = tmp_path / "host.yaml"
    path.write_text(
        f"repo: {repo or '/srv/mail-conf.git'}\nstate_dir: {tmp_path / 'state'}\n"
        f"chasquid:\n  config_dir: {config_dir}\n"
    )
    return path


def _record_live(tmp_path: Path, revision: str) -> None:
    """What a successful apply of ``revision`` leaves in the state dir."""
    from gitops_mail.apply.store import Attempt, StateStore  # noqa: PLC0415

    attempt = Attempt(revision, "2026-12-01T00:00:00+00:00", "applied", summary="x")
    StateStore(tmp_path / "state").record(attempt, applied=revision)


def test_plan_live_compares_with_the_config_dir(  # noqa: PLR0917 - pytest fixtures
    capsys, published, workdir, origin, tmp_path, monkeypatch
):
    # The host's repo and branch by default; chasquid's tree as it is on disk (one alias
    # behind); the manifest from the revision recorded live, as apply's own plan has it.
    _record_live(tmp_path, published)
    manifest = str(FILES[MANIFEST_PATH]).replace(
        "example.com: {}", "example.com: {dmarc: {p: reject}}"
    )
    tip = workdir.commit({MANIFEST_PATH: manifest}, "DMARC reject")
    workdir.push()
    settings = _host_settings(tmp_path, _live_dir(tmp_path), origin.path)
    expected = (
        2,
        f"Plan: live {tmp_path / 'etc-chasquid'} -> {tip[:7]}\n"
        "  + alias sales@example.com -> carol@fastmail.com\n"
        "  - manifest domains.example.com (was {})\n"
        "  + manifest domains.example.com.dmarc.p -> reject\n"
        "  + record _dmarc.example.com TXT -> v=DMARC1; p=reject\n"
        "chasquid: restart (users and aliases of a running domain are re-read by "
        "chasquid's 30 s reload; this host restarts chasquid rather than wait for its reload "
        "(reload_strategy: restart))\n"
        "Problems in the new revision:\n"
        "  gitops-mail.yaml:8: warning: DMARC p=reject without DKIM: mail forwarded on "
        "(mailing lists, forwarding to another mailbox) fails SPF, and with no DKIM signature "
        "receivers then reject it [dmarc.without-dkim]\n"
        "      hint: add `dkim: {selectors: [s2026]}` to the domain (the server makes the key)\n",
        "",
    )
    assert run(capsys, "--config", str(settings), "plan", "--live") == expected
    assert run(capsys, "plan", "--live", "--config", str(settings)) == expected
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", str(settings))
    assert run(capsys, "plan", "--live") == expected
    assert run(capsys, "plan", "--repo", str(workdir.path), "--live") == expected


def test_plan_live_with_nothing_recorded_live_plans_the_manifest_from_nothing(
    capsys, published, origin, tmp_path
):
    settings = _host_settings(tmp_path, _live_dir(tmp_path), origin.path)
    code, out, err = run(capsys, "plan", "--live", "--config", str(settings))
    assert (code, err) == (2, "")
    assert (
        "  + certificate mail.example.com -> acme_sh /root/.acme.sh/mail.example.com_ecc\n" in out
    )
    assert out.endswith("chasquid: restart (chasquid loads certificates only at start)\n")


def test_plan_live_without_host_settings(capsys, published, workdir, tmp_path):
    missing = tmp_path / "no-host-settings" / "config.yaml"  # what conftest points at
    assert run(capsys, "plan", "--repo", str(workdir.path), "--live") == (
        1,
        "",
        f"gitops-mail: error: cannot read the host settings {missing}: No such file or "
        "directory\n"
        "    hint: create it (see the README), or pass --config / set GITOPS_MAIL_CONFIG\n",
    )


def test_plan_live_with_invalid_host_settings(capsys, published, workdir, tmp_path):
    settings = tmp_path / "host.yaml"
    settings.write_text("repo: /srv/x\nchasquid:\n  config_dir: etc/chasquid\n")
    code, out, err = run(
        capsys, "plan", "--repo", str(workdir.path), "--live", "--config", str(settings)
    )
    assert (code, out) == (1, "")
    assert err == (
        "gitops-mail: error: the host settings are invalid:\n"
        f"{settings}:3: error: At 'chasquid.config_dir': 'etc/chasquid' must be an absolute path\n"
        "    hint: fix the lines shown\n"
    )


def test_plan_live_with_a_missing_config_dir(capsys, published, workdir, tmp_path):
    settings = _host_settings(tmp_path, tmp_path / "nowhere")
    code, out, err = run(
        capsys, "plan", "--repo", str(workdir.path), "--live", "--config", str(settings)
    )
    assert (code, out) == (1, "")
    assert err == (
        f"gitops-mail: error: chasquid's config dir {tmp_path / 'nowhere'} is not a directory "
        f"(chasquid.config_dir in {settings})\n"
        "    hint: fix chasquid.config_dir in the host settings, or install chasquid first\n"
    )


# --- user ------------------------------------------------------------------------------------


def _util(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(UTIL), f"-C={conf}", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _user(capsys, monkeypatch, workdir, *args: str, password: str | None = PASSWORD):
    stdin(monkeypatch, "" if password is None else password + "\n")
    extra = ("--password-stdin",) if password is not None else ()
    result = run(capsys, "user", *args, "--repo", str(workdir.path), *extra)
    assert PASSWORD not in result[1] + result[2]
    return result


@needs_util
def test_user_add_writes_a_file_chasquid_accepts(capsys, monkeypatch, published, workdir):
    assert _user(capsys, monkeypatch, workdir, "add", "I@Example.COM") == (
        0,
        f"added i@example.com in {USERS_PATH}; commit and push to apply it\n",
        "",
    )
    conf = workdir.path / "chasquid"
    done = _util(conf, "authenticate", "i@example.com", f"--password={PASSWORD}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _util(conf, "authenticate", "i@example.com", "--password=wrong").returncode == 1
    assert _util(conf, "check-userdb", "example.com").returncode == 0
    assert PASSWORD.encode() not in (workdir.path / USERS_PATH).read_bytes()
    code, out, _ = run(capsys, "validate", "--repo", str(workdir.path), "--worktree")
    assert (code, out) == (0, f"working tree {workdir.path}: valid\n")


@needs_util
def test_user_passwd_and_remove(capsys, monkeypatch, published, workdir):
    _user(capsys, monkeypatch, workdir, "add", "i@example.com")
    _user(capsys, monkeypatch, workdir, "add", "bob@example.com")
    stdin(monkeypatch, "new-secret-1\n")
    assert run(
        capsys, "user", "passwd", "i@example.com", "--repo", str(workdir.path), "--password-stdin"
    ) == (
        0,
        f"changed the password of i@example.com in {USERS_PATH}; commit and push to apply it\n",
        "",
    )
    conf = workdir.path / "chasquid"
    assert _util(conf, "authenticate", "i@example.com", "--password=new-secret-1").returncode == 0
    assert _util(conf, "authenticate", "i@example.com", f"--password={PASSWORD}").returncode == 1
    assert _user(capsys, monkeypatch, workdir, "remove", "bob@example.com", password=None) == (
        0,
        f"removed bob@example.com in {USERS_PATH}; commit and push to apply it\n",
        "",
    )
    assert run(capsys, "user", "list", "--repo", str(workdir.path)) == (
        0,
        "i@example.com\tscrypt\n",
        "",
    )


def test_user_list_as_json(capsys, monkeypatch, published, workdir):
    _user(capsys, monkeypatch, workdir, "add", "i@example.com")
    code, out, err = run(capsys, "user", "list", "--format", "json", "--repo", str(workdir.path))
    assert (code, err) == (0, "")
    assert json.loads(out) == {"users": [{"address": "i@example.com", "scheme": "scrypt"}]}


def test_user_list_by_domain(capsys, monkeypatch, published, workdir):
    _user(capsys, monkeypatch, workdir, "add", "i@example.com")
    _user(capsys, monkeypatch, workdir, "add", "bob@example.org", "--create-domain")
    repo = str(workdir.path)
    assert run(capsys, "user", "list", "--repo", repo) == (
        0,
        "i@example.com\tscrypt\nbob@example.org\tscrypt\n",
        "",
    )
    assert run(capsys, "user", "list", "example.org", "--repo", repo) == (
        0,
        "bob@example.org\tscrypt\n",
        "",
    )
    assert run(capsys, "user", "list", "example.net", "--repo", repo) == (
        1,
        "",
        "gitops-mail: error: unknown domain 'example.net'\n"
        "    hint: the domains are the directories under chasquid/domains/\n",
    )


def test_user_add_of_an_existing_user(capsys, monkeypatch, published, workdir):
    _user(capsys, monkeypatch, workdir, "add", "i@example.com")
    before = (workdir.path / USERS_PATH).read_bytes()
    assert _user(capsys, monkeypatch, workdir, "add", "i@example.com") == (
        1,
        "",
        "gitops-mail: error: i@example.com already exists\n"
        "    hint: use `gitops-mail user passwd i@example.com` to change its password\n",
    )
    assert (workdir.path / USERS_PATH).read_bytes() == before


@pytest.mark.parametrize("action", ["passwd", "remove"])
def test_user_passwd_or_remove_of_an_absent_user(capsys, monkeypatch, published, workdir, action):
    assert _user(capsys, monkeypatch, workdir, action, "bob@example.com") == (
        1,
        "",
        "gitops-mail: error: there is no user bob@example.com\n"
        "    hint: `gitops-mail user list example.com` shows the users\n",
    )
    assert not (workdir.path / USERS_PATH).exists()


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("nope", "'nope' is not an address\n    hint: give it as user@domain"),
        (
            "a@b@example.com",
            "'a@b@example.com' is not an address\n    hint: give it as user@domain",
        ),
        ("@example.com", "'@example.com' is not a valid address: the user part is empty"),
        (
            "a@b",
            "'a@b' is not a valid address: the domain needs at least 2 labels "
            "(like mail.example.com)",
        ),
        (
            "a@exa_mple.com",
            "'a@exa_mple.com' is not a valid address: the domain has an invalid "
            "label 'exa_mple' (letters, digits and '-' only, 1-63 characters)",
        ),
        ("a b@example.com", "user name 'a b' is not valid for chasquid: it contains a space"),
    ],
)
def test_user_add_of_an_invalid_address(  # noqa: PLR0917 - pytest fixtures and parameters
    capsys, monkeypatch, published, workdir, address, message
):
    code, out, err = _user(capsys, monkeypatch, workdir, "add", address)
    assert (code, out) == (1, "")
    assert err.startswith(f"gitops-mail: error: {message}\n")


def test_user_add_in_an_unknown_domain(capsys, monkeypatch, published, workdir):
    assert _user(capsys, monkeypatch, workdir, "add", "i@example.org") == (
        1,
        "",
        "gitops-mail: error: unknown domain 'example.org': chasquid/domains/example.org "
        "does not exist\n"
        "    hint: check the spelling, or pass --create-domain to add the domain (and add it "
        "under domains: in gitops-mail.yaml)\n",
    )
    assert not (workdir.path / "chasquid/domains/example.org").exists()
    assert _user(capsys, monkeypatch, workdir, "add", "i@example.org", "--create-domain") == (
        0,
        "created chasquid/domains/example.org; add `example.org: {}` under domains: in "
        "gitops-mail.yaml\n"
        "added i@example.org in chasquid/domains/example.org/users; commit and push to apply "
        "it\n",
        "",
    )


def test_user_add_needs_a_terminal_or_password_stdin(capsys, monkeypatch, published, workdir):
    assert _user(capsys, monkeypatch, workdir, "add", "i@example.com", password=None) == (
        1,
        "",
        "gitops-mail: error: there is no terminal to ask for the password\n"
        "    hint: pipe it in with --password-stdin\n",
    )
    assert not (workdir.path / USERS_PATH).exists()


def test_user_add_with_an_empty_password(capsys, monkeypatch, published, workdir):
    assert _user(capsys, monkeypatch, workdir, "add", "i@example.com", password="") == (
        1,
        "",
        "gitops-mail: error: the password is empty\n    hint: give a non-empty password\n",
    )
    assert not (workdir.path / USERS_PATH).exists()


def test_user_add_refuses_a_corrupt_users_file(capsys, monkeypatch, published, workdir):
    corrupt = b'users: {\n  key: "i"\n  value: { scrypt: { logN: x } }\n}\n'
    (workdir.path / USERS_PATH).write_bytes(corrupt)
    _, problems = parse_users(corrupt, USERS_PATH)
    code, out, err = _user(capsys, monkeypatch, workdir, "add", "bob@example.com")
    assert (code, out) == (1, "")
    assert err == (
        "gitops-mail: error: cannot edit a users file that does not parse:\n"
        + "\n".join(p.format() for p in problems)
        + "\n    hint: fix the file first (git checkout it, or repair the line shown)\n"
    )
    assert err.startswith(
        f"gitops-mail: error: cannot edit a users file that does not parse:\n{USERS_PATH}:3:"
    )
    assert (workdir.path / USERS_PATH).read_bytes() == corrupt


def test_user_commands_refuse_a_bare_repo(capsys, monkeypatch, published, origin):
    stdin(monkeypatch, PASSWORD + "\n")
    assert run(
        capsys, "user", "add", "i@example.com", "--repo", str(origin.path), "--password-stdin"
    ) == (
        1,
        "",
        f"gitops-mail: error: {origin.path} is a bare repository: users are edited in a "
        "checkout\n    hint: git clone it, edit there, then commit and push\n",
    )


# --- alias resolve --------------------------------------------------------------------------


@pytest.fixture
def aliases_repo(tmp_path, make_repo):
    return make_repo(tmp_path / "aliases", _aliases_files())


def _aliases_files() -> dict[str, object]:
    aliases = (
        "postmaster: owner@gmail.com\n"
        "team: sales, i\n"
        "sales: carol@fastmail.com, i\n"
        "list: | /usr/bin/list-receive -l team\n"
        "loop1: loop2\nloop2: loop1\n"
    )
    return {
        **FILES,
        ALIASES_PATH: aliases,
        "chasquid/domains/example.org/aliases": "*: i@example.com\n",
        USERS_PATH: b'users: { key: "i" value: { denied: {} } }\n',
    }


@pytest.mark.parametrize(
    ("address", "out"),
    [
        ("i@example.com", "i@example.com\n"),
        ("I+tag@Example.COM", "i@example.com\n"),
        ("team@example.com", "carol@fastmail.com\ni@example.com\ni@example.com\n"),
        ("list@example.com", "| /usr/bin/list-receive -l team\n"),
        ("anyone@example.org", "i@example.com\n(through the catch-all of example.org)\n"),
        (
            "someone@gmail.com",
            "someone@gmail.com\n(gmail.com is not a local domain: chasquid "
            "relays the mail to its servers)\n",
        ),
    ],
)
def test_alias_resolve(capsys, aliases_repo, address, out):
    assert run(capsys, "alias", "resolve", address, "--repo", str(aliases_repo)) == (0, out, "")


def test_alias_resolve_as_json(capsys, aliases_repo):
    def resolved(address: str) -> object:
        code, out, err = run(
            capsys, "alias", "resolve", address, "--format", "json", "--repo", str(aliases_repo)
        )
        assert (code, err) == (0, "")
        return json.loads(out)

    assert resolved("team@example.com") == {
        "address": "team@example.com",
        "local": True,
        "catch_all": False,
        "recipients": [
            {"address": "carol@fastmail.com", "kind": "email"},
            {"address": "i@example.com", "kind": "email"},
            {"address": "i@example.com", "kind": "email"},
        ],
        "hook": None,
    }
    assert resolved("list@example.com")["recipients"] == [  # type: ignore[index]
        {"address": "/usr/bin/list-receive -l team", "kind": "pipe"}
    ]
    assert resolved("x@example.org")["catch_all"] is True  # type: ignore[index]
    assert resolved("someone@gmail.com") == {
        "address": "someone@gmail.com",
        "local": False,
        "catch_all": False,
        "recipients": [{"address": "someone@gmail.com", "kind": "remote"}],
        "hook": None,
    }


ALIAS_HOOK = "chasquid/hooks/alias-resolve"


@pytest.fixture
def hooked_repo(tmp_path, make_repo):
    hook = '#!/bin/sh\n[ "$1" = onlyhook@example.com ] && echo i@example.com\n'
    return make_repo(tmp_path / "hooked", {**_aliases_files(), ALIAS_HOOK: hook})


def test_alias_resolve_says_an_unknown_address_depends_on_the_alias_resolve_hook(
    capsys, hooked_repo
):
    code, out, err = run(
        capsys, "alias", "resolve", "onlyhook@example.com", "--repo", str(hooked_repo)
    )
    assert (code, err) == (0, "")
    assert out == (
        f"(no user or alias in the files: it depends on {ALIAS_HOOK}, which chasquid runs for "
        "onlyhook@example.com: mail is accepted if the hook prints a recipient, else rejected)\n"
    )
    code, out, _ = run(
        capsys,
        "alias",
        "resolve",
        "onlyhook@example.com",
        "--format",
        "json",
        "--repo",
        str(hooked_repo),
    )
    assert json.loads(out) == {
        "address": "onlyhook@example.com",
        "local": True,
        "catch_all": False,
        "recipients": [],
        "hook": ALIAS_HOOK,
    }


def test_alias_resolve_says_the_hook_may_add_recipients(capsys, hooked_repo):
    code, out, _ = run(capsys, "alias", "resolve", "i@example.com", "--repo", str(hooked_repo))
    assert code == 0
    assert out.startswith("i@example.com\n(and whatever chasquid/hooks/alias-resolve prints")
    _, out, _ = run(
        capsys, "alias", "resolve", "a@gmail.com", "--format", "json", "--repo", str(hooked_repo)
    )
    assert json.loads(out)["hook"] is None  # chasquid runs it for local addresses only


def test_alias_resolve_of_an_address_nobody_receives(capsys, aliases_repo):
    assert run(capsys, "alias", "resolve", "nobody@example.com", "--repo", str(aliases_repo)) == (
        1,
        "",
        "gitops-mail: error: chasquid would reject mail for nobody@example.com: no such "
        "user or alias\n"
        "    hint: add a user, an alias or a catch-all (*) to the domain's aliases file\n",
    )


def test_alias_resolve_of_a_loop(capsys, aliases_repo):
    assert run(capsys, "alias", "resolve", "loop1@example.com", "--repo", str(aliases_repo)) == (
        1,
        "",
        "gitops-mail: error: cannot resolve loop1@example.com: recursion limit exceeded\n"
        "    hint: gitops-mail validate shows where the aliases go wrong\n",
    )


def test_alias_resolve_of_something_that_is_no_address(capsys, aliases_repo):
    assert run(capsys, "alias", "resolve", "postmaster", "--repo", str(aliases_repo)) == (
        1,
        "",
        "gitops-mail: error: 'postmaster' is not an address\n    hint: give it as user@domain\n",
    )


# --- init and import --------------------------------------------------------------------------


def _tree(repo: Path) -> dict[str, bytes]:
    names = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        name: subprocess.run(
            ["git", "-C", str(repo), "show", f"HEAD:{name}"], capture_output=True, check=True
        ).stdout
        for name in names
    }


def test_init_scaffolds_a_valid_repo(capsys, tmp_path):
    target = tmp_path / "conf"
    code, out, err = run(capsys, "init", "Example.ORG", str(target))
    assert (code, err) == (0, "")
    assert out.splitlines()[0].startswith(f"created {target} for example.org (branch main, commit ")
    git = ["git", "-C", str(target)]
    assert (
        subprocess.run(
            [*git, "branch", "--show-current"], capture_output=True, text=True, check=True
        ).stdout
        == "main\n"
    )
    assert (
        subprocess.run(
            [*git, "rev-list", "--count", "HEAD"], capture_output=True, text=True, check=True
        ).stdout
        == "1\n"
    )
    assert (
        subprocess.run(
            [*git, "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout
        == ""
    )
    files = _tree(target)
    assert sorted(files) == [
        "chasquid/chasquid.conf",
        "chasquid/domains/example.org/aliases",
        "chasquid/domains/example.org/users",
        "gitops-mail.yaml",
    ]
    for name, data in files.items():
        assert b"example.com" not in data, name
    assert b"mail.example.org" in files["chasquid/chasquid.conf"]
    template = Path(__file__).resolve().parents[2] / "example-conf"
    example_users = (template / "chasquid/domains/example.com/users").read_bytes()
    assert files["chasquid/domains/example.org/users"] != example_users  # no known password
    code, out, _ = run(capsys, "validate", "--repo", str(target))
    assert code == 0, out
    lines = out.splitlines()
    warned = [line for line in lines if ": warning: " in line]
    placeholders = ("[aliases.placeholder]", "[manifest.ip-placeholder]")
    assert len(warned) == 6 and all(line.endswith(placeholders) for line in warned), out
    assert [line for line in lines if ": accepted: " in line] == [
        "chasquid/domains/example.org/aliases:15: accepted: alias 'i' has the name of the user "
        "i@example.org: chasquid delivers mail for i@example.org to the alias, never to the "
        "user's mailbox [aliases.shadows-user]"
    ]
    assert lines[-1].endswith(": valid, 6 warnings, 1 accepted")


def test_init_refuses_a_non_empty_directory(capsys, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "notes.txt").write_text("mine\n")
    assert run(capsys, "init", "example.org", str(tmp_path / "conf")) == (
        1,
        "",
        f"gitops-mail: error: {tmp_path / 'conf'} is not empty\n"
        "    hint: choose a new or empty directory so nothing there is overwritten\n",
    )
    assert os.listdir(tmp_path / "conf") == ["notes.txt"]


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("localhost", "needs at least 2 labels (like mail.example.com)"),
        (
            "exa mple.com",
            "has an invalid label 'exa mple' (letters, digits and '-' only, 1-63 characters)",
        ),
    ],
)
def test_init_refuses_an_invalid_domain(capsys, tmp_path, domain, why):
    assert run(capsys, "init", domain, str(tmp_path / "conf")) == (
        1,
        "",
        f"gitops-mail: error: {domain!r} is not a domain name: it {why}\n"
        "    hint: give the domain the server receives mail for, like example.com\n",
    )
    assert not (tmp_path / "conf").exists()


def _write(path: Path, text: str | bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)
    return path


KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7secret\n"
CHAIN = "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----\n"


def _debian_chasquid_dir(tmp_path: Path) -> Path:
    """Like Debian's /etc/chasquid after some use: domains, users, a hook, three certs."""
    etc = tmp_path / "etc" / "chasquid"
    _write(etc / "chasquid.conf", CONF)
    _write(etc / "README", "Debian's notes\n")
    _write(etc / "hooks" / "post-data", "#!/bin/sh\nexit 0\n", 0o755)
    _write(
        etc / "domains" / "example.com" / "aliases",
        "postmaster: owner@gmail.com\nlist: | /usr/bin/list-receive\n",
    )
    _write(etc / "domains" / "example.com" / "dkim_selector", "s1\n")
    _write(etc / "domains" / "example.org" / "aliases", "*: owner@gmail.com\n")
    (etc / "domains" / "empty.example").mkdir(parents=True)
    # files right in certs/
    _write(etc / "certs" / "mail.example.com" / "fullchain.pem", CHAIN)
    _write(etc / "certs" / "mail.example.com" / "privkey.pem", KEY, 0o600)
    # certbot: symlinks into letsencrypt/live/<name>/
    live = tmp_path / "etc" / "letsencrypt" / "live" / "le.example.com"
    _write(live / "fullchain.pem", CHAIN)
    _write(live / "privkey.pem", KEY, 0o600)
    (etc / "certs" / "le.example.com").mkdir()
    (etc / "certs" / "le.example.com" / "fullchain.pem").symlink_to(live / "fullchain.pem")
    (etc / "certs" / "le.example.com" / "privkey.pem").symlink_to(live / "privkey.pem")
    # acme.sh: symlinks into ~/.acme.sh/<name>_ecc/
    acme = tmp_path / "root" / ".acme.sh" / "acme.example.com_ecc"
    _write(acme / "fullchain.cer", CHAIN)
    _write(acme / "acme.example.com.key", KEY, 0o600)
    (etc / "certs" / "acme.example.com").mkdir()
    (etc / "certs" / "acme.example.com" / "fullchain.pem").symlink_to(acme / "fullchain.cer")
    (etc / "certs" / "acme.example.com" / "privkey.pem").symlink_to(acme / "acme.example.com.key")
    return etc


@needs_util
def test_import_adopts_a_debian_chasquid_dir(capsys, tmp_path):
    etc = _debian_chasquid_dir(tmp_path)
    done = _util(etc, "user-add", "i@example.com", f"--password={PASSWORD}")
    assert done.returncode == 0, done.stderr
    target = tmp_path / "conf"
    code, out, err = run(capsys, "import", str(etc), str(target))
    assert (code, err) == (0, "")
    assert KEY not in out
    acme = tmp_path / "root" / ".acme.sh" / "acme.example.com_ecc"
    assert out.splitlines()[1:] == [
        "  not imported: README",
        f"  certificate acme.example.com: acme_sh {acme} (the key stays where it is)",
        "  certificate le.example.com: certbot "
        f"{tmp_path / 'etc' / 'letsencrypt' / 'live' / 'le.example.com'} (the key stays where "
        "it is)",
        f"  certificate mail.example.com: files {etc / 'certs/mail.example.com/fullchain.pem'} "
        "(the key stays where it is)",
        f"    note: these files are inside {etc}, which gitops-mail replaces on apply: move them "
        "elsewhere (e.g. /etc/ssl/chasquid/) and update certificates: in gitops-mail.yaml",
        f"next: gitops-mail validate --repo {target}",
    ]
    files = _tree(target)
    assert sorted(files) == [
        "chasquid/chasquid.conf",
        "chasquid/domains/empty.example/.gitkeep",
        "chasquid/domains/example.com/aliases",
        "chasquid/domains/example.com/dkim_selector",
        "chasquid/domains/example.com/users",
        "chasquid/domains/example.org/aliases",
        "chasquid/hooks/post-data",
        "gitops-mail.yaml",
    ]
    for name, data in files.items():
        assert b"PRIVATE KEY" not in data, name
    mode = subprocess.run(
        ["git", "-C", str(target), "ls-tree", "HEAD", "chasquid/hooks/post-data"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    assert mode == "100755"
    manifest = files["gitops-mail.yaml"].decode()
    assert "  hooks: true\n  pipe_aliases: true\n" in manifest
    assert (
        '  - name: "acme.example.com"\n'
        f'    acme_sh: "{acme}"\n'
        '  - name: "le.example.com"\n'
        f'    certbot: "{tmp_path}/etc/letsencrypt/live/le.example.com"\n'
        '  - name: "mail.example.com"\n'
        f'    files: {{"fullchain": "{etc}/certs/mail.example.com/fullchain.pem", '
        f'"key": "{etc}/certs/mail.example.com/privkey.pem"}}\n'
    ) in manifest
    assert manifest.endswith(
        'domains:\n  "empty.example": {}\n  "example.com": {}\n  "example.org": {}\n'
    )
    code, out, _ = run(capsys, "validate", "--repo", str(target))
    errors = [
        line
        for line in out.splitlines()
        if line and not line.startswith("    ") and ": warning: " not in line
    ]
    assert code == 0, out
    # what a host's policy must allow (outside a host: notes, which fail nothing)
    notes = [line.split(": note: ")[0] for line in errors if ": note: " in line]
    assert notes == [
        "chasquid/domains/example.com/aliases:2",
        "chasquid/hooks/post-data",
        "gitops-mail.yaml:11",
        "gitops-mail.yaml:13",
        "gitops-mail.yaml:15",
        "gitops-mail.yaml:15",
    ], out
    assert errors[-1] == f"HEAD ({_head(target)[:7]}): valid, 2 warnings, 6 notes", out
    assert "dkim_selector:1: warning: gitops-mail does not install this file" in out


def _head(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_import_of_something_that_is_not_a_chasquid_dir(capsys, tmp_path):
    _write(tmp_path / "etc" / "notes.txt", "hello\n")
    assert run(capsys, "import", str(tmp_path / "etc"), str(tmp_path / "conf")) == (
        1,
        "",
        f"gitops-mail: error: {tmp_path / 'etc'} does not look like a chasquid config dir: "
        "it has no chasquid.conf\n"
        "    hint: pass the directory chasquid runs with, usually /etc/chasquid\n",
    )
    assert not (tmp_path / "conf").exists()


def test_import_of_a_fresh_debian_install_says_what_is_missing_and_how_to_go_on(capsys, tmp_path):
    # What the chasquid package installs: chasquid.conf, hooks/, certs/ and an empty domains/.
    etc = tmp_path / "chasquid"
    _write(etc / "chasquid.conf", '# hostname: "mail.example.com"\n')
    _write(etc / "certs" / "README.certs", "Put certificates here.\n")
    _write(etc / "hooks" / "post-data", "#!/bin/sh\n")
    (etc / "domains").mkdir()
    conf = tmp_path / "conf"
    assert run(capsys, "import", str(etc), str(conf)) == (
        1,
        "",
        f"gitops-mail: error: {etc} serves no domain yet: {etc / 'domains'} has no <domain>/ "
        "directory (a freshly installed chasquid package has none), so there is nothing to "
        "import\n"
        f"    hint: start a new conf repo instead: gitops-mail init YOUR-DOMAIN {conf}; or "
        f"create {etc / 'domains' / 'YOUR-DOMAIN'}/ and import again\n",
    )
    assert not conf.exists()


def test_an_operating_system_error_is_reported_without_a_traceback(
    capsys, monkeypatch, published, workdir
):
    (workdir.path / "chasquid/domains/example.org").write_text("a file, not a directory\n")
    code, out, err = _user(capsys, monkeypatch, workdir, "add", "i@example.org", "--create-domain")
    assert (code, out) == (1, "")
    assert err == (
        f"gitops-mail: error: [Errno 17] File exists: "
        f"'{workdir.path / 'chasquid/domains/example.org'}'\n"
    )


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(RepoError, match="is not a git repository"):
        main(["--debug", "validate", "--repo", str(tmp_path)])


@pytest.mark.parametrize("columns", [None, "", "0", "-3", "wide", "50", "200"])
def test_help_is_as_wide_as_argparse_makes_it(monkeypatch, columns):
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._columns() == shutil.get_terminal_size().columns


# --- the command line itself ---------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["status", "history", "rollback", "apply", "daemon", "reconcile-now", "supervise"]
)
@pytest.mark.parametrize("where", ["before", "after"])
def test_config_is_taken_before_or_after_any_command(capsys, tmp_path, command, where):
    missing = tmp_path / "elsewhere.yaml"
    argv = ["--config", str(missing), command] if where == "before" else [command]
    argv += [] if where == "before" else ["--config", str(missing)]

    code, out, err = run(capsys, *argv)

    assert (code, out) == (1, "")
    assert err.startswith(f"gitops-mail: error: cannot read the host settings {missing}: ")


def test_every_command_takes_config_after_it(capsys):
    from gitops_mail.cli.main import _COMMANDS  # noqa: PLC0415 - the list to walk

    for command in _COMMANDS:
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        assert "--config CONFIG" in capsys.readouterr().out, command


def test_a_reader_that_goes_away_ends_the_output_quietly(workdir):
    # `gitops-mail history | head -3`: no "Broken pipe" error, the status a shell gives
    # a program that SIGPIPE ended. A command that prints a lot stands in for history.
    code = (
        "import sys\n"
        "from gitops_mail.cli import main as cli, validate\n"
        "def run(args):\n"
        "    for i in range(100000):\n"
        "        print('line', i)\n"
        "    return 0\n"
        "validate.run = run\n"
        "sys.exit(cli.main(['validate', '--repo', sys.argv[1]]))\n"
    )
    shell = '"$0" -c "$1" "$2" | head -1; echo "status ${PIPESTATUS[0]}"'
    done = subprocess.run(
        ["bash", "-c", shell, sys.executable, code, str(workdir.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.stdout, done.stderr) == ("line 0\nstatus 141\n", "")
