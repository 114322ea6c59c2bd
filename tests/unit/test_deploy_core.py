"""The pure side of ``deploy``: targets, layouts, steps vs what a host has, texts, reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_mail.core.deploy.facts import (
    Facts,
    UnsupportedHost,
    check_supported,
    interpreter,
    parse_facts,
)
from gitops_mail.core.deploy.layout import Layout
from gitops_mail.core.deploy.probe import commands, parse_probe
from gitops_mail.core.deploy.report import (
    CHANGED,
    UNCHANGED,
    HostReport,
    Outcome,
    daemon_failure,
    group_wheels,
    summary_lines,
)
from gitops_mail.core.deploy.steps import (
    Command,
    Content,
    Directory,
    File,
    Link,
    Packages,
    Service,
    differences,
    kept_note,
)
from gitops_mail.core.deploy.target import parse_target, remote_names
from gitops_mail.core.deploy.texts import TemplateError, render_settings, render_unit
from gitops_mail.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
UNIT = (ROOT / "deploy" / "gitops-mail.service").read_text()
SETTINGS = (ROOT / "deploy" / "gitops-mail.yaml").read_text()


@pytest.mark.parametrize(
    ("spec", "user", "host", "port"),
    [
        ("root@203.0.113.7", "root", "203.0.113.7", None),
        ("admin@mx1.example.com:2222", "admin", "mx1.example.com", 2222),
        ("[2001:db8::7]:22", None, "2001:db8::7", 22),
        ("vps", None, "vps", None),
    ],
)
def test_targets(spec: str, user: str | None, host: str, port: int | None) -> None:
    target = parse_target(spec)
    assert (target.user, target.host, target.port, target.name) == (user, host, port, host)


@pytest.mark.parametrize(
    "spec", ["root@", "a b", "root@host:99999", "root@host:x", "-oProxyCommand=x"]
)
def test_a_bad_target_says_how_to_write_one(spec: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_target(spec)
    assert spec in caught.value.message or "port" in caught.value.message


def test_one_host_gets_the_remote_several_get_one_each() -> None:
    one = [parse_target("root@a.example")]
    assert remote_names(one, "vps") == {"root@a.example": "vps"}
    two = [parse_target("root@a.example"), parse_target("[2001:db8::1]")]
    assert remote_names(two, "vps") == {
        "root@a.example": "vps-a.example",
        "[2001:db8::1]": "vps-2001-db8-1",
    }


def test_paths_go_below_the_root() -> None:
    assert Layout().at("/srv/mail-conf.git") == "/srv/mail-conf.git"
    layout = Layout(root="/tmp/h")
    assert (layout.at("/srv/x"), layout.command) == (
        "/tmp/h/srv/x",
        "/tmp/h/opt/gitops-mail/venv/bin/gitops-mail",
    )


def test_the_unit_is_installed_as_it_is_with_the_default_paths() -> None:
    assert render_unit(UNIT, Layout()) == UNIT


def test_the_unit_names_the_link_and_repo_below_a_root() -> None:
    text = render_unit(UNIT, Layout(root="/t", repo="/srv/other.git"))
    assert "ExecStart=/t/usr/local/bin/gitops-mail daemon" in text
    assert (
        "GIT_CONFIG_VALUE_0=/t/srv/other.git" in text and "ReadWritePaths=/t/srv/other.git" in text
    )
    assert "GITOPS_MAIL_CONFIG=/t/etc/gitops-mail/gitops-mail.yaml" in text


def test_a_unit_without_the_link_is_an_error_for_whoever_changes_it() -> None:
    with pytest.raises(TemplateError, match="does not name /usr/local/bin/gitops-mail"):
        render_unit("ExecStart=/bin/true\n", Layout())


def test_settings_keep_the_policy_and_get_the_layouts_paths() -> None:
    text = render_settings(SETTINGS, Layout(root="/t", chasquid_service="supervise"))
    assert "repo: /t/srv/mail-conf.git\n" in text and "  config_dir: /t/etc/chasquid\n" in text
    assert "  service: supervise\n" in text and "state_dir: /t/var/lib/gitops-mail\n" in text
    assert "  delivery_agents: [maildrop]\n" in text  # the policy, as the example has it
    assert render_settings(SETTINGS, Layout()) == SETTINGS


def test_settings_without_a_line_deploy_fills_in_say_which() -> None:
    with pytest.raises(TemplateError, match=r"no line for chasquid\.service, state_dir"):
        render_settings("repo: /x\nbranch: main\nchasquid:\n  config_dir: /e\n", Layout())


def test_a_file_differs_by_content_owner_and_mode() -> None:
    step = File("unit", "/u", Content.of(b"x"), "root", "root", 0o644)
    same = f"regular file|root|root|644|{step.content.sha256}"
    assert differences(step, same) == []
    assert differences(step, "missing") == ["missing"]
    assert differences(step, f"regular file|git|git|600|{'0' * 64}") == [
        "content",
        "owner git:git, wanted root:root",
        "mode 600, wanted 644",
    ]
    assert differences(step, "directory|root|root|755|") == ["is a directory, not a regular"]


def test_a_file_kept_where_it_exists_is_never_overwritten_but_noted() -> None:
    step = File("host settings", "/s", Content.of(b"x"), keep_existing=True)
    edited = f"regular empty file|root|root|600|{'0' * 64}"
    assert differences(step, edited) == []
    assert (
        kept_note(step, edited)
        == "kept the host's own version (remove it to get the one deploy writes)"
    )


def test_other_steps_compare_what_the_probe_found() -> None:
    assert differences(Packages("p", ("chasquid", "git")), "ok no") == ["git not installed"]
    assert differences(Directory("d", "/d"), "directory|root|root|755|") == []
    assert differences(Link("l", "/l", "/t"), "/t") == [] and differences(
        Link("l", "/l", "/t"), "/o"
    ) == ["points elsewhere"]
    assert differences(Command("c", "run", "check"), "no") == ["needed"]
    service = Service("s", ("a.socket", "b.socket"))
    assert differences(service, "enabled enabled |active active ") == []
    assert differences(service, "enabled disabled |active inactive ") == [
        "not enabled",
        "not running",
    ]


def test_the_probe_answer_is_read_by_index() -> None:
    assert parse_probe("0\tok\n2\tmissing\nnoise\n9\tx\n", 3) == ["ok", "", "missing"]


def test_commands_quote_what_they_are_given() -> None:
    step = Link("link", "/usr/local/bin/gm; rm -rf /", "/opt/x")
    assert commands(step, Layout()) == [
        "mkdir -p '/usr/local/bin/gm; rm -rf ' && ln -sfn /opt/x '/usr/local/bin/gm; rm -rf /'"
    ]
    assert commands(Service("s", ("u",)), Layout(systemctl="/t/systemctl"), restart=True) == [
        "/t/systemctl enable u",
        "/t/systemctl restart u",
    ]


def test_facts_and_the_python_the_venv_uses() -> None:
    facts = parse_facts(
        "os_id=debian\nos_version=12\narch=x86_64\npython3=3.11\nlogin_key=ssh-ed25519 AAA a\n"
    )
    assert (facts.system, facts.login_keys) == ("debian 12", ("ssh-ed25519 AAA a",))
    assert interpreter(facts) == ("/usr/bin/python3", "3.11", ("python3", "python3-venv"))
    jammy = Facts(os_id="ubuntu", os_version="22.04", python3="3.10")
    assert interpreter(jammy) == ("/usr/bin/python3.11", "3.11", ("python3.11", "python3.11-venv"))
    assert interpreter(Facts(os_id="ubuntu", os_version="24.04"))[:2] == (
        "/usr/bin/python3",
        "3.12",
    )


@pytest.mark.parametrize(
    "system", [("debian", "11"), ("centos", "9"), ("ubuntu", "20.04"), ("", "")]
)
def test_an_unsupported_system_is_refused_before_anything_changes(system: tuple[str, str]) -> None:
    with pytest.raises(UnsupportedHost, match="is not a system deploy supports"):
        check_supported(Facts(os_id=system[0], os_version=system[1]))


def test_wheels_are_one_progress_line() -> None:
    outcomes = [
        Outcome("repo", UNCHANGED),
        Outcome("wheel a", CHANGED),
        Outcome("wheel b", UNCHANGED),
        Outcome("venv", CHANGED),
    ]
    assert [(o.step, o.result, o.detail) for o in group_wheels(outcomes)] == [
        ("repo", UNCHANGED, ""),
        ("wheelhouse", CHANGED, "1 of 2 uploaded"),
        ("venv", CHANGED, ""),
    ]


def test_the_summary_says_which_hosts_failed() -> None:
    ok = HostReport(
        "mx1", [Outcome("venv", UNCHANGED)], chasquid="1.11", daemon="active", live="a" * 40
    )
    failed = HostReport(
        "mx2", error="mx2: cannot connect: Connection refused", hint="check the address"
    )
    lines = summary_lines([ok, failed], {"example.com": ["@ IN MX 10 mail.example.com."]})
    assert (
        "  mx1  ok: no change" in lines
        and "       chasquid 1.11, daemon active, live aaaaaaa" in lines
    )
    assert "  mx2  FAILED" in lines and "       hint: check the address" in lines
    assert "    @ IN MX 10 mail.example.com." in lines
    assert lines[-1] == "1 of 2 host(s) deployed; failed: mx2"


def test_a_push_the_daemon_did_not_make_live_is_found_in_the_hook_lines() -> None:
    assert daemon_failure(["main (1a2b3c4): valid", "applied 1a2b3c4: restart, probes ok"]) is None
    assert daemon_failure(["unchanged 1a2b3c4: already live, nothing to do"]) is None
    lines = [
        "gitops-mail: waiting up to 15 s",
        "failed 1a2b3c4: chasquid exited",
        "the live server...",
    ]
    assert daemon_failure(lines) == "failed 1a2b3c4: chasquid exited"
    assert (
        daemon_failure(["superseded by a later push: error 1a2b3c4: x"])
        == "superseded by a later push: error 1a2b3c4: x"
    )
