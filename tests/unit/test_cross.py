"""Checks across files (checks.cross), and every kind of problem at once."""

from __future__ import annotations

import pytest
from support.repo import Files, snapshot

from gitops_mail.core.checks.validate import validate
from gitops_mail.core.formats.users.db import Scrypt, User, UserDB, render_users
from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.snapshot import MODE_EXEC, MODE_SYMLINK, Entry
from gitops_mail.core.state import load_state

MANIFEST = """\
version: 1
chasquid:
  hooks: {hooks}
certificates:
  - name: mail.example.com
    acme_sh: /root/.acme.sh/mail.example.com_ecc
domains:
  example.com: {{}}
"""
CONF = 'hostname: "mail.example.com"\n'
ALIASES = "postmaster: owner@gmail.com\n"
HOOK = "#!/bin/sh\nexit 0\n"
FAKE_SCRYPT = Scrypt(14, 8, 1, 32, b"s" * 16, b"k" * 32)
MANIFEST_ONLY = HostPolicy(repo_hooks=True, pipe_aliases=True)  # the host's side: test_policy


def users_file(*names: str) -> bytes:
    return render_users(UserDB(tuple(User(name, FAKE_SCRYPT, 0) for name in names)))


def problems(changes: Files, hooks: bool = False) -> list[Problem]:
    base: Files = {
        "gitops-mail.yaml": MANIFEST.format(hooks="true" if hooks else "false"),
        "chasquid/chasquid.conf": CONF,
        "chasquid/domains/example.com/aliases": ALIASES,
    }
    return validate(load_state(snapshot(changes, base=base)), policy=MANIFEST_ONLY)


def only(found: list[Problem]) -> Problem:
    assert len(found) == 1, [p.format() for p in found]
    return found[0]


# --- hooks -------------------------------------------------------------------


def test_hooks_need_the_manifest_to_allow_them() -> None:
    found = only(problems({"chasquid/hooks/post-data": Entry(HOOK.encode(), MODE_EXEC)}))
    assert found == Problem(
        "chasquid/hooks/post-data",
        None,
        "hooks.not-allowed",
        "hooks run programs on the server, and the manifest does not allow them",
        "set `chasquid: {hooks: true}` in gitops-mail.yaml (the host's policy must allow them "
        "too: policy.repo_hooks), or remove the hook",
    )


def test_an_allowed_executable_hook_is_fine() -> None:
    assert problems({"chasquid/hooks/post-data": Entry(HOOK.encode(), MODE_EXEC)}, True) == []


def test_an_allowed_hook_must_be_executable() -> None:
    found = only(problems({"chasquid/hooks/post-data": HOOK}, hooks=True))
    assert found == Problem(
        "chasquid/hooks/post-data",
        None,
        "hooks.not-executable",
        "the hook is not executable: chasquid would fail every message with 451",
        "git update-index --chmod=+x chasquid/hooks/post-data",
    )


def test_a_hook_chasquid_never_runs() -> None:
    found = only(problems({"chasquid/hooks/pre-data": Entry(HOOK.encode(), MODE_EXEC)}, True))
    assert found == Problem(
        "chasquid/hooks/pre-data",
        None,
        "hooks.unknown",
        "chasquid never runs a hook named 'pre-data'",
        "chasquid runs hooks/post-data and hooks/alias-resolve; rename or remove this file",
        Severity.WARNING,
    )


@pytest.mark.parametrize("name", ["post-data", "alias-resolve"])
def test_the_hooks_chasquid_runs_are_known(name: str) -> None:
    assert problems({f"chasquid/hooks/{name}": Entry(HOOK.encode(), MODE_EXEC)}, True) == []


def test_an_alias_resolve_hook_is_refused_like_any_hook_unless_allowed() -> None:
    found = problems({"chasquid/hooks/alias-resolve": Entry(HOOK.encode(), MODE_EXEC)})
    assert [(p.code, p.severity) for p in found] == [("hooks.not-allowed", Severity.ERROR)]


