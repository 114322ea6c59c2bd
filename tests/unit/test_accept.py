"""Placeholders left in are warned about, and warnings can be accepted in the repo
(``accept:`` in the manifest): listed as accepted, stale entries reported."""

from __future__ import annotations

import pytest
from support.repo import ALIASES_PATH, MANIFEST, MANIFEST_PATH, USERS_PATH, repo_files, snapshot

from gitops_mail.cli.scaffold import template_files
from gitops_mail.core import report
from gitops_mail.core.checks.aliases import SCAFFOLD_ADDRESS
from gitops_mail.core.checks.validate import validate
from gitops_mail.core.formats.users import db as U
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.snapshot import Snapshot
from gitops_mail.core.state import load_state

IPS = 'server:\n  ipv4: [198.51.100.7, 203.0.113.1]\n  ipv6: ["2001:db8::7"]\n'
SHADOW = "chasquid/domains/example.com/aliases:3"


def found(changes: dict[str, str | bytes | None]) -> list[Problem]:
    return validate(load_state(snapshot(changes, base=repo_files())), policy=None)


def codes(problems: list[Problem], severity: Severity = Severity.WARNING) -> list[tuple]:
    return [(p.path, p.line, p.code) for p in problems if p.severity is severity]


def users_i() -> bytes:
    return U.render_users(U.set_user(U.UserDB(()), "i", U.hash_password("pw")))


def test_documentation_addresses_in_the_manifest_are_placeholders() -> None:
    problems = found({MANIFEST_PATH: MANIFEST.replace("version: 1\n", "version: 1\n" + IPS)})
    assert codes(problems) == [
        (MANIFEST_PATH, 3, "manifest.ip-placeholder"),
        (MANIFEST_PATH, 3, "manifest.ip-placeholder"),
        (MANIFEST_PATH, 4, "manifest.ip-placeholder"),
    ]
    assert "RFC 5737" in problems[0].message and "RFC 3849" in problems[2].message


def test_a_documentation_network_in_spf_is_a_placeholder_and_a_public_one_is_not() -> None:
    spf = '  example.com:\n    spf: {ip4: [192.0.2.0/28, 8.8.8.0/24], ip6: ["2a00:1450::/32"]}\n'
    problems = found({MANIFEST_PATH: MANIFEST.replace("  example.com: {}\n", spf)})
    assert codes(problems) == [(MANIFEST_PATH, 7, "manifest.ip-placeholder")]
    assert "192.0.2.0/28" in problems[0].message


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (SCAFFOLD_ADDRESS, "placeholder `gitops-mail init` writes"),
        ("You@Gmail.com", "placeholder `gitops-mail init` writes"),
        ("carol@example.net", "example.net is reserved for examples (RFC 2606)"),
        ("bob@mail.example.org", "mail.example.org is reserved for examples (RFC 2606)"),
    ],
)
def test_a_placeholder_forwarding_address_is_a_warning(target: str, why: str) -> None:
    problems = found({ALIASES_PATH: f"postmaster: owner@gmail.com\nsales: {target}\n"})
    assert codes(problems) == [(ALIASES_PATH, 2, "aliases.placeholder")]
    assert why in problems[0].message
    assert "[aliases.placeholder]" in problems[0].format()


@pytest.mark.parametrize(
    "target",
    ["owner@gmail.com", "you@gmail.company", "a@myexample.com", "a@example.co", "a@x.example"],
)
def test_real_addresses_are_no_placeholders(target: str) -> None:
    assert found({ALIASES_PATH: f"postmaster: {target}\n"}) == []


def test_a_served_example_domain_is_local_not_a_placeholder() -> None:
    assert found({ALIASES_PATH: "postmaster: sales\nsales: owner@gmail.com\n"}) == []
    assert found({ALIASES_PATH: "postmaster: sales@example.com\nsales: a@gmail.com\n"}) == []


def accept(*entries: str) -> str:
    return MANIFEST + "accept:\n" + "".join(f"  - {e}\n" for e in entries)


SHADOWING = {
    ALIASES_PATH: "postmaster: i\nabuse: i\ni: owner@gmail.com\n",
    USERS_PATH: users_i(),
}


