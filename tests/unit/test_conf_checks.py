"""Checks of chasquid.conf: each finding with its exact message, line and severity."""

from __future__ import annotations

import pytest

from gitops_mail.core.checks.conf import check_config
from gitops_mail.core.formats.chasquid_conf import ChasquidConfig, parse_config
from gitops_mail.core.problems import Problem, Severity

PATH = "chasquid/chasquid.conf"
GOOD = 'hostname: "mail.example.com"\n'
E, W = Severity.ERROR, Severity.WARNING
HOST_HINT = "use the server's DNS name, e.g. mail.example.com, the name your MX record points to"
ADDRESS_HINT = 'write "systemd" or HOST:PORT, e.g. ":25" (every address) or "[2001:db8::1]:25"'
INSIDE = "chasquid resolves it inside its config directory, which gitops-mail replaces on apply"


def check(
    text: str, version: tuple[int, int] = (1, 18)
) -> list[tuple[int | None, str, str, Severity]]:
    cfg, problems = parse_config(text.encode(), PATH)
    assert problems == []
    assert cfg is not None
    found = check_config(cfg, PATH, chasquid_version=version)
    assert all(p.path == PATH and p.hint for p in found)
    return [(p.line, p.code, p.message, p.severity) for p in found]


def only(text: str, version: tuple[int, int] = (1, 18)) -> tuple[int | None, str, str, Severity]:
    found = check(text, version)
    assert len(found) == 1, found
    return found[0]


def test_a_plain_config_has_no_problems():
    text = GOOD + 'smtp_address: ":25"\nsubmission_address: "systemd"\n'
    text += 'submission_over_tls_address: "[::]:465"\nmonitoring_address: "127.0.0.1:1099"\n'
    text += 'mail_delivery_agent_bin: "/usr/bin/maildrop"\ndata_dir: "/srv/chasquid"\n'
    text += 'mail_log_path: "/var/log/mail.log"\nsuffix_separators: "+-"\n'
    text += 'give_up_send_after: "48h30m"\nmax_queue_items: 500\n'
    assert check(text) == []


def test_hostname_unset_is_an_error_without_a_line():
    cfg = ChasquidConfig()
    assert check_config(cfg, PATH, chasquid_version=(1, 11)) == [
        Problem(
            PATH,
            None,
            "conf.hostname.missing",
            "hostname is not set, so chasquid would use the machine's own name",
            'set hostname: "mail.example.com"; the repo cannot know the server\'s name',
        )
    ]


def test_hostname_empty_is_an_error_on_its_line():
    assert only('# x\nhostname: ""\n') == (
        2,
        "conf.hostname.missing",
        "hostname is empty, so chasquid would use the machine's own name",
        E,
    )


BAD_LABEL = "has an invalid label {!r} (letters, digits and '-' only, 1-63 characters)"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("mail", "needs at least 2 labels (like mail.example.com)"),
        ("mail.example.com.", 'ends with "." (write it without the final dot)'),
        ("mail..example.com", BAD_LABEL.format("")),
        (".example.com", BAD_LABEL.format("")),
        ("mail_1.example.com", BAD_LABEL.format("mail_1")),
        ("mail server.example.com", BAD_LABEL.format("mail server")),
        ("-mail.example.com", BAD_LABEL.format("-mail")),
        ("mail.example-.com", BAD_LABEL.format("example-")),
        ("a" * 64 + ".example.com", BAD_LABEL.format("a" * 64)),
        (".".join(["a" * 60] * 5), "is longer than 253 characters"),
        ("192.0.2.7", "is an IP address, not a DNS name"),
        ("2001:db8::7", "is an IP address, not a DNS name"),
        ("ä" * 70 + ".example.com", "cannot be encoded as an internationalised domain name"),
    ],
)
def test_hostname_must_be_a_dns_name(name, reason):
    cfg = ChasquidConfig(hostname=name, lines={"hostname": 4})
    assert check_config(cfg, PATH, chasquid_version=(1, 11)) == [
        Problem(PATH, 4, "conf.hostname.invalid", f'hostname "{name}" {reason}', HOST_HINT)
    ]


def test_hostname_labels_of_63_and_names_of_253_are_fine():
    name = ".".join(["a" * 63, "B" * 63, "c" * 63, "d-1" * 20 + "d"])
    assert len(name) == 253
    assert check_config(ChasquidConfig(hostname=name), PATH, chasquid_version=(1, 11)) == []


def test_unicode_hostname_is_accepted_with_its_a_label():
    cfg, _ = parse_config('hostname: "mäil.bücher.example"\n'.encode(), PATH)
    assert cfg is not None
    [problem] = check_config(cfg, PATH, chasquid_version=(1, 11))
    assert problem == Problem(
        PATH,
        1,
        "conf.hostname.idna",
        'hostname "mäil.bücher.example" is not ASCII;'
        ' its A-label "xn--mil-qla.xn--bcher-kva.example" is what goes in DNS',
        'write hostname: "xn--mil-qla.xn--bcher-kva.example": chasquid greets and sends EHLO with'
        " the name as written",
        W,
    )


