"""The host's policy against a revision (checks.policy): every field, its exact words and line.

With a policy (a host: pre-receive, apply, the daemon) a refusal is an error
whose hint names the host setting that would allow it; without one (a
checkout, CI) the same fields are notes judged against the default policy.
"""

from __future__ import annotations

import pytest
from support.repo import ALIASES_PATH, CONF_PATH, MANIFEST_PATH, Files, repo_files, snapshot

from gitops_mail.core.checks.policy import inside, normal_path, policy_problems
from gitops_mail.core.checks.validate import validate
from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.snapshot import MODE_EXEC, Entry
from gitops_mail.core.state import load_state

DEFAULT = HostPolicy()
CONF = 'hostname: "mail.example.com"\n'
REFUSED = "is not allowed by this host's policy"
NOTED = "needs a host whose policy allows it (the default policy does not)"
HOOKED_MANIFEST = """\
version: 1
chasquid:
  hooks: true
  pipe_aliases: true
certificates:
  - name: mail.example.com
    acme_sh: /root/.acme.sh/mail.example.com_ecc
domains:
  example.com: {}
"""
HOOK = Entry(b"#!/bin/sh\nexit 0\n", MODE_EXEC)


def judged(changes: Files, policy: HostPolicy | None = DEFAULT) -> list[Problem]:
    base = {**repo_files(), MANIFEST_PATH: HOOKED_MANIFEST}
    return policy_problems(load_state(snapshot(changes, base=base)), policy)


def refused(path: str, line: int | None, what: str, setting: str) -> Problem:
    hint = f"root can allow it in the host settings: policy.{setting}"
    code = "policy." + setting.replace("_", "-")
    return Problem(path, line, code, f"{what} {REFUSED}", hint, Severity.ERROR)


def noted(path: str, line: int | None, what: str, setting: str) -> Problem:
    hint = f"root can allow it in the host settings: policy.{setting}"
    code = "policy." + setting.replace("_", "-")
    return Problem(path, line, code, f"{what} {NOTED}", hint, Severity.NOTE)


def test_the_example_repo_asks_nothing_of_the_default_policy() -> None:
    assert judged({}) == []
    assert judged({}, None) == []


# --- the delivery agent ---------------------------------------------------------------


def test_a_delivery_agent_the_host_does_not_list_is_refused_on_its_line() -> None:
    conf = CONF + 'mail_delivery_agent_bin: "/bin/sh"\nmail_delivery_agent_args: "-c"\n'
    assert judged({CONF_PATH: conf}) == [
        refused(CONF_PATH, 2, 'mail_delivery_agent_bin "/bin/sh"', "delivery_agents")
    ]
    assert judged({CONF_PATH: conf}, HostPolicy(delivery_agents=("/bin/sh",))) == []


def test_a_delivery_agent_is_matched_as_written_not_as_it_resolves() -> None:
    conf = CONF + 'mail_delivery_agent_bin: "/usr/bin/../bin/procmail"\n'
    policy = HostPolicy(delivery_agents=("/usr/bin/procmail",))
    assert judged({CONF_PATH: conf}, policy) == [
        refused(
            CONF_PATH, 2, 'mail_delivery_agent_bin "/usr/bin/../bin/procmail"', "delivery_agents"
        )
    ]


def test_chasquids_default_agent_is_refused_by_a_host_that_lists_only_another() -> None:
    policy = HostPolicy(delivery_agents=("/usr/bin/procmail",))
    assert judged({}, policy) == [
        refused(CONF_PATH, None, 'mail_delivery_agent_bin "maildrop"', "delivery_agents")
    ]


# --- hooks and pipes ------------------------------------------------------------------


def test_a_repo_hook_needs_the_host_to_allow_repo_hooks() -> None:
    files: Files = {"chasquid/hooks/post-data": HOOK, "chasquid/hooks/lib/helper": HOOK}
    assert judged(files) == [
        refused(
            "chasquid/hooks/post-data",
            None,
            "hook 'post-data' (a program chasquid runs for every message)",
            "repo_hooks",
        )
    ]
    assert judged(files, HostPolicy(repo_hooks=True)) == []


def test_an_alias_resolve_hook_is_a_repo_hook_the_host_must_allow() -> None:
    files: Files = {"chasquid/hooks/alias-resolve": HOOK}
    assert judged(files) == [
        refused(
            "chasquid/hooks/alias-resolve",
            None,
            "hook 'alias-resolve' (a program chasquid runs for every local recipient)",
            "repo_hooks",
        )
    ]
    assert judged(files, HostPolicy(repo_hooks=True)) == []