def test_an_accepted_warning_is_listed_as_accepted_with_its_reason() -> None:
    entry = f"{{code: aliases.shadows-user, at: '{SHADOW}', why: i only sends}}"
    problems = found({**SHADOWING, MANIFEST_PATH: accept(entry)})
    assert codes(problems) == []
    assert codes(problems, Severity.ACCEPTED) == [(ALIASES_PATH, 3, "aliases.shadows-user")]
    assert problems[0].hint == f"in {MANIFEST_PATH}:8: i only sends"
    text = report.problems_text(problems, "HEAD")
    assert f"{SHADOW}: accepted: alias 'i' has the name" in text
    assert f"    accepted in {MANIFEST_PATH}:8: i only sends\n" in text
    assert text.endswith("HEAD: valid, 1 accepted\n")


def test_without_the_entry_the_same_warning_fails_strict() -> None:
    problems = found(SHADOWING)
    assert codes(problems) == [(ALIASES_PATH, 3, "aliases.shadows-user")]
    assert report.problems_text(problems, "HEAD").endswith("HEAD: valid, 1 warning\n")


def test_a_whole_file_entry_accepts_that_code_on_every_line_of_that_file_only() -> None:
    aliases = "postmaster: a@example.net\nsales: b@example.net\n"
    entry = f"{{code: aliases.placeholder, at: {ALIASES_PATH}, why: test domains}}"
    ips = MANIFEST.replace("version: 1\n", "version: 1\n" + IPS)
    manifest = ips + "accept:\n" + f"  - {entry}\n"
    problems = found({ALIASES_PATH: aliases, MANIFEST_PATH: manifest})
    assert codes(problems, Severity.ACCEPTED) == [
        (ALIASES_PATH, 1, "aliases.placeholder"),
        (ALIASES_PATH, 2, "aliases.placeholder"),
    ]
    assert {c for _, _, c in codes(problems)} == {"manifest.ip-placeholder"}


def test_an_entry_for_another_line_or_code_accepts_nothing_and_is_stale() -> None:
    wrong_line = f"{{code: aliases.shadows-user, at: '{ALIASES_PATH}:2', why: x}}"
    wrong_code = f"{{code: aliases.duplicate, at: '{SHADOW}', why: y}}"
    problems = found({**SHADOWING, MANIFEST_PATH: accept(wrong_line, wrong_code)})
    assert codes(problems) == [
        (ALIASES_PATH, 3, "aliases.shadows-user"),
        (MANIFEST_PATH, 8, "manifest.accept-stale"),
        (MANIFEST_PATH, 9, "manifest.accept-stale"),
    ]
    assert "no such warning there" in problems[1].message


def test_an_error_cannot_be_accepted() -> None:
    entry = f"{{code: aliases.unknown-target, at: '{ALIASES_PATH}:2', why: later}}"
    aliases = "postmaster: owner@gmail.com\nsales: nobody\n"
    problems = found({ALIASES_PATH: aliases, MANIFEST_PATH: accept(entry)})
    assert [(p.code, p.severity) for p in problems] == [
        ("aliases.unknown-target", Severity.ERROR),
        ("manifest.accept-stale", Severity.WARNING),
    ]
    assert "errors cannot be accepted" in problems[1].message


def test_an_accepted_manifest_warning_is_accepted_where_the_manifest_is_read() -> None:
    at = f"{MANIFEST_PATH}:3"
    entry = f"{{code: manifest.ip-placeholder, at: '{at}', why: a test server}}"
    manifest = accept(entry).replace("version: 1\n", "version: 1\n" + IPS)
    state = load_state(snapshot({MANIFEST_PATH: manifest}, base=repo_files()))
    assert [(p.line, p.severity) for p in state.problems] == [
        (3, Severity.ACCEPTED),
        (3, Severity.ACCEPTED),
        (4, Severity.WARNING),
    ]


def test_an_entry_needs_a_reason() -> None:
    entry = f"{{code: aliases.shadows-user, at: '{SHADOW}'}}"
    problems = found({**SHADOWING, MANIFEST_PATH: accept(entry)})
    assert any(p.is_error and "'why'" in p.message for p in problems)


def test_a_fresh_scaffold_accepts_its_own_i_alias_and_warns_only_of_its_placeholders() -> None:
    state = load_state(Snapshot(template_files("wac.tax"), "HEAD", None))
    problems = validate(state, policy=None)
    assert codes(problems, Severity.ACCEPTED) == [
        ("chasquid/domains/wac.tax/aliases", 15, "aliases.shadows-user")
    ]
    assert {c for _, _, c in codes(problems)} == {"aliases.placeholder", "manifest.ip-placeholder"}
    assert not any(p.is_error for p in problems)