@pytest.mark.parametrize(
    ("address", "code", "message", "severity"),
    [
        (
            "",
            "conf.listen.empty",
            "smtp_address has an empty address, which makes chasquid listen on a random port",
            E,
        ),
        (
            ":",
            "conf.listen.invalid",
            'smtp_address ":": it has no fixed port, so chasquid would listen on a random one',
            E,
        ),
        (
            "127.0.0.1:0",
            "conf.listen.invalid",
            'smtp_address "127.0.0.1:0": it has no fixed port,'
            " so chasquid would listen on a random one",
            E,
        ),
        (
            ":99999",
            "conf.listen.invalid",
            'smtp_address ":99999": port 99999 is out of range (1-65535)',
            E,
        ),
        ("25", "conf.listen.invalid", 'smtp_address "25": it is not HOST:PORT (no port)', E),
        (
            "::1:25",
            "conf.listen.invalid",
            'smtp_address "::1:25": an IPv6 address needs brackets, like [::1]:25',
            E,
        ),
        (
            "[::1]25",
            "conf.listen.invalid",
            'smtp_address "[::1]25": it is not [IPv6]:PORT (missing "]" or port)',
            E,
        ),
        (
            "Systemd",
            "conf.listen.invalid",
            'smtp_address "Systemd": it is not HOST:PORT (no port)',
            E,
        ),
        (
            ":smtp",
            "conf.listen.port_name",
            'smtp_address ":smtp" names port "smtp", which chasquid looks up as a service',
            W,
        ),
    ],
)
def test_listen_addresses_are_systemd_or_host_port(address, code, message, severity):
    text = GOOD + f'smtp_address: ":25"\n\nsmtp_address: "{address}"\n'
    assert check(text) == [(4, code, message, severity)]


def test_the_same_address_twice_is_an_error_on_the_second():
    text = GOOD + 'smtp_address: [":25", "systemd", "systemd"]\nsubmission_address: ":25"\n'
    text += 'submission_over_tls_address: ["[::1]:465",\n "[::1]:465"]\n'
    text += 'monitoring_address: "localhost:0465"\n'
    message = "{} is {} {}; chasquid cannot listen twice"
    assert check(text) == [
        (
            3,
            "conf.listen.duplicate",
            message.format('submission_address ":25"', "also in", "smtp_address"),
            E,
        ),
        (
            5,
            "conf.listen.duplicate",
            message.format(
                'submission_over_tls_address "[::1]:465"', "twice in", "submission_over_tls_address"
            ),
            E,
        ),
    ]


def test_fields_newer_than_the_server_are_errors():
    text = GOOD + 'max_queue_items: 0\nhaproxy_incoming: true\ngive_up_send_after: "1h"\n'
    hint = (
        "remove {0} or upgrade chasquid to 1.16; if the server already runs a newer chasquid,"
        " set chasquid.version in gitops-mail.yaml"
    )
    cfg, _ = parse_config(text.encode(), PATH)
    assert cfg is not None
    found = check_config(cfg, PATH, chasquid_version=(1, 11))
    assert found[:2] == [
        Problem(
            PATH,
            2,
            "conf.version",
            "max_queue_items needs chasquid 1.16 or newer; chasquid 1.11 will not start",
            hint.format("max_queue_items"),
        ),
        Problem(
            PATH,
            4,
            "conf.version",
            "give_up_send_after needs chasquid 1.16 or newer; chasquid 1.11 will not start",
            hint.format("give_up_send_after"),
        ),
    ]
    assert [p.code for p in found[2:]] == ["conf.ignored"]  # max_queue_items: 0, on 1.16+
    assert [p.code for p in check_config(cfg, PATH, chasquid_version=(1, 16))] == ["conf.ignored"]


def test_max_data_size_must_be_positive_and_fit_in_bytes():
    hint = "set the largest message size in megabytes, e.g. max_data_size_mb: 50"
    assert only(GOOD + "max_data_size_mb: -3\n") == (
        2,
        "conf.max_data_size",
        "max_data_size_mb must be greater than 0 (it is -3; chasquid uses 50)",
        E,
    )
    cfg = ChasquidConfig(
        hostname="mail.example.com", max_data_size_mb=2**43, lines={"max_data_size_mb": 9}
    )
    assert check_config(cfg, PATH, chasquid_version=(1, 11)) == [
        Problem(
            PATH,
            9,
            "conf.max_data_size",
            f"max_data_size_mb {2**43} is too large: in bytes it overflows",
            hint,
        )
    ]
    assert (
        check_config(
            ChasquidConfig(hostname="a.example", max_data_size_mb=2**43 - 1),
            PATH,
            chasquid_version=(1, 11),
        )
        == []
    )