def test_a_pipe_alias_needs_the_host_to_allow_pipe_aliases() -> None:
    aliases = "postmaster: owner@gmail.com\nlist: | /usr/bin/mlmmj-receive -L list\n"
    assert judged({ALIASES_PATH: aliases}) == [
        refused(ALIASES_PATH, 2, "alias 'list' (a pipe to a command)", "pipe_aliases")
    ]
    assert judged({ALIASES_PATH: aliases}, HostPolicy(pipe_aliases=True)) == []


def test_every_pipe_line_is_refused_even_one_a_later_line_overrides() -> None:
    aliases = "postmaster: owner@gmail.com\nrun: | /bin/a\nrun: owner@gmail.com\n"
    assert [(p.line, p.code) for p in judged({ALIASES_PATH: aliases})] == [
        (2, "policy.pipe-aliases")
    ]


# --- certificates ---------------------------------------------------------------------


def certificate(source: str) -> str:
    return HOOKED_MANIFEST.replace("    acme_sh: /root/.acme.sh/mail.example.com_ecc\n", source)


def test_certificate_files_outside_the_allowed_dirs_are_refused_at_their_lines() -> None:
    source = (
        "    files:\n      fullchain: /etc/ssl/mail.pem\n      key: /etc/ssh/ssh_host_ed25519_key\n"
    )
    assert judged({MANIFEST_PATH: certificate(source)}) == [
        refused(
            MANIFEST_PATH,
            8,
            "certificate 'mail.example.com': fullchain file /etc/ssl/mail.pem",
            "certificate_dirs",
        ),
        refused(
            MANIFEST_PATH,
            9,
            "certificate 'mail.example.com': key file /etc/ssh/ssh_host_ed25519_key",
            "certificate_dirs",
        ),
    ]
    policy = HostPolicy(certificate_dirs=("/etc/ssl", "/etc/ssh"))
    assert judged({MANIFEST_PATH: certificate(source)}, policy) == []


@pytest.mark.parametrize(
    ("source", "line", "what"),
    [
        (
            "    acme_sh: /root/.acme.sh/../../etc/ssl\n",
            7,
            "directory /root/.acme.sh/../../etc/ssl",
        ),
        (
            "    certbot: /etc/letsencrypt-other/live/x\n",
            7,
            "directory /etc/letsencrypt-other/live/x",
        ),
    ],
)
def test_a_directory_source_is_judged_by_its_normalised_path(
    source: str, line: int, what: str
) -> None:
    assert judged({MANIFEST_PATH: certificate(source)}) == [
        refused(MANIFEST_PATH, line, f"certificate 'mail.example.com': {what}", "certificate_dirs")
    ]


def test_the_standard_acme_sh_and_certbot_places_are_allowed_by_default() -> None:
    for source in ("    certbot: /etc/letsencrypt/live/mail\n", "    acme_sh: /root/.acme.sh/x\n"):
        assert judged({MANIFEST_PATH: certificate(source)}) == []


# --- where chasquid writes ------------------------------------------------------------


def test_data_dir_and_mail_log_outside_the_write_dirs_are_refused() -> None:
    conf = CONF + 'data_dir: "/etc/cron.d"\nmail_log_path: "/var/log/chasquid/../../../etc/x"\n'
    assert judged({CONF_PATH: conf}) == [
        refused(CONF_PATH, 2, 'data_dir "/etc/cron.d"', "chasquid_write_dirs"),
        refused(
            CONF_PATH, 3, 'mail_log_path "/var/log/chasquid/../../../etc/x"', "chasquid_write_dirs"
        ),
    ]


@pytest.mark.parametrize("log", ["<syslog>", "<stdout>", "<stderr>", "/var/log/chasquid/mail.log"])
def test_mail_logs_chasquid_always_may_use_and_the_default_dirs_are_allowed(log: str) -> None:
    conf = CONF + f'data_dir: "/var/lib/chasquid/"\nmail_log_path: "{log}"\n'
    assert judged({CONF_PATH: conf}) == []


def test_a_relative_data_dir_is_never_inside() -> None:
    conf = CONF + 'data_dir: "var/lib/chasquid"\n'
    assert judged({CONF_PATH: conf}, HostPolicy(chasquid_write_dirs=("/",))) == [
        refused(CONF_PATH, 2, 'data_dir "var/lib/chasquid"', "chasquid_write_dirs")
    ]


# --- addresses the probes reach ----------------------------------------------------------


