"""The shape of the tree (checks.layout), through load_state + validate on built snapshots."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from support.repo import ALIASES, MANIFEST, snapshot

from gitops_mail.core.checks.validate import validate
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.snapshot import MODE_GITLINK, MODE_OTHER, MODE_SYMLINK, Entry, Snapshot
from gitops_mail.core.state import load_state


def problems(changes: Mapping[str, str | bytes | Entry | None] = {}) -> list[Problem]:
    """The problems of the small valid repo with ``changes`` applied."""
    return validate(load_state(snapshot(changes)), policy=None)


def only(found: list[Problem]) -> Problem:
    assert len(found) == 1, [p.format() for p in found]
    return found[0]


def where(found: list[Problem]) -> list[tuple[str, int | None, str]]:
    return [(p.path, p.line, p.code) for p in found]


def test_a_minimal_repo_is_valid() -> None:
    assert problems() == []


def test_missing_manifest() -> None:
    found = only(problems({"gitops-mail.yaml": None}))
    assert found == Problem(
        "gitops-mail.yaml",
        None,
        "layout.no-manifest",
        "the manifest is missing",
        "create it (gitops-mail init DOMAIN DIR scaffolds a complete repo)",
    )


def test_missing_chasquid_conf() -> None:
    found = only(problems({"chasquid/chasquid.conf": None}))
    assert found == Problem(
        "chasquid/chasquid.conf",
        None,
        "layout.no-config",
        "chasquid's config file is missing",
        'add chasquid/chasquid.conf with at least `hostname: "mail.example.com"`',
    )


def test_no_domains() -> None:
    found = problems({"chasquid/domains/example.com/aliases": None})
    assert where(found) == [
        ("chasquid/domains", None, "layout.no-domains"),
        ("gitops-mail.yaml", 6, "manifest.domain-without-dir"),
    ]
    assert found[0].message == "there is no domain: chasquid refuses to start without one"
    assert found[0].hint == (
        "add chasquid/domains/<domain>/aliases (or a users file) for each domain"
    )


def test_an_empty_domain_directory_counts_as_a_domain() -> None:
    snap = snapshot({"chasquid/domains/example.com/aliases": None})
    snap = Snapshot(snap.files, "test", directories=frozenset({"chasquid/domains/example.com"}))
    state = load_state(snap)
    assert list(state.domains) == ["example.com"]
    found = only(validate(state, policy=None))
    assert (found.path, found.code) == (
        "chasquid/domains/example.com/aliases",
        "aliases.no-postmaster",
    )


@pytest.mark.parametrize(
    ("path", "component"),
    [
        ("chasquid/domains/example.com/a\\b", "a\\b"),
        ("chasquid/x\x01y", "x\x01y"),
        ("notes/tab\there", "tab\there"),
        ("chasquid/./chasquid.conf", "."),
        ("chasquid//chasquid.conf", ""),
        ("chasquid/domains/example.com/\x7f", "\x7f"),
    ],
)
def test_bad_path_components(path: str, component: str) -> None:
    found = only(problems({path: "x\n"}))
    assert found == Problem(
        path,
        None,
        "layout.bad-path",
        f"path component {component!r} could escape the config dir",
        "rename the file to a plain name",
    )


def test_a_tree_that_escapes_with_dot_dot() -> None:
    evil = "chasquid/domains/../../../etc/cron.d/evil"
    state = load_state(snapshot({evil: "* * * * * root sh -c 'id'\n"}))
    assert list(state.domains) == ["example.com"]  # '..' is not a domain
    found = only(validate(state, policy=None))
    assert (found.path, found.code, found.message) == (
        evil,
        "layout.bad-path",
        "path component '..' could escape the config dir",
    )


def test_dot_dot_as_a_whole_domain_path_is_no_domain() -> None:
    state = load_state(snapshot({"chasquid/domains/../users": b""}))
    assert list(state.domains) == ["example.com"]
    assert where(validate(state, policy=None)) == [
        ("chasquid/domains/../users", None, "layout.bad-path")
    ]


@pytest.mark.parametrize(
    "path",
    [
        "chasquid/domains/example.com/users",  # inside chasquid/
        "chasquid/domains/evil.com",  # a whole domain directory
        "docs/passwd",  # outside chasquid/
        "gitops-mail-link.yaml",  # at the top
    ],
)
def test_symlinks_anywhere(path: str) -> None:
    found = only(problems({path: Entry(b"/etc/passwd", MODE_SYMLINK)}))
    assert found == Problem(
        path,
        None,
        "layout.symlink",
        "is a symbolic link (to '/etc/passwd'): links could make chasquid read or write "
        "outside its config dir",
        "replace the link with the file itself",
    )


def test_a_symlinked_users_file_is_not_read() -> None:
    state = load_state(
        snapshot({"chasquid/domains/example.com/users": Entry(b"../x", MODE_SYMLINK)})
    )
    assert state.domains["example.com"].users is None
    assert not state.domains["example.com"].has_users_file


def test_submodule() -> None:
    found = only(problems({"vendor/lib": Entry(b"", MODE_GITLINK)}))
    assert found == Problem(
        "vendor/lib",
        None,
        "layout.submodule",
        "is a git submodule: its content is not in this repo",
        "copy the files in instead of linking another repository",
    )


def test_special_file() -> None:
    found = only(problems({"chasquid/fifo": Entry(b"", MODE_OTHER)}))
    assert found == Problem(
        "chasquid/fifo",
        None,
        "layout.special-file",
        "is not a regular file (device, FIFO or socket)",
        "remove it",
    )


SECRET = b"MIIEowIBAAKCAQEAtopsecretmaterial0123456789"


@pytest.mark.parametrize(
    "kind",
    [
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ],
)
def test_private_key_committed_anywhere(kind: str) -> None:
    pem = b"-----BEGIN " + kind.encode() + b"-----\n" + SECRET + b"\n-----END " + kind.encode()
    found = only(problems({"backup/dkim.pem": pem + b"-----\n"}))
    assert found == Problem(
        "backup/dkim.pem",
        None,
        "secret.private-key",
        "holds a private key: private keys must never be committed",
        "remove it, purge it from the history (git filter-repo) and replace the key; "
        "TLS keys come from the certificates: sources, DKIM keys are made on the server",
    )
    assert SECRET.decode() not in found.format()
    assert "topsecret" not in repr(found.to_json())


def test_a_public_key_or_certificate_is_fine() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----\n"
    assert problems({"dns/s2026.pub": pem}) == []


def test_certs_in_the_repo() -> None:
    found = problems(
        {
            "chasquid/certs/mail.example.com/fullchain.pem": "-----BEGIN CERTIFICATE-----\n",
            "chasquid/certs/mail.example.com/privkey.pem": b"-----BEGIN PRIVATE KEY-----\n"
            + SECRET,
        }
    )
    assert where(found) == [
        ("chasquid/certs/mail.example.com/fullchain.pem", None, "layout.certs-in-repo"),
        ("chasquid/certs/mail.example.com/privkey.pem", None, "layout.certs-in-repo"),
        ("chasquid/certs/mail.example.com/privkey.pem", None, "secret.private-key"),
    ]
    assert found[0].message == (
        "certificates do not live in the repo: gitops-mail copies them on the server"
    )
    assert found[0].hint == (
        "remove chasquid/certs/ and name the certificate's source under certificates: "
        "in gitops-mail.yaml"
    )


def test_a_file_where_a_domain_directory_should_be() -> None:
    found = only(problems({"chasquid/domains/example.org": "postmaster: x@y.z\n"}))
    assert found == Problem(
        "chasquid/domains/example.org",
        None,
        "layout.domain-not-dir",
        "is a file where chasquid expects a domain directory",
        "move it to chasquid/domains/example.org/ (users and aliases files go inside)",
    )


@pytest.mark.parametrize(
    "path",
    [
        "chasquid/README",
        "chasquid/domains/example.com/notes.txt",
        "chasquid/domains/example.com/old/aliases",
        "chasquid/hooks/lib/helper.sh",
        "chasquid/chasquid.conf.orig",
    ],
)
def test_unknown_files_inside_chasquid_are_warnings(path: str) -> None:
    found = only(problems({path: "x\n"}))
    assert found == Problem(
        path,
        None,
        "layout.unknown-file",
        "chasquid does not read this file; gitops-mail will not install it",
        "remove it or move it out of chasquid/",
        Severity.WARNING,
    )


def test_known_files_and_files_outside_chasquid_are_fine() -> None:
    assert (
        problems(
            {
                "README.md": "# mail\n",
                ".gitignore": "*.swp\n",
                "dns/example.com.zone": "@ IN MX 10 mail\n",
                "chasquid/domains/example.com/dkim_selector": "s2026\n",
                "chasquid/domains/example.com/.gitkeep": "",
            }
        )
        == []
    )


def _domain_dir(name: str) -> list[Problem]:
    """A repo whose only domain directory is ``name`` (the manifest lists it as written
    when the manifest accepts that spelling, else as example.com)."""
    return problems(
        {
            "chasquid/domains/example.com/aliases": None,
            f"chasquid/domains/{name}/aliases": ALIASES,
        }
    )


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("Example.COM", "example.com"),
        ("EXAMPLE.com", "example.com"),
    ],
)
def test_domain_directory_not_in_normal_form(name: str, normal: str) -> None:
    # chasquid serves it (normalize.Domain lower-cases it), and the manifest
    # entry example.com matches it: only the spelling is reported.
    found = only(_domain_dir(name))
    assert found == Problem(
        f"chasquid/domains/{name}",
        None,
        "layout.domain-not-normal",
        f"domain directory {name!r} is not in normal form (lower case, Unicode): "
        f"chasquid serves it as {normal!r}, and gitops-mail looks for that directory",
        f"rename the directory to chasquid/domains/{normal}",
    )


def test_punycode_directory_is_not_normal_unicode_is() -> None:
    manifest = MANIFEST.replace("example.com: {}", "bücher.de: {}")
    ace = problems(
        {
            "gitops-mail.yaml": manifest,
            "chasquid/domains/example.com/aliases": None,
            "chasquid/domains/xn--bcher-kva.de/aliases": ALIASES,
        }
    )
    assert [(p.path, p.code, p.message) for p in ace] == [
        (
            "chasquid/domains/xn--bcher-kva.de",
            "layout.domain-not-normal",
            "domain directory 'xn--bcher-kva.de' is not in normal form (lower case, Unicode): "
            "chasquid serves it as 'bücher.de', and gitops-mail looks for that directory",
        )
    ]
    unicode = problems(
        {
            "gitops-mail.yaml": manifest,
            "chasquid/domains/example.com/aliases": None,
            "chasquid/domains/bücher.de/aliases": ALIASES,
        }
    )
    assert unicode == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (
            "ex_ample.com",
            "has an invalid label 'ex_ample' (letters, digits and '-' only, 1-63 characters)",
        ),
        (
            "-example.com",
            "has an invalid label '-example' (letters, digits and '-' only, 1-63 characters)",
        ),
        ("localhost", "needs at least 2 labels (like mail.example.com)"),
        ("xn--zz.de", "is not a valid internationalised domain name: chasquid refuses to start"),
        ("example.com.", "ends with '.': chasquid would serve a domain no address uses"),
    ],
)
def test_domain_directory_names_that_are_not_domains(name: str, why: str) -> None:
    found = [p for p in _domain_dir(name) if p.code.startswith("layout.")]
    assert found == [
        Problem(
            f"chasquid/domains/{name}",
            None,
            "layout.domain-name",
            f"domain directory name {name!r} {why}",
            "name each directory after the domain it receives mail for",
        )
    ]