def test_an_unknown_hook_not_allowed_gets_both() -> None:
    found = problems({"chasquid/hooks/post_data": HOOK})
    assert [(p.code, p.severity) for p in found] == [
        ("hooks.not-allowed", Severity.ERROR),
        ("hooks.unknown", Severity.WARNING),
    ]


def test_a_symlinked_hook_is_a_layout_problem_only() -> None:
    found = only(problems({"chasquid/hooks/post-data": Entry(b"/bin/true", MODE_SYMLINK)}, True))
    assert found.code == "layout.symlink"


def test_hooks_under_a_manifest_that_does_not_parse_report_only_the_manifest() -> None:
    found = problems(
        {
            "gitops-mail.yaml": "version: 1\nchasquid: {hooks: true, colour: blue}\n",
            "chasquid/hooks/post-data": HOOK,
        }
    )
    assert [(p.path, p.line, p.code) for p in found] == [
        ("gitops-mail.yaml", 2, "schema.unknown-key"),
    ]


def test_pipes_under_a_manifest_that_does_not_parse_report_only_the_manifest() -> None:
    found = problems(
        {
            "gitops-mail.yaml": "version: 1\ncolour: blue\n",
            "chasquid/domains/example.com/aliases": ALIASES + "list: | /usr/bin/mlmmj-receive\n",
        }
    )
    assert [(p.path, p.line, p.code) for p in found] == [
        ("gitops-mail.yaml", 2, "schema.unknown-key"),
    ]


# --- the manifest against the tree --------------------------------------------


def test_a_manifest_domain_without_a_directory() -> None:
    manifest = MANIFEST.format(hooks="false") + "  example.org: {}\n"
    found = only(problems({"gitops-mail.yaml": manifest}))
    assert found == Problem(
        "gitops-mail.yaml",
        9,
        "manifest.domain-without-dir",
        "domain 'example.org' is in the manifest but chasquid has no directory for it: "
        "it would not accept mail for it",
        "add chasquid/domains/example.org/aliases (or users), or remove it from domains:",
    )


def test_a_directory_without_a_manifest_domain() -> None:
    found = only(problems({"chasquid/domains/example.net/aliases": ALIASES}))
    assert found == Problem(
        "chasquid/domains/example.net",
        None,
        "manifest.dir-without-domain",
        "domain 'example.net' receives mail but is not under domains: in the manifest, "
        "so no DNS records (MX, SPF, DKIM, DMARC) are generated for it",
        "add `example.net: {}` under domains: in gitops-mail.yaml",
        Severity.WARNING,
    )


def test_no_certificate() -> None:
    manifest = "version: 1\ncertificates: []\ndomains:\n  example.com: {}\n"
    found = only(problems({"gitops-mail.yaml": manifest}))
    assert found == Problem(
        "gitops-mail.yaml",
        2,
        "manifest.no-certificate",
        "no certificate: chasquid refuses to start without one",
        "add a certificates: entry named after the hostname, with its acme_sh, certbot "
        "or files source",
    )


def test_no_certificates_key_at_all() -> None:
    found = only(problems({"gitops-mail.yaml": "version: 1\ndomains:\n  example.com: {}\n"}))
    assert (found.path, found.line, found.code) == (
        "gitops-mail.yaml",
        1,
        "manifest.no-certificate",
    )


def test_no_certificate_for_the_hostname() -> None:
    found = only(problems({"chasquid/chasquid.conf": 'hostname: "smtp.example.com"\n'}))
    assert found == Problem(
        "gitops-mail.yaml",
        4,
        "manifest.no-hostname-certificate",
        "no certificate is named after the hostname 'smtp.example.com' "
        "(set in chasquid/chasquid.conf): clients would not get a certificate for it",
        "add a certificates: entry with `name: smtp.example.com`",
    )


