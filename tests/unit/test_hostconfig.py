"""Host settings: defaults, every error at once with its file and line, where the file is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mail.core.policy import HostPolicy, Limits
from gitops_mail.errors import GitopsMailError, InvalidConfig
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.settings import ChasquidSettings, HostSettings

FILE = Path("/etc/gitops-mail/gitops-mail.yaml")
HEAD = "the host settings are invalid:\n"
TOP_KEYS = (
    "branch, chasquid, check_interval, commit_back, host, limits, metrics_address, policy, "
    "poll_interval, probe_deadline, remote, repo, state_dir"
)
CHASQUID_KEYS = (
    "args, binary, config_dir, reload_strategy, restart_command, service, unit, user, util"
)


def invalid(text: str) -> str:
    """The message ``parse`` raises for ``text``; fails the test if it parses."""
    with pytest.raises(InvalidConfig) as caught:
        hostsettings.parse(text.encode(), FILE)
    assert caught.value.hint == "fix the lines shown"
    return caught.value.message


# --- good files ---------------------------------------------------------------------------


def test_only_repo_is_required_and_everything_else_has_its_default() -> None:
    assert hostsettings.parse(b"repo: /srv/mail-conf.git\n", FILE) == HostSettings(
        path=FILE,
        repo=Path("/srv/mail-conf.git"),
        remote=None,
        branch="main",
        state_dir=Path("/var/lib/gitops-mail"),
        poll_interval=60.0,
        probe_deadline=10.0,
        check_interval=21600.0,
        chasquid=ChasquidSettings(
            config_dir=Path("/etc/chasquid"),
            binary=Path("/usr/bin/chasquid"),
            util=Path("/usr/bin/chasquid-util"),
            service="systemd",
            unit="chasquid.service",
            user="chasquid",
            args=(),
            restart_command=None,
            reload_strategy="restart",
        ),
    )


def test_the_documented_example_reads_as_written() -> None:
    text = """\
repo: /srv/mail-conf.git      # local repository (bare or not) to reconcile from
remote: null                  # optional URL to fetch from instead (poll mode)
branch: main
state_dir: /var/lib/gitops-mail
chasquid:
  config_dir: /etc/chasquid
  binary: /usr/bin/chasquid
  util: /usr/bin/chasquid-util
  service: systemd            # systemd | supervise | command
  unit: chasquid.service      # systemd
  args: []                    # supervise: extra chasquid flags
  restart_command: null       # command: argv list
poll_interval: 60
"""
    assert hostsettings.parse(text.encode(), FILE) == HostSettings(
        path=FILE, repo=Path("/srv/mail-conf.git")
    )


def test_the_policy_allows_nothing_beyond_chasquid_defaults_unless_root_says_so() -> None:
    default = hostsettings.parse(b"repo: /srv/mail-conf.git\n", FILE)
    assert default.policy == HostPolicy(
        delivery_agents=("maildrop",),
        repo_hooks=False,
        pipe_aliases=False,
        certificate_dirs=("/root/.acme.sh", "/etc/letsencrypt"),
        chasquid_write_dirs=("/var/lib/chasquid", "/var/log/chasquid"),
        probe_networks=("127.0.0.0/8", "::1/128"),
        dovecot_auth=False,
        dovecot_socket_dirs=("/run/dovecot", "/var/run/dovecot"),
    )
    assert default.limits == Limits(
        file_bytes=10 << 20,
        revision_bytes=50 << 20,
        revision_files=20_000,
        hook_seconds=60.0,
        hook_memory_mb=1024,
    )
    text = """\
repo: /srv/mail-conf.git
policy:
  delivery_agents: [/usr/lib/dovecot/deliver]
  repo_hooks: true
  certificate_dirs: [/srv/certs]
