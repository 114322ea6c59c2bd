"""Several servers from one repo: ``hosts:`` in the manifest, each server's view, the zone."""

from __future__ import annotations

import pytest
from support.repo import CONF_PATH, MANIFEST_PATH, snapshot

from gitops_mail.core.dns.check import expectations
from gitops_mail.core.dns.want import desired, questions
from gitops_mail.core.dns.zone import render_zones
from gitops_mail.core.formats.chasquid_conf import parse_config
from gitops_mail.core.hostview import view
from gitops_mail.core.manifest.model import parse_manifest
from gitops_mail.core.manifest.roles import signing_selectors
from gitops_mail.core.render import render_tree
from gitops_mail.core.state import State, load_state
from gitops_mail.errors import InvalidConfig, UsageError

SETTINGS = "/etc/gitops-mail/gitops-mail.yaml"
TWO = """\
version: 1
certificates:
  - {name: mx1.example.com, acme_sh: /root/.acme.sh/mx1.example.com_ecc}
  - {name: mx2.example.com, acme_sh: /root/.acme.sh/mx2.example.com_ecc}
  - {name: webmail.example.com, acme_sh: /root/.acme.sh/webmail.example.com_ecc}
hosts:
  mx1:
    hostname: mx1.example.com
    ipv4: [198.51.100.7]
    ipv6: ["2001:db8::7"]
    certificate: mx1.example.com
    overrides:
      smtp_address: ["198.51.100.7:25", "[2001:db8::7]:25"]
      data_dir: /var/lib/chasquid-mx1
  mx2:
    hostname: mx2.example.com
    ipv4: [203.0.113.9]
    certificate: mx2.example.com
domains:
  example.com:
    dkim: {selectors: [s2026]}
    spf: {all: "-all"}
    mta_sts: {mode: enforce}
"""
CONF = 'hostname: "mail.example.com"\nmax_data_size_mb: 20\n'


def state(manifest: str = TWO, conf: str = CONF) -> State:
    loaded = load_state(snapshot({MANIFEST_PATH: manifest, CONF_PATH: conf}))
    assert loaded.manifest is not None, loaded.problems
    return loaded


PLACEHOLDER = "manifest.ip-placeholder"  # TWO's documentation addresses: tested on their own


def problems(manifest: str) -> list[tuple[int | None, str, str, str]]:
    _, found = parse_manifest(manifest.encode())
    return [(p.line, p.code, p.message, p.hint) for p in found if p.code != PLACEHOLDER]


def test_each_hosts_documentation_address_is_warned_as_a_placeholder() -> None:
    _, found = parse_manifest(TWO.encode())
    assert [(p.line, p.severity.value) for p in found if p.code == PLACEHOLDER] == [
        (9, "warning"),
        (10, "warning"),
        (17, "warning"),
    ]


# --- the manifest -----------------------------------------------------------------


def test_hosts_are_read_in_order_with_default_priorities() -> None:
    manifest = state().manifest
    assert manifest is not None
    mx1, mx2 = manifest.hosts.values()
    assert (mx1.name, mx1.hostname, mx1.mx_priority, mx1.certificate) == (
        "mx1",
        "mx1.example.com",
        10,
        "mx1.example.com",
    )
    assert (mx2.name, mx2.mx_priority, mx2.ipv4, mx2.overrides) == ("mx2", 20, ("203.0.113.9",), {})
    assert mx1.overrides["smtp_address"] == ("198.51.100.7:25", "[2001:db8::7]:25")


def test_a_manifest_without_hosts_has_none() -> None:
    manifest = state("version: 1\ndomains:\n  example.com: {}\n").manifest
    assert manifest is not None and not manifest.hosts and manifest.host is None


def test_server_addresses_beside_hosts_are_refused() -> None:
    text = TWO.replace("hosts:\n", "server:\n  ipv4: [198.51.100.7]\nhosts:\n")
    assert (
        7,
        "manifest.server-and-hosts",
        "At 'server.ipv4': with hosts:, each host lists its own addresses",
        "move server.ipv4 into hosts.<name>.ipv4",
    ) in problems(text)  # beside the warning that 198.51.100.7 is a documentation address