def test_certificate_and_hostname_compare_as_idna() -> None:
    manifest = MANIFEST.format(hooks="false").replace("mail.example.com", "mail.bücher.de")
    conf = 'hostname: "mail.xn--bcher-kva.de"\n'
    assert problems({"gitops-mail.yaml": manifest, "chasquid/chasquid.conf": conf}) == []


# --- postmaster ----------------------------------------------------------------


def test_postmaster_missing() -> None:
    found = only(problems({"chasquid/domains/example.com/aliases": "abuse: owner@gmail.com\n"}))
    assert found == Problem(
        "chasquid/domains/example.com/aliases",
        None,
        "aliases.no-postmaster",
        "postmaster@example.com does not exist: RFC 5321 requires it, and some senders check it",
        "add `postmaster: you@example.com` to the aliases file (or a catch-all)",
        Severity.WARNING,
    )


def test_postmaster_missing_in_a_domain_with_only_users() -> None:
    found = only(
        problems(
            {
                "chasquid/domains/example.com/aliases": None,
                "chasquid/domains/example.com/users": users_file("i"),
            }
        )
    )
    assert (found.path, found.code) == (
        "chasquid/domains/example.com/aliases",
        "aliases.no-postmaster",
    )


@pytest.mark.parametrize(
    "files",
    [
        {"chasquid/domains/example.com/aliases": "PostMaster: owner@gmail.com\n"},
        {"chasquid/domains/example.com/aliases": "*: owner@gmail.com\n"},
        {
            "chasquid/domains/example.com/aliases": None,
            "chasquid/domains/example.com/users": users_file("postmaster"),
        },
    ],
    ids=["alias", "catch-all", "user"],
)
def test_postmaster_present(files: dict[str, str | bytes | None]) -> None:
    assert problems(files) == []


# --- everything at once ---------------------------------------------------------


def test_every_kind_of_problem_at_once_sorted_by_path_and_line() -> None:
    found = problems(
        {
            "gitops-mail.yaml": MANIFEST.format(hooks="false") + "  example.org: {}\n",
            "chasquid/chasquid.conf": 'hostname: "smtp.example.com"\nmax_data_size_mb: -1\n',
            "chasquid/domains/example.com/aliases": "broken line\nloop: loop\n",
            "chasquid/domains/example.com/users": users_file("i", "i"),
            "chasquid/domains/Example.NET/aliases": "postmaster: x@gmail.com\n",
            "chasquid/hooks/post-data": HOOK,
            "chasquid/certs/x/privkey.pem": b"-----BEGIN PRIVATE KEY-----\nAAAA\n",
            "chasquid/notes": "x\n",
            "link": Entry(b"/etc", MODE_SYMLINK),
        }
    )
    assert [(p.path, p.line, p.code) for p in found] == [
        ("chasquid/certs/x/privkey.pem", None, "layout.certs-in-repo"),
        ("chasquid/certs/x/privkey.pem", None, "secret.private-key"),
        ("chasquid/chasquid.conf", 2, "conf.max_data_size"),
        ("chasquid/domains/Example.NET", None, "layout.domain-not-normal"),
        ("chasquid/domains/Example.NET", None, "manifest.dir-without-domain"),
        ("chasquid/domains/example.com/aliases", None, "aliases.no-postmaster"),
        ("chasquid/domains/example.com/aliases", 1, "aliases.syntax"),
        ("chasquid/domains/example.com/aliases", 2, "aliases.loop"),
        ("chasquid/domains/example.com/users", 15, "users.duplicate"),
        ("chasquid/hooks/post-data", None, "hooks.not-allowed"),
        ("chasquid/notes", None, "layout.unknown-file"),
        ("gitops-mail.yaml", 4, "manifest.no-hostname-certificate"),
        ("gitops-mail.yaml", 9, "manifest.domain-without-dir"),
        ("link", None, "layout.symlink"),
    ]
    assert found == sorted(found, key=Problem.sort_key)