limits: {file_bytes: 1000, revision_files: 300, hook_seconds: 5}
"""
    changed = hostsettings.parse(text.encode(), FILE)
    assert changed.policy == HostPolicy(
        delivery_agents=("/usr/lib/dovecot/deliver",),
        repo_hooks=True,
        certificate_dirs=("/srv/certs",),
    )
    assert changed.limits == Limits(file_bytes=1000, revision_files=300, hook_seconds=5)


def test_the_documented_policy_is_the_default_policy() -> None:
    text = (Path(__file__).parents[2] / "deploy" / "gitops-mail.yaml").read_bytes()
    documented = hostsettings.parse(text, FILE)
    assert (documented.policy, documented.limits) == (HostPolicy(), Limits())


def test_a_policy_path_must_be_absolute_and_a_limit_positive() -> None:
    text = "repo: /r\npolicy:\n  certificate_dirs: [certs]\nlimits:\n  file_bytes: 0\n"
    assert invalid(text) == HEAD + (
        f"{FILE}:3: error: At 'policy.certificate_dirs[0]': 'certs' must be an absolute path\n"
        f"{FILE}:5: error: At 'limits.file_bytes': 0 is less than the minimum 1"
    )


def test_a_probe_network_must_be_an_address_or_a_network_each_at_its_line() -> None:
    text = (
        'repo: /r\npolicy:\n  probe_networks:\n    - 10.0.0.0/8\n    - localhost\n    - "::1/200"\n'
    )
    hint = '    hint: e.g. 127.0.0.0/8, "::1/128" or 192.0.2.10'
    assert invalid(text) == HEAD + "\n".join(
        [
            f"{FILE}:5: error: At 'policy.probe_networks[1]': 'localhost' is not an IP address "
            "or network",
            hint,
            f"{FILE}:6: error: At 'policy.probe_networks[2]': '::1/200' is not an IP address "
            "or network",
            hint,
        ]
    )


def test_every_setting_can_be_changed() -> None:
    text = """\
repo: /srv/conf
remote: https://git.example.com/mail-conf.git
branch: production
state_dir: /srv/state
poll_interval: 2.5
probe_deadline: 3
check_interval: 3600
chasquid:
  config_dir: /srv/chasquid
  binary: /opt/chasquid
  util: /opt/chasquid-util
  service: command
  unit: mail.service
  user: mail
  args: ["-v=2", "-testing__reload_every=1s"]
  restart_command: [/usr/local/bin/restart-chasquid, --now]
  reload_strategy: wait
"""
    assert hostsettings.parse(text.encode(), FILE) == HostSettings(
        path=FILE,
        repo=Path("/srv/conf"),
        remote="https://git.example.com/mail-conf.git",
        branch="production",
        state_dir=Path("/srv/state"),
        poll_interval=2.5,
        probe_deadline=3.0,
        check_interval=3600.0,
        chasquid=ChasquidSettings(
            config_dir=Path("/srv/chasquid"),
            binary=Path("/opt/chasquid"),
            util=Path("/opt/chasquid-util"),
            service="command",
            unit="mail.service",
            user="mail",
            args=("-v=2", "-testing__reload_every=1s"),
            restart_command=("/usr/local/bin/restart-chasquid", "--now"),
            reload_strategy="wait",
        ),
    )


def test_an_empty_chasquid_user_is_refused() -> None:
    assert invalid('repo: /r\nchasquid:\n  user: ""\n') == (
        HEAD + f"{FILE}:3: error: At 'chasquid.user': must not be empty"
    )


def test_supervise_mode_needs_no_restart_command() -> None:
    settings_ = hostsettings.parse(b"repo: /r\nchasquid: {service: supervise}\n", FILE)
    assert settings_.chasquid.service == "supervise"
    assert settings_.chasquid.restart_command is None


# --- bad files: exact messages and lines ----------------------------------------------------


def test_an_unknown_key_says_where_and_suggests_the_known_one() -> None:
    assert invalid("repo: /srv/r.git\nstate_dri: /var/x\n") == (
        HEAD + f"{FILE}:2: error: At 'state_dri': unknown key 'state_dri'\n"
        f"    hint: did you mean 'state_dir'? known keys here: {TOP_KEYS}"
    )


def test_every_schema_error_is_reported_at_once_in_line_order() -> None:
    text = """\
repo: /srv/r.git
state_dri: /var/x
chasquid:
  servce: systemd
  args: -v
  service: systemdd