def test_a_host_naming_an_unknown_certificate_is_refused() -> None:
    text = TWO.replace("certificate: mx2.example.com", "certificate: mx3.example.com")
    assert problems(text) == [
        (
            18,
            "manifest.host-certificate",
            "At 'hosts.mx2.certificate': 'mx3.example.com' is not the name of a certificates: "
            "entry (listed: mx1.example.com, mx2.example.com, webmail.example.com)",
            "add it under certificates:, or name one that is there",
        )
    ]


def test_bad_names_addresses_and_overrides_say_where() -> None:
    text = TWO.replace("  mx2:\n", "  MX_2:\n").replace("[203.0.113.9]", '["2001:db8::9"]')
    text = text.replace("/var/lib/chasquid-mx1", '"/var/lib/\\"x"')
    assert [(line, code) for line, code, _, _ in problems(text)] == [
        (14, "schema.pattern"),
        (15, "manifest.host-name"),
        (17, "manifest.ip-family"),
    ]
    assert problems(text)[2][3] == "move it to hosts.MX_2.ipv6"


def test_dkim_selectors_per_host_must_be_on_every_host_and_listed() -> None:
    text = TWO.replace("    certificate: mx1.example.com\n", "    dkim_selector: mx1\n", 1)
    assert [(code, message) for _, code, message, _ in problems(text)] == [
        (
            "manifest.host-dkim-unlisted",
            "At 'hosts.mx1.dkim_selector': 'mx1' is not among domains.example.com.dkim.selectors",
        ),
        (
            "manifest.host-dkim-missing",
            "At 'hosts.mx2': names no dkim_selector, but other hosts do: "
            "each signs with its own key",
        ),
    ]


# --- one server's view --------------------------------------------------------------


def test_each_host_renders_its_own_hostname_addresses_data_dir_and_certificate() -> None:
    shared = state()
    mx1, mx2 = view(shared, "mx1", SETTINGS), view(shared, "mx2", SETTINGS)
    conf1, _ = parse_config(render_tree(mx1, {})["chasquid.conf"].data, CONF_PATH)
    conf2, _ = parse_config(render_tree(mx2, {})["chasquid.conf"].data, CONF_PATH)
    assert conf1 is not None and conf2 is not None
    assert (conf1.hostname, conf1.smtp_address, conf1.data_dir) == (
        "mx1.example.com",
        ("198.51.100.7:25", "[2001:db8::7]:25"),
        "/var/lib/chasquid-mx1",
    )
    assert (conf2.hostname, conf2.smtp_address, conf2.data_dir) == (
        "mx2.example.com",
        ("systemd",),
        "/var/lib/chasquid",
    )
    assert conf1.max_data_size_mb == conf2.max_data_size_mb == 20  # the shared rest
    assert mx1.manifest is not None and mx2.manifest is not None
    assert [c.name for c in mx1.manifest.certificates] == ["mx1.example.com", "webmail.example.com"]
    assert [c.name for c in mx2.manifest.certificates] == ["mx2.example.com", "webmail.example.com"]
    assert [p.code for p in mx1.problems] == [PLACEHOLDER] * 3


def test_a_repo_without_hosts_is_unchanged_by_the_view() -> None:
    one = load_state(snapshot())
    assert view(one, None, SETTINGS) is one


def test_a_server_that_does_not_say_which_host_it_is_gets_the_fix() -> None:
    with pytest.raises(InvalidConfig) as raised:
        view(state(), None, SETTINGS)
    assert raised.value.message == (
        f"gitops-mail.yaml lists hosts (mx1, mx2), but {SETTINGS} does not say which one "
        "this server is"
    )
    assert raised.value.hint == (
        f"add 'host: NAME' to {SETTINGS}, NAME one of mx1, mx2 (gitops-mail deploy writes it)"
    )