def test_listen_addresses_outside_the_probe_networks_are_refused_item_by_item() -> None:
    conf = CONF + "".join(
        f'smtp_address: "{a}"\n'
        for a in ("systemd", ":25", "[::]:26", "127.0.0.2:27", "192.0.2.1:25", "mx.example:28")
    )
    conf += 'submission_address: "[::1]:587"\nmonitoring_address: "198.51.100.3:1099"\n'
    assert judged({CONF_PATH: conf}) == [
        refused(CONF_PATH, 6, 'smtp_address "192.0.2.1:25"', "probe_networks"),
        refused(CONF_PATH, 7, 'smtp_address "mx.example:28"', "probe_networks"),
        refused(CONF_PATH, 9, 'monitoring_address "198.51.100.3:1099"', "probe_networks"),
    ]
    wider = HostPolicy(probe_networks=("192.0.2.0/24", "198.51.100.3", "127.0.0.0/8"))
    assert [p.line for p in judged({CONF_PATH: conf}, wider)] == [7, 8]  # a list replaces ::1


# --- dovecot --------------------------------------------------------------------------


def test_dovecot_auth_needs_the_host_and_its_sockets_the_socket_dirs() -> None:
    conf = CONF + 'dovecot_auth: true\ndovecot_userdb_path: "/tmp/userdb"\n'
    conf += 'dovecot_client_path: "/run/dovecot/auth-client"\n'
    assert judged({CONF_PATH: conf}) == [
        refused(CONF_PATH, 2, "dovecot_auth: true", "dovecot_auth"),
        refused(CONF_PATH, 3, 'dovecot_userdb_path "/tmp/userdb"', "dovecot_socket_dirs"),
    ]
    policy = HostPolicy(dovecot_auth=True, dovecot_socket_dirs=("/tmp",))
    assert [p.code for p in judged({CONF_PATH: conf}, policy)] == ["policy.dovecot-socket-dirs"]


def test_dovecot_sockets_of_a_config_without_dovecot_auth_are_never_opened() -> None:
    conf = CONF + 'dovecot_userdb_path: "/tmp/userdb"\n'
    assert judged({CONF_PATH: conf}) == []


# --- no host: notes -------------------------------------------------------------------


def test_without_a_host_every_refusal_of_the_default_policy_is_a_note() -> None:
    conf = CONF + 'mail_delivery_agent_bin: "/bin/sh"\ndata_dir: "/srv/chasquid"\n'
    source = "    files: {fullchain: /srv/tls/chain.pem, key: /srv/tls/key.pem}\n"
    changes: Files = {
        CONF_PATH: conf,
        MANIFEST_PATH: certificate(source),
        ALIASES_PATH: "postmaster: | /usr/bin/handler\n",
        "chasquid/hooks/post-data": HOOK,
    }
    assert judged(changes, None) == [
        noted(CONF_PATH, 2, 'mail_delivery_agent_bin "/bin/sh"', "delivery_agents"),
        noted(CONF_PATH, 3, 'data_dir "/srv/chasquid"', "chasquid_write_dirs"),
        noted(
            "chasquid/hooks/post-data",
            None,
            "hook 'post-data' (a program chasquid runs for every message)",
            "repo_hooks",
        ),
        noted(ALIASES_PATH, 1, "alias 'postmaster' (a pipe to a command)", "pipe_aliases"),
        noted(
            MANIFEST_PATH,
            7,
            "certificate 'mail.example.com': fullchain file /srv/tls/chain.pem",
            "certificate_dirs",
        ),
        noted(
            MANIFEST_PATH,
            7,
            "certificate 'mail.example.com': key file /srv/tls/key.pem",
            "certificate_dirs",
        ),
    ]
    state = load_state(snapshot(changes, base={**repo_files(), MANIFEST_PATH: HOOKED_MANIFEST}))
    found = validate(state, policy=None)
    assert not any(p.is_error for p in found)
    assert found[0].format() == (
        f'{CONF_PATH}:2: note: mail_delivery_agent_bin "/bin/sh" {NOTED}\n'
        "    hint: root can allow it in the host settings: policy.delivery_agents"
    )
    assert [
        p.severity for p in validate(state, policy=DEFAULT) if p.code.startswith("policy.")
    ] == [Severity.ERROR] * 6


# --- paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/etc/letsencrypt/live/x/../../archive/x", "/etc/letsencrypt/archive/x"),
        ("//etc//letsencrypt/./x/", "/etc/letsencrypt/x"),
        ("/../../etc", "/etc"),
        ("etc/x", None),
        ("", None),
    ],
)
def test_paths_are_normalised_by_name_and_relative_ones_are_none(
    path: str, normal: str | None
) -> None:
    assert normal_path(path) == normal


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/letsencrypt", True),
        ("/etc/letsencrypt/live/x/privkey.pem", True),
        ("/etc/letsencrypt-evil/x", False),
        ("/etc/letsencrypt/../shadow", False),
        ("/etc/letsencrypt/live/../../shadow", False),
        ("etc/letsencrypt/x", False),
        ("/etc", False),
    ],
)
def test_inside_is_judged_on_normalised_paths(path: str, expected: bool) -> None:
    assert inside(path, ("/etc/letsencrypt/",)) is expected