def test_values_chasquid_ignores_are_warnings():
    text = (
        GOOD + 'smtp_address: []\nmail_log_path: ""\ndovecot_auth: false\nmonitoring_address: ""\n'
    )
    assert check(text) == [
        (2, "conf.ignored", 'smtp_address: [] is ignored; chasquid uses ["systemd"]', W),
        (3, "conf.ignored", 'mail_log_path: "" is ignored; chasquid uses "<syslog>"', W),
    ]


def test_data_dir_must_be_absolute():
    assert only(GOOD + 'data_dir: "data"\n') == (
        2,
        "conf.data_dir.relative",
        f'data_dir "data" is a relative path: {INSIDE}',
        E,
    )


def test_delivery_agent_by_name_is_fine_by_relative_path_is_a_warning():
    assert check(GOOD + 'mail_delivery_agent_bin: "procmail"\n') == []
    assert only(GOOD + 'mail_delivery_agent_bin: "./bin/mda"\n') == (
        2,
        "conf.mda.relative",
        f'mail_delivery_agent_bin "./bin/mda" is a relative path: {INSIDE}',
        W,
    )


def test_mail_log_path_typos_and_relative_paths_are_warnings():
    assert only(GOOD + 'mail_log_path: "<sylog>"\n') == (
        2,
        "conf.mail_log",
        f'mail_log_path "<sylog>" is not <syslog>, <stdout> or <stderr> but a file: {INSIDE}',
        W,
    )
    assert only(GOOD + 'mail_log_path: "mail.log"\n') == (
        2,
        "conf.mail_log",
        f'mail_log_path "mail.log" is relative: {INSIDE}',
        W,
    )
    assert check(GOOD + 'mail_log_path: "<stderr>"\n') == []


def test_monitoring_beyond_loopback_is_a_warning():
    for local in ("127.0.0.1:1099", "[::1]:1099", "localhost:1099"):
        assert check(GOOD + f'monitoring_address: "{local}"\n') == []
    assert only(GOOD + 'monitoring_address: ":1099"\n') == (
        2,
        "conf.monitoring.exposed",
        'monitoring_address ":1099" is reachable from other machines, and chasquid\'s monitoring'
        " server has no authentication",
        W,
    )
    assert only(GOOD + 'monitoring_address: "1099"\n') == (
        2,
        "conf.listen.invalid",
        'monitoring_address "1099": it is not HOST:PORT (no port)',
        E,
    )


def test_dovecot_paths_without_dovecot_auth_have_no_effect():
    assert only(GOOD + 'dovecot_userdb_path: "/run/dovecot/auth-userdb"\n') == (
        2,
        "conf.dovecot.unused",
        "dovecot_userdb_path has no effect: dovecot_auth is not true",
        W,
    )
    assert check(GOOD + 'dovecot_auth: true\ndovecot_userdb_path: "/run/x"\n') == []


def test_user_characters_exclude_at_and_whitespace():
    assert check(GOOD + 'suffix_separators: "+@"\ndrop_characters: ". "\n') == [
        (2, "conf.suffix_separators", 'suffix_separators "+@" contains "@"', E),
        (3, "conf.drop_characters", 'drop_characters ". " contains whitespace', E),
    ]


def test_suffix_separators_without_plus_is_a_warning():
    assert only(GOOD + 'suffix_separators: "-"\n') == (
        2,
        "conf.suffix_separators",
        'suffix_separators "-" lacks "+": bounces of mail chasquid forwarded (sent as'
        " user+fwd_from=...) would not reach the user",
        W,
    )


@pytest.mark.parametrize("good", ["20h", "1.5h", "90m", "1h30m15s", "500ms", ".5h", "1µs", "+3h"])
def test_give_up_send_after_accepts_go_durations(good):
    assert check(GOOD + f'give_up_send_after: "{good}"\n') == []


@pytest.mark.parametrize("bad", ["2d", "1", "h", "1h30", ".h", "1hh", "3000000h", "1 h"])
def test_give_up_send_after_rejects_what_go_rejects(bad):
    assert only(GOOD + f'give_up_send_after: "{bad}"\n') == (
        2,
        "conf.give_up_send_after",
        f'give_up_send_after "{bad}" is not a duration chasquid understands; it would not start',
        E,
    )


@pytest.mark.parametrize("zero", ["0", "0s", "-1h"])
def test_give_up_send_after_not_positive_is_ignored(zero):
    assert only(GOOD + f'give_up_send_after: "{zero}"\n') == (
        2,
        "conf.give_up_send_after",
        f'give_up_send_after "{zero}" is not positive; chasquid ignores it and uses 20h',
        W,
    )