poll_interval: 0
"""
    assert invalid(text) == HEAD + "\n".join(
        [
            f"{FILE}:2: error: At 'state_dri': unknown key 'state_dri'",
            f"    hint: did you mean 'state_dir'? known keys here: {TOP_KEYS}",
            f"{FILE}:4: error: At 'chasquid.servce': unknown key 'servce'",
            f"    hint: did you mean 'service'? known keys here: {CHASQUID_KEYS}",
            f"{FILE}:5: error: At 'chasquid.args': expected a list, found the string '-v'",
            "    hint: write a list: [-v]",
            f"{FILE}:6: error: At 'chasquid.service': 'systemdd' is not one of the allowed values",
            "    hint: did you mean 'systemd'? allowed values: systemd, supervise, command",
            f"{FILE}:7: error: At 'poll_interval': 0 is not greater than 0",
        ]
    )


def test_relative_paths_are_refused_each_at_its_line() -> None:
    text = """\
repo: srv/r.git
state_dir: var/lib/gitops-mail
chasquid:
  config_dir: etc/chasquid
  binary: chasquid
  util: ./chasquid-util
"""
    assert invalid(text) == HEAD + "\n".join(
        [
            f"{FILE}:1: error: At 'repo': 'srv/r.git' must be an absolute path",
            f"{FILE}:2: error: At 'state_dir': 'var/lib/gitops-mail' must be an absolute path",
            f"{FILE}:4: error: At 'chasquid.config_dir': 'etc/chasquid' must be an absolute path",
            f"{FILE}:5: error: At 'chasquid.binary': 'chasquid' must be an absolute path",
            f"{FILE}:6: error: At 'chasquid.util': './chasquid-util' must be an absolute path",
        ]
    )


def test_command_service_without_restart_command_is_an_error_at_the_service_line() -> None:
    text = "repo: /srv/r.git\nchasquid:\n  unit: x.service\n  service: command\n"
    assert invalid(text) == (
        HEAD + f"{FILE}:4: error: At 'chasquid.service': `command` needs chasquid.restart_command\n"
        '    hint: e.g. restart_command: ["/usr/local/bin/restart-chasquid"]'
    )


def test_command_service_with_a_null_restart_command_is_the_same_error() -> None:
    text = "repo: /r\nchasquid:\n  service: command\n  restart_command: null\n"
    assert invalid(text) == (
        HEAD + f"{FILE}:3: error: At 'chasquid.service': `command` needs chasquid.restart_command\n"
        '    hint: e.g. restart_command: ["/usr/local/bin/restart-chasquid"]'
    )


def test_an_empty_restart_command_is_reported_once_at_its_own_line() -> None:
    text = "repo: /r\nchasquid:\n  service: command\n  restart_command: []\n"
    assert (
        invalid(text) == HEAD + f"{FILE}:4: error: At 'chasquid.restart_command': must not be empty"
    )


def test_the_restart_command_rule_is_reported_with_the_schema_errors() -> None:
    text = "repo: /srv/r.git\nfoo: 1\nchasquid:\n  service: command\n"
    assert invalid(text) == HEAD + "\n".join(
        [
            f"{FILE}:2: error: At 'foo': unknown key 'foo'",
            f"    hint: known keys here: {TOP_KEYS}",
            f"{FILE}:4: error: At 'chasquid.service': `command` needs chasquid.restart_command",
            '    hint: e.g. restart_command: ["/usr/local/bin/restart-chasquid"]',
        ]
    )


def test_a_duplicate_key_is_reported_with_the_schema_errors() -> None:
    text = "repo: /srv/a.git\nrepo: /srv/b.git\nfoo: 1\n"
    assert invalid(text) == HEAD + "\n".join(
        [
            f"{FILE}:2: error: At 'repo': duplicate key 'repo' (lines 1 and 2)",
            "    hint: remove one of them: YAML would silently keep only the last",
            f"{FILE}:3: error: At 'foo': unknown key 'foo'",
            f"    hint: known keys here: {TOP_KEYS}",
        ]
    )


def test_a_missing_repo_says_what_to_write() -> None:
    assert invalid("branch: main\n") == (
        HEAD + f"{FILE}:1: error: At the top level: missing required key 'repo'\n"
        "    hint: the repository to reconcile from, e.g. repo: /srv/mail-conf.git"
    )


def test_chasquid_must_be_a_mapping() -> None:
    assert invalid("repo: /r\nchasquid: [systemd]\n") == (
        HEAD + f"{FILE}:2: error: At 'chasquid': expected a mapping, found a list"
    )


def test_true_is_not_a_number() -> None:
    assert invalid("repo: /r\npoll_interval: true\n") == (
        HEAD + f"{FILE}:2: error: At 'poll_interval': expected a number, found true (true/false)"
    )


def test_an_empty_file() -> None:
    assert invalid("") == HEAD + f"{FILE}: error: the file is empty\n    hint: write the settings"


def test_check_interval_zero_turns_the_periodic_check_off_and_a_negative_one_is_refused() -> None:
    assert hostsettings.parse(b"repo: /r\ncheck_interval: 0\n", FILE).check_interval == 0.0
    assert invalid("repo: /r\ncheck_interval: -1\n") == (
        HEAD + f"{FILE}:2: error: At 'check_interval': -1 is less than the minimum 0"
    )


def test_a_syntax_error_has_its_line() -> None:
    message = invalid("repo: /r\nchasquid:\n  service: [systemd\n")
    assert message.startswith(HEAD + f"{FILE}:4:1: error: invalid YAML: ")


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(max_size=8),
    st.lists(st.text(max_size=4), max_size=2),
)
_KEYS = st.sampled_from(
    [
        *("repo", "remote", "branch", "state_dir"),
        *("poll_interval", "probe_deadline", "check_interval", "x"),
    ]
)
_CHASQUID_KEYS = st.sampled_from(
    ["config_dir", "service", "unit", "args", "restart_command", "reload_strategy", "y"]
)


@settings(max_examples=200, deadline=None)
@given(
    top=st.dictionaries(_KEYS, _VALUES, max_size=4),
    chasquid=st.one_of(st.none(), st.dictionaries(_CHASQUID_KEYS, _VALUES, max_size=4)),
)
def test_any_settings_either_load_or_raise_invalid_config(
    top: dict[str, object], chasquid: dict[str, object] | None
) -> None:
    doc = dict(top)
    if chasquid is not None:
        doc["chasquid"] = chasquid
    try:
        loaded = hostsettings.parse(json.dumps(doc).encode(), FILE)  # JSON is YAML
    except InvalidConfig as exc:
        assert exc.message.startswith(HEAD + f"{FILE}:")
        return
    assert loaded.repo.is_absolute()
    assert loaded.chasquid.service in ("systemd", "supervise", "command")
    if loaded.chasquid.service == "command":
        assert loaded.chasquid.restart_command


# --- where the file is -----------------------------------------------------------------------


def test_the_default_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITOPS_MAIL_CONFIG")
    assert hostsettings.settings_path(None) == Path("/etc/gitops-mail/gitops-mail.yaml")


def test_the_environment_variable_overrides_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "host.yaml"
    path.write_text("repo: /srv/from-env\n")
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", str(path))
    assert hostsettings.load().repo == Path("/srv/from-env")
    assert hostsettings.load().path == path


def test_config_option_overrides_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "env.yaml").write_text("repo: /srv/from-env\n")
    (tmp_path / "option.yaml").write_text("repo: /srv/from-option\n")
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", str(tmp_path / "env.yaml"))
    assert hostsettings.load(str(tmp_path / "option.yaml")).repo == Path("/srv/from-option")


def test_an_empty_environment_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", "")
    assert hostsettings.settings_path(None) == Path(hostsettings.DEFAULT_PATH)


def test_a_missing_file_names_the_path_and_how_to_point_elsewhere(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "gitops-mail.yaml"
    with pytest.raises(InvalidConfig) as caught:
        hostsettings.load(str(missing))
    assert caught.value.message == (
        f"cannot read the host settings {missing}: No such file or directory"
    )
    assert caught.value.hint == (
        "create it (see the README), or pass --config / set GITOPS_MAIL_CONFIG"
    )


def test_a_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(GitopsMailError) as caught:
        hostsettings.load(str(tmp_path))
    assert caught.value.message == f"cannot read the host settings {tmp_path}: Is a directory"


def test_errors_in_a_loaded_file_name_that_file(tmp_path: Path) -> None:
    path = tmp_path / "host.yaml"
    path.write_text("repo: /r\nbranch: ''\n")
    with pytest.raises(InvalidConfig) as caught:
        hostsettings.load(str(path))
    assert caught.value.message == HEAD + f"{path}:2: error: At 'branch': must not be empty"