def test_an_unknown_host_names_the_settings_file_and_the_hosts() -> None:
    with pytest.raises(InvalidConfig) as raised:
        view(state(), "mx3", SETTINGS)
    assert raised.value.message == (
        f"{SETTINGS} says host: mx3, which is not among the hosts of gitops-mail.yaml (mx1, mx2)"
    )
    assert raised.value.hint == (
        f"set host: to one of mx1, mx2 in {SETTINGS}, or add mx3 under hosts:"
    )


def test_a_host_setting_without_hosts_in_the_manifest_is_refused() -> None:
    with pytest.raises(InvalidConfig, match="names no hosts"):
        view(load_state(snapshot()), "mx1", SETTINGS)


def test_dkim_shared_or_one_selector_per_host() -> None:
    shared = state().manifest
    assert shared is not None
    domain = shared.domains["example.com"]
    assert signing_selectors(shared._replace(host="mx1"), domain) == ("s2026",)
    text = TWO.replace("[s2026]", "[s2026, mx1, mx2]")
    text = text.replace("    certificate: mx1.example.com\n", "    dkim_selector: mx1\n", 1)
    text = text.replace("    certificate: mx2.example.com\n", "    dkim_selector: mx2\n", 1)
    own = view(state(text), "mx2", SETTINGS).manifest
    assert own is not None
    assert signing_selectors(own, own.domains["example.com"]) == ("mx2",)


# --- DNS covers every host ----------------------------------------------------------


ZONE_RECORDS = """\
; Mail for example.com goes to chasquid on mx1.example.com, mx2.example.com.
@                IN MX   10 mx1.example.com.
@                IN MX   20 mx2.example.com.

; Reverse DNS (PTR, set at your hosting provider): 198.51.100.7, 2001:db8::7 -> mx1.example.com.
mx1              IN A    198.51.100.7
mx1              IN AAAA 2001:db8::7
; Reverse DNS (PTR, set at your hosting provider): 203.0.113.9 -> mx2.example.com.
mx2              IN A    203.0.113.9

; SPF: who may send mail from @example.com.
@                IN TXT  "v=spf1 mx ip4:198.51.100.7 ip4:203.0.113.9 ip6:2001:db8::7 -all"
"""


def test_the_zone_lists_every_host_the_same_from_each_view() -> None:
    shared = state()
    zones = render_zones(shared)
    assert ZONE_RECORDS in zones["dns/example.com.zone"].decode()
    assert (
        ";   mx: mx1.example.com\n;   mx: mx2.example.com\n"
        in zones["dns/example.com.zone"].decode()
    )
    assert render_zones(view(shared, "mx2", SETTINGS)) == zones


def test_an_explicit_mx_priority_orders_the_hosts() -> None:
    text = TWO.replace("    ipv4: [203.0.113.9]\n", "    ipv4: [203.0.113.9]\n    mx_priority: 5\n")
    zone = render_zones(state(text))["dns/example.com.zone"].decode()
    first = "@                IN MX   5 mx2.example.com.\n"
    assert first + "@                IN MX   10 mx1.example.com.\n" in zone


def test_check_asks_for_every_host_and_its_ptr() -> None:
    want = desired(view(state(), "mx1", SETTINGS), {}, {})
    assert [s.hostname for s in want.servers] == ["mx1.example.com", "mx2.example.com"]
    asked = questions(want)
    assert ("mx2.example.com.", "A") in asked
    assert ("9.113.0.203.in-addr.arpa.", "PTR") in asked
    checks = [(e.check, e.subject) for e in expectations(want, {}, {})]
    assert checks[:7] == [
        ("a", "mx1.example.com"),
        ("aaaa", "mx1.example.com"),
        ("ptr", "198.51.100.7"),
        ("ptr", "2001:db8::7"),
        ("a", "mx2.example.com"),
        ("aaaa", "mx2.example.com"),
        ("ptr", "203.0.113.9"),
    ]


def test_an_mx_missing_one_host_is_an_error() -> None:
    from gitops_mail.core.dns import findings as fnd  # noqa: PLC0415
    from gitops_mail.core.dns.answer import Answer  # noqa: PLC0415
    from gitops_mail.core.dns.check import verdict  # noqa: PLC0415

    want = desired(state(), {}, {})
    mx = next(e for e in expectations(want, {}, {}) if e.check == "mx")
    found = verdict(mx, Answer(("10 mx1.example.com.",), 300))
    assert (found.status, found.message) == (
        fnd.ERROR,
        "10 mx1.example.com.; expected also mx2.example.com.",
    )
    both = verdict(mx, Answer(("10 mx1.example.com.", "20 mx2.example.com."), 300))
    assert both.status == fnd.OK


# --- deploy: which host a target is, written into its settings ----------------------


def test_deploy_targets_map_to_manifest_hosts_by_name_hostname_or_address() -> None:
    from gitops_mail.core.deploy.target import assign_hosts, parse_target  # noqa: PLC0415

    manifest = state().manifest
    assert manifest is not None
    specs = ["root@198.51.100.7", "mx2.example.com:2222", "mx1=admin@10.0.0.1"]
    found = assign_hosts([parse_target(s) for s in specs], manifest.hosts)
    assert [(t.host, t.name, t.manifest_host) for t in found] == [
        ("198.51.100.7", "mx1", "mx1"),
        ("mx2.example.com", "mx2", "mx2"),
        ("10.0.0.1", "mx1", "mx1"),
    ]
    with pytest.raises(UsageError) as raised:
        assign_hosts([parse_target("root@192.0.2.1")], manifest.hosts)
    assert (
        raised.value.message
        == "'root@192.0.2.1': 192.0.2.1 is none of the manifest's hosts (mx1, mx2)"
    )
    assert raised.value.hint == "say which one it is: NAME=root@192.0.2.1, NAME one of mx1, mx2"
    with pytest.raises(UsageError, match="has no hosts:"):
        assign_hosts([parse_target("mx1=root@192.0.2.1")], {})


def test_deploy_writes_host_into_the_settings() -> None:
    from gitops_mail.core.deploy.layout import Layout  # noqa: PLC0415
    from gitops_mail.core.deploy.texts import render_settings  # noqa: PLC0415

    template = (
        "repo: /srv/mail-conf.git\nbranch: main\nstate_dir: /var/lib/gitops-mail\n"
        "chasquid:\n  config_dir: /etc/chasquid\n  service: systemd\n"
    )
    text = render_settings(template, Layout(), "mx2")
    assert text.splitlines()[:3] == [
        "repo: /srv/mail-conf.git",
        "# Which of the conf repo's hosts: this server is (written by gitops-mail deploy).",
        "host: mx2",
    ]
    assert render_settings(text, Layout(), "mx1").count("host: ") == 1
    assert "host: mx1\n" in render_settings(text, Layout(), "mx1")
    assert render_settings(template, Layout()) == template


def test_rollout_lines_name_the_host_a_change_has_not_reached() -> None:
    from gitops_mail.core.deploy.rollout import Rollout, lines  # noqa: PLC0415

    tip = "1a2b3c4d" * 5
    hosts = [
        Rollout("mx1", live=tip, host_tip=tip, has_tip=True, reached=True, daemon="active"),
        Rollout("mx2", live="9f8e7d6c" * 5, host_tip="9f8e7d6c" * 5, daemon="active"),
        Rollout("mx3", error="mx3: cannot connect: Connection refused"),
    ]
    assert lines(tip, "main", hosts) == [
        "conf repo main at 1a2b3c4",
        "host  state   live     daemon",
        "mx1   live    1a2b3c4  active",
        "mx2   behind  9f8e7d6  active",
        "      its main lacks the tip: push to it (git push vps-mx2 main)",
        "mx3   unknown none     unknown",
        "      cannot ask: mx3: cannot connect: Connection refused",
        "1a2b3c4 is live on mx1; not yet on mx2, mx3",
    ]
    assert lines(tip, "main", hosts[:1])[-1] == "1a2b3c4 is live on every host (mx1)"
