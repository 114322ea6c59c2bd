"""The manifest: schema, cross-field rules, every problem at once with its line."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mail.core.manifest import validator as manifest_validator
from gitops_mail.core.manifest.model import (
    CertificateSource,
    Dkim,
    Dmarc,
    DomainSettings,
    MtaSts,
    Spf,
    TlsRpt,
    manifest_schema,
    parse_manifest,
)
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.yamldoc import fast

M = "gitops-mail.yaml"
MAILTO_HINT = 'write it like "mailto:reports@example.com"'
PUBLIC_HINT = "list the server's public addresses"

FULL = b"""\
version: 1
server:
  ipv4: [198.51.100.7]
  ipv6: ["2001:db8::7"]
chasquid:
  version: "1.14"
  hooks: true
  pipe_aliases: false
certificates:
  - name: mail.example.com
    acme_sh: /root/.acme.sh/mail.example.com_ecc
  - name: other
    certbot: /etc/letsencrypt/live/other
  - name: third
    files: {fullchain: /path/fullchain.pem, key: /path/privkey.pem}
domains:
  example.com:
    dkim: {selectors: [s2026, s2025], algorithm: ed25519}
    spf: {include: [_spf.google.com], ip4: [192.0.2.0/24], ip6: ["2001:db8::/32"], mx: false,
          a: true, all: "-all"}
    dmarc: {p: quarantine, sp: reject, pct: 50, rua: ["mailto:rua@example.com"],
            ruf: ["mailto:ruf@example.com"], fo: "1:d", adkim: s, aspf: r}
    mta_sts: {mode: enforce, max_age: 86400}
    tls_rpt: {rua: ["mailto:tls@example.com", "https://reports.example.com/tls"]}
  b\xc3\xbccher.example:
accept:
  - {code: manifest.ip-placeholder, at: gitops-mail.yaml, why: documentation addresses}
"""


def parse(text: str | bytes) -> tuple[Any, list[Problem]]:
    return parse_manifest(text.encode() if isinstance(text, str) else text)


def problems_of(text: str | bytes) -> list[tuple[int | None, str, str, str]]:
    manifest, problems = parse(text)
    assert manifest is None
    return [(p.line, p.code, p.message, p.hint) for p in problems]


def other_than_placeholders(text: str) -> list[tuple[int | None, str, str, str]]:
    """The problems of ``text`` but its documentation addresses (tested on their own)."""
    return [p for p in problems_of(text) if p[1] != "manifest.ip-placeholder"]


def test_a_full_manifest() -> None:
    manifest, problems = parse(FULL)
    assert {(p.code, p.severity) for p in problems} == {
        ("manifest.ip-placeholder", Severity.ACCEPTED)
    }
    assert manifest.version == 1
    assert (manifest.ipv4, manifest.ipv6) == (("198.51.100.7",), ("2001:db8::7",))
    assert manifest.chasquid_version == (1, 14)
    assert (manifest.allow_hooks, manifest.allow_pipe_aliases) == (True, False)
    assert (manifest.native_dkim, manifest.denied_users) == (True, True)
    assert manifest.certificates == (
        CertificateSource(
            "mail.example.com", "acme_sh", "/root/.acme.sh/mail.example.com_ecc", None, None, 10
        ),
        CertificateSource("other", "certbot", "/etc/letsencrypt/live/other", None, None, 12),
        CertificateSource("third", "files", None, "/path/fullchain.pem", "/path/privkey.pem", 14),
    )
    assert list(manifest.domains) == ["example.com", "bücher.example"]
    assert manifest.domains["example.com"] == DomainSettings(
        name="example.com",
        dkim=Dkim(("s2026", "s2025"), "ed25519"),
        spf=Spf(("_spf.google.com",), ("192.0.2.0/24",), ("2001:db8::/32",), False, True, "-all"),
        dmarc=Dmarc(
            "quarantine",
            "reject",
            50,
            ("mailto:rua@example.com",),
            ("mailto:ruf@example.com",),
            "1:d",
            "s",
            "r",
        ),
        mta_sts=MtaSts("enforce", 86400),
        tls_rpt=TlsRpt(("mailto:tls@example.com", "https://reports.example.com/tls")),
        line=17,
    )
    assert manifest.domains["bücher.example"] == DomainSettings(
        "bücher.example", None, None, None, None, None, 25
    )
    assert manifest.doc.line_of(("domains", "example.com", "dmarc", "pct")) == 21


def test_defaults() -> None:
    manifest, problems = parse(
        "version: 1\ndomains:\n  example.com:\n    dkim: {selectors: [s1]}\n"
        "    spf: {}\n    dmarc: {p: none}\n    mta_sts: {mode: testing}\n"
    )
    assert problems == []
    assert (manifest.ipv4, manifest.ipv6, manifest.certificates) == ((), (), ())
    assert manifest.chasquid_version == (1, 11)
    assert (manifest.allow_hooks, manifest.allow_pipe_aliases) == (False, False)
    assert (manifest.native_dkim, manifest.denied_users) == (False, False)
    domain = manifest.domains["example.com"]
    assert domain.dkim == Dkim(("s1",), "rsa-2048")
    assert domain.spf == Spf((), (), (), mx=True, a=False, all="~all")
    assert domain.dmarc == Dmarc("none")
    assert domain.mta_sts == MtaSts("testing", 604800)
    assert domain.tls_rpt is None


def test_the_only_required_key_is_version() -> None:
    manifest, problems = parse("version: 1\n")
    assert problems == []
    assert manifest.domains == {}


def test_chasquid_1_13_has_denied_users_but_not_native_dkim() -> None:
    manifest, _ = parse('version: 1\nchasquid: {version: "1.13"}\n')
    assert (manifest.denied_users, manifest.native_dkim) == (True, False)


def test_schema_defaults_match_the_dataclasses() -> None:
    definitions: Any = manifest_schema()["definitions"]
    assert definitions["dkim"]["properties"]["algorithm"]["default"] == Dkim(()).algorithm
    spf = Spf()
    for key in ("mx", "a", "all"):
        assert definitions["spf"]["properties"][key]["default"] == getattr(spf, key)
    assert definitions["mta_sts"]["properties"]["max_age"]["default"] == MtaSts("none").max_age
    chasquid: Any = manifest_schema()["properties"]
    assert chasquid["chasquid"]["properties"]["version"]["default"] == "1.11"


def test_the_schema_is_valid_and_strict_everywhere() -> None:
    schema = manifest_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    assert manifest_schema() is schema  # loaded once: its validator compiles once

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)


# The YAML and schema passes.


def test_bad_yaml_syntax_with_line_and_column() -> None:
    manifest, problems = parse("version: 1\ndomains:\n  example.com: {dkim: [s1}\n")
    assert manifest is None
    assert problems == [
        Problem(
            M,
            3,
            "yaml.syntax",
            "invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)",
            "close the list with ']'",
            Severity.ERROR,
            26,
        )
    ]


def test_tab_indentation() -> None:
    manifest, problems = parse("version: 1\ndomains:\n\texample.com: {}\n")
    assert manifest is None
    assert [(p.line, p.column, p.code, p.hint) for p in problems] == [
        (3, 1, "yaml.syntax", "indent with spaces: YAML does not allow tabs in indentation")
    ]


def test_duplicate_keys() -> None:
    text = (
        "version: 1\ndomains:\n  example.com:\n"
        "    dkim: {selectors: [a]}\n    dkim: {selectors: [b]}\n"
    )
    assert problems_of(text) == [
        (
            5,
            "yaml.duplicate-key",
            "At 'domains.example.com.dkim': duplicate key 'dkim' (lines 4 and 5)",
            "remove one of them: YAML would silently keep only the last",
        )
    ]


def test_unknown_key_hints_the_closest_known_one() -> None:
    text = "version: 1\ndomains:\n  example.com:\n    dkim: {selectors: [s1], algoritm: ed25519}\n"
    assert problems_of(text) == [
        (
            4,
            "schema.unknown-key",
            "At 'domains.example.com.dkim.algoritm': unknown key 'algoritm'",
            "did you mean 'algorithm'? known keys here: algorithm, selectors",
        )
    ]
    assert problems_of("version: 1\ndomain: {}\n") == [
        (
            2,
            "schema.unknown-key",
            "At 'domain': unknown key 'domain'",
            "did you mean 'domains'? known keys here: accept, certificates, chasquid, domains, "
            "hosts, server, version",
        )
    ]


def test_wrong_types() -> None:
    text = (
        "version: 1\nserver:\n  ipv4: 198.51.100.7\nchasquid:\n  version: 1.20\n"
        "certificates:\n  name: x\ndomains:\n  example.com:\n    dmarc: {p: none, fo: 1}\n"
    )
    quote = "put the value in quotes so YAML reads it as a string"
    assert problems_of(text) == [
        (
            3,
            "schema.type",
            "At 'server.ipv4': expected a list, found the string '198.51.100.7'",
            "write a list: [198.51.100.7]",
        ),
        (5, "schema.type", "At 'chasquid.version': expected a string, found the number 1.2", quote),
        (
            6,
            "schema.type",
            "At 'certificates': expected a list, found a mapping",
            "write a list: start each item with '- '",
        ),
        (
            10,
            "schema.type",
            "At 'domains.example.com.dmarc.fo': expected a string, found the number 1",
            quote,
        ),
    ]


def test_missing_version() -> None:
    assert problems_of("domains: {}\n") == [
        (
            1,
            "schema.required",
            "At the top level: missing required key 'version'",
            "add 'version: 1'",
        )
    ]


@pytest.mark.parametrize("version", ["2", "true", "'1'"])
def test_version_other_than_1(version: str) -> None:
    [(line, code, message, hint)] = problems_of(f"# a comment\nversion: {version}\n")
    assert (line, code, hint) == (
        2,
        "schema.const",
        "The manifest format version: this gitops-mail reads version 1.",
    )
    shown = {"2": "2", "true": "true", "'1'": "'1'"}[version]
    assert message == f"At 'version': must be 1, found {shown}"


def test_enum_and_range_and_pattern() -> None:
    text = (
        "version: 1\nchasquid: {version: '1.11.2'}\ndomains:\n  example.com:\n"
        "    dkim: {selectors: [s1], algorithm: rsa-1024}\n"
        "    dmarc: {p: quarantine, pct: 150, fo: '2'}\n"
        "    mta_sts: {mode: off}\n"
    )
    assert problems_of(text) == [
        (
            2,
            "schema.pattern",
            "At 'chasquid.version': '1.11.2' must be \"MAJOR.MINOR\", like \"1.11\"",
            "",
        ),
        (
            5,
            "schema.enum",
            "At 'domains.example.com.dkim.algorithm': 'rsa-1024' is not one of the allowed values",
            "did you mean 'rsa-3072'? allowed values: rsa-2048, rsa-3072, rsa-4096, ed25519",
        ),
        (
            6,
            "schema.pattern",
            "At 'domains.example.com.dmarc.fo': '2' must be 0, 1, d or s, or several joined by ':'",
            "",
        ),
        (
            6,
            "schema.maximum",
            "At 'domains.example.com.dmarc.pct': 150 is greater than the maximum 100",
            "",
        ),
        (
            7,
            "schema.enum",
            "At 'domains.example.com.mta_sts.mode': false is not one of the allowed values",
            "put the value in quotes; allowed values: enforce, testing, none",
        ),
    ]


def test_certificate_source_is_exactly_one_of_three() -> None:
    text = (
        "version: 1\ncertificates:\n  - name: a\n  - name: b\n    acme_sh: /x\n    certbot: /y\n"
        "  - name: c\n    files: {fullchain: /f}\n"
    )
    assert problems_of(text) == [
        (
            3,
            "schema.one-of",
            "At 'certificates[0]': needs exactly one of 'acme_sh', 'certbot' or 'files',"
            " found none",
            "add one of them",
        ),
        (
            6,
            "schema.one-of",
            "At 'certificates[1].certbot': has 'acme_sh' and 'certbot', but only one of 'acme_sh',"
            " 'certbot' or 'files' is allowed",
            "keep one and remove the others",
        ),
        (8, "schema.required", "At 'certificates[2].files': missing required key 'key'", ""),
    ]


@pytest.mark.parametrize(
    ("text", "code", "hint"),
    [
        ("", "yaml.empty", "start it with 'version: 1'"),
        ("# nothing yet\n", "yaml.empty", "start it with 'version: 1'"),
        (
            "- version: 1\n",
            "yaml.not-mapping",
            "start it with 'version: 1', then the settings as 'key: value' lines",
        ),
    ],
)
def test_empty_or_not_a_mapping(text: str, code: str, hint: str) -> None:
    manifest, [problem] = parse(text)
    assert manifest is None
    assert (problem.code, problem.hint) == (code, hint)


def test_not_utf8() -> None:
    manifest, [problem] = parse(b"version: 1\n# caf\xe9\n")
    assert manifest is None
    assert (problem.line, problem.column, problem.code) == (2, 6, "yaml.encoding")


# The cross-field rules.


def test_five_mistakes_give_five_problems() -> None:
    text = """\
version: 1
server:
  ipv4: [198.51.100.300]
chasquid:
  hooks: maybe
certificates:
  - name: mail/example
    acme_sh: /root/.acme.sh/mail_ecc
domains:
  example.com:
    dkim: {selectors: [s2026], algorithm: rsa-1024}
    dmarc: {p: quarantine, rua: ["rua@example.com"]}
"""
    manifest, problems = parse(text)
    assert manifest is None
    assert [(p.line, p.code) for p in problems] == [
        (3, "manifest.ip"),
        (5, "schema.type"),
        (7, "manifest.cert-name"),
        (11, "schema.enum"),
        (12, "manifest.dmarc-uri"),
    ]
    assert [p.format() for p in problems] == [
        "gitops-mail.yaml:3: error: At 'server.ipv4[0]': '198.51.100.300' is not an IPv4 address\n"
        "    hint: write it like 198.51.100.7",
        "gitops-mail.yaml:5: error: At 'chasquid.hooks': expected true or false, found the string"
        " 'maybe'\n    hint: write true or false, without quotes",
        "gitops-mail.yaml:7: error: At 'certificates[0].name': 'mail/example' cannot be a "
        "directory name under certs/\n    hint: use a plain name like mail.example.com, "
        "without '/' or '..'",
        "gitops-mail.yaml:11: error: At 'domains.example.com.dkim.algorithm': 'rsa-1024' is not "
        "one of the allowed values\n    hint: did you mean 'rsa-3072'? allowed values: rsa-2048,"
        " rsa-3072, rsa-4096, ed25519",
        "gitops-mail.yaml:12: error: At 'domains.example.com.dmarc.rua[0]': 'rua@example.com' "
        "is not a mailto: URI\n    hint: " + MAILTO_HINT,
    ]


def test_server_addresses() -> None:
    text = (
        "version: 1\nserver:\n"
        "  ipv4:\n    - 300.1.1.1\n    - 2001:db8::1\n    - 198.51.100.7\n    - 198.51.100.7\n"
        "  ipv6:\n    - fe80::1%eth0\n    - 2001:db8::1\n    - 2001:DB8::1\n    - 192.0.2.1\n"
    )
    assert other_than_placeholders(text) == [
        (
            4,
            "manifest.ip",
            "At 'server.ipv4[0]': '300.1.1.1' is not an IPv4 address",
            "write it like 198.51.100.7",
        ),
        (
            5,
            "manifest.ip-family",
            "At 'server.ipv4[1]': 2001:db8::1 is an IPv6 address",
            "move it to server.ipv6",
        ),
        (
            7,
            "manifest.ip-duplicate",
            "At 'server.ipv4[3]': '198.51.100.7' is listed twice (first on line 6)",
            "remove one of them",
        ),
        (
            9,
            "manifest.ip",
            "At 'server.ipv6[0]': fe80::1%eth0 has a zone index, which DNS records cannot hold",
            "remove the '%...' part",
        ),
        (
            11,
            "manifest.ip-duplicate",
            "At 'server.ipv6[2]': '2001:DB8::1' is listed twice (first on line 10)",
            "remove one of them",
        ),
        (
            12,
            "manifest.ip-family",
            "At 'server.ipv6[3]': 192.0.2.1 is an IPv4 address",
            "move it to server.ipv4",
        ),
    ]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.5", "private"),
        ("169.254.1.1", "link-local"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to check, nothing binds it
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::1", "loopback"),
        ("fd00::1", "private"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
    ],
)
def test_non_public_addresses_are_a_warning(address: str, kind: str) -> None:
    family = "ipv6" if ":" in address else "ipv4"
    manifest, problems = parse(f"version: 1\nserver:\n  {family}: ['{address}']\n")
    assert manifest is not None  # warnings do not refuse the manifest
    assert manifest.ipv4 + manifest.ipv6 == (address,)
    message = (
        f"At 'server.{family}[0]': {address} is not a public address ({kind}),"
        " but it goes into public DNS records"
    )
    assert problems == [
        Problem(M, 3, "manifest.ip-not-public", message, PUBLIC_HINT, Severity.WARNING)
    ]


def test_documentation_addresses_are_placeholders_each_warned_at_its_line() -> None:
    text = "version: 1\nserver:\n  ipv4: [192.0.2.1, 203.0.113.9]\n  ipv6: ['2001:db8::1']\n"
    problems = parse(text)[1]
    assert [(p.line, p.code, p.severity) for p in problems] == [
        (3, "manifest.ip-placeholder", Severity.WARNING),
        (3, "manifest.ip-placeholder", Severity.WARNING),
        (4, "manifest.ip-placeholder", Severity.WARNING),
    ]
    assert "192.0.2.1 is a documentation address (RFC 5737)" in problems[0].message
    assert "2001:db8::1 is a documentation address (RFC 3849)" in problems[2].message


def test_certificates() -> None:
    text = """\
version: 1
certificates:
  - name: ..
    certbot: etc/letsencrypt/live/x
  - name: ok
    files: {fullchain: relative.pem, key: ../key.pem}
  - name: ok
    acme_sh: /x
  - name: ''
    acme_sh: /x
  - name: "tab\\tname"
    acme_sh: /x
"""
    bad_name = "use a plain name like mail.example.com, without '/' or '..'"
    absolute = "write the full path on the server, starting with '/'"
    assert problems_of(text) == [
        (
            3,
            "manifest.cert-name",
            "At 'certificates[0].name': '..' cannot be a directory name under certs/",
            bad_name,
        ),
        (
            4,
            "manifest.cert-path",
            "At 'certificates[0].certbot': 'etc/letsencrypt/live/x' is not an absolute path",
            absolute,
        ),
        (
            6,
            "manifest.cert-path",
            "At 'certificates[1].files.fullchain': 'relative.pem' is not an absolute path",
            absolute,
        ),
        (
            6,
            "manifest.cert-path",
            "At 'certificates[1].files.key': '../key.pem' is not an absolute path",
            absolute,
        ),
        (
            7,
            "manifest.cert-duplicate",
            "At 'certificates[2].name': 'ok' is listed twice (first on line 5)",
            "remove one of them",
        ),
        (
            9,
            "manifest.cert-name",
            "At 'certificates[3].name': '' cannot be a directory name under certs/",
            bad_name,
        ),
        (
            11,
            "manifest.cert-name",
            "At 'certificates[4].name': 'tab\\tname' cannot be a directory name under certs/",
            bad_name,
        ),
    ]


def test_domain_names_are_valid_and_in_normal_form() -> None:
    text = (
        "version: 1\ndomains:\n  example:\n  'B\u00fcCHER.example':\n  example.org.:\n"
        "  '-x.example':\n  xn--bcher-kva.example:\n  bücher.example:\n"
    )
    assert problems_of(text) == [
        (
            3,
            "manifest.domain-name",
            "At 'domains.example': 'example' is not a valid domain name:"
            " it needs at least 2 labels (like mail.example.com)",
            "",
        ),
        (
            4,
            "manifest.domain-form",
            "At 'domains.BüCHER.example': the domain 'BüCHER.example'"
            " must be written in lower case",
            "write it as 'bücher.example'",
        ),
        (
            5,
            "manifest.domain-form",
            "At 'domains.example.org.': the domain 'example.org.' must not end with '.'",
            "write it as 'example.org'",
        ),
        (
            6,
            "manifest.domain-name",
            "At 'domains.-x.example': '-x.example' is not a valid domain"
            " name: it has an invalid label '-x' (letters, digits and '-' only, 1-63 characters)",
            "",
        ),
        (
            7,
            "manifest.domain-form",
            "At 'domains.xn--bcher-kva.example': the domain"
            " 'xn--bcher-kva.example' must be written in Unicode, as chasquid names its"
            " directories",
            "write it as 'bücher.example'",
        ),
    ]


def test_dkim_selectors() -> None:
    text = "version: 1\ndomains:\n  example.com:\n    dkim:\n      selectors: [s1, -bad, S1, a.b]\n"
    rule = "must be 1-63 letters, digits or '-', not starting or ending with '-'"
    one_label = "a selector is one DNS label, like s2026"
    where = "At 'domains.example.com.dkim.selectors"
    assert problems_of(text) == [
        (
            5,
            "manifest.dkim-selector",
            f"{where}[1]': '-bad' is not a valid selector: it {rule}",
            one_label,
        ),
        (
            5,
            "manifest.dkim-selector",
            f"{where}[3]': 'a.b' is not a valid selector: it {rule}",
            one_label,
        ),
        (
            5,
            "manifest.dkim-duplicate",
            f"{where}[2]': 'S1' is listed twice (first on line 5)",
            "remove one of them",
        ),
    ]


def test_spf() -> None:
    text = """\
version: 1
domains:
  example.com:
    spf:
      include:
        - _spf.google.com
        - "%{i}._spf.example.com"
        - spf
        - bad label.example
      ip4: [192.0.2.1, 192.0.2.0/24, 192.0.2.1/24, bogus, "2001:db8::/32"]
      ip6: ["2001:db8::/32", 192.0.2.1]
"""
    where = "At 'domains.example.com.spf"
    include = "name the domain whose SPF record to include, like _spf.google.com"
    assert other_than_placeholders(text) == [
        (
            8,
            "manifest.spf-include",
            f"{where}.include[2]': 'spf' is not a domain name: it needs at"
            " least 2 labels (like _spf.example.com)",
            include,
        ),
        (
            9,
            "manifest.spf-include",
            f"{where}.include[3]': 'bad label.example' is not a domain"
            " name: it has an invalid label 'bad label'",
            include,
        ),
        (
            10,
            "manifest.spf-ip",
            f"{where}.ip4[3]': 'bogus' is not an IPv4 address or network",
            "write it like 198.51.100.7 or 192.0.2.0/24",
        ),
        (
            10,
            "manifest.spf-ip",
            f"{where}.ip4[4]': 2001:db8::/32 is an IPv6 address",
            "move it to spf.ip6",
        ),
        (
            11,
            "manifest.spf-ip",
            f"{where}.ip6[1]': 192.0.2.1 is an IPv4 address",
            "move it to spf.ip4",
        ),
    ]


def test_report_uris() -> None:
    text = """\
version: 1
domains:
  example.com:
    dmarc:
      p: none
      rua:
        - "mailto:"
        - "mailto:@example.com"
        - "mailto:a@bad_domain"
        - "mailto:a@example.com,b@example.com"
        - "MAILTO:ok@example.com"
        - "mailto:big@example.com!10m"
      ruf: ["https://x.example/"]
    tls_rpt:
      rua: ["https://", "https://tls.example/report", "ftp://x", "mailto:tls@example.com"]
"""
    dmarc = "At 'domains.example.com.dmarc"
    tls = "At 'domains.example.com.tls_rpt.rua"
    assert problems_of(text) == [
        (
            7,
            "manifest.dmarc-uri",
            f"{dmarc}.rua[0]': 'mailto:' does not hold an email address",
            MAILTO_HINT,
        ),
        (
            8,
            "manifest.dmarc-uri",
            f"{dmarc}.rua[1]': 'mailto:@example.com' does not hold an email address",
            MAILTO_HINT,
        ),
        (
            9,
            "manifest.dmarc-uri",
            f"{dmarc}.rua[2]': 'mailto:a@bad_domain' has an invalid domain:"
            " it needs at least 2 labels (like mail.example.com)",
            MAILTO_HINT,
        ),
        (
            10,
            "manifest.dmarc-uri",
            f"{dmarc}.rua[3]': 'mailto:a@example.com,b@example.com' holds"
            " more than one address; list each one on its own",
            MAILTO_HINT,
        ),
        (
            13,
            "manifest.dmarc-uri",
            f"{dmarc}.ruf[0]': 'https://x.example/' is not a mailto: URI",
            MAILTO_HINT,
        ),
        (15, "manifest.tls-rpt-uri", f"{tls}[0]': 'https://' has no host", MAILTO_HINT),
        (
            15,
            "manifest.tls-rpt-uri",
            f"{tls}[2]': 'ftp://x' is neither a mailto: nor an https: URI",
            MAILTO_HINT,
        ),
    ]


def test_dmarc_reports_to_another_domain_are_fine() -> None:
    text = (
        "version: 1\ndomains:\n  example.com:\n    dmarc: {p: reject, rua: [mailto:d@other.net]}\n"
    )
    assert parse(text)[1] == []


def test_chasquid_older_than_1_11() -> None:
    assert problems_of('version: 1\nchasquid:\n  version: "1.9"\n') == [
        (
            3,
            "manifest.chasquid-version",
            "At 'chasquid.version': chasquid 1.9 is older than 1.11, the oldest version"
            " gitops-mail supports",
            "upgrade chasquid on the server",
        )
    ]


# Fuzzing: whatever the input, parse_manifest answers with problems, never raises.

TOKENS = [
    "version: 1\n",
    "version: ",
    "server:\n",
    "  ipv4: [",
    "198.51.100.7",
    "]\n",
    "domains:\n",
    "  example.com:\n",
    "    dkim: {selectors: [s1]}\n",
    "    dmarc: {p: none}\n",
    "- ",
    "  ",
    "\t",
    ": ",
    "&a ",
    "*a",
    "<<: *a\n",
    "? ",
    "!!binary ",
    "!x ",
    "'",
    '"',
    "{",
    "}",
    "[",
    "]",
    ",",
    "#",
    "\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "2024-13-45",
    "~",
    "yes",
    "1.11",
    "\\x00",
]
NAMES = st.sampled_from(
    [
        "example.com",
        "Example.com",
        "bücher.example",
        "xn--bcher-kva.example",
        "a..b",
        "s1",
        "x/y",
        "..",
        "198.51.100.7",
        "10.0.0.1",
        "2001:db8::7",
        "::1",
        "/abs/path",
        "rel/path",
        "mailto:a@example.com",
        "https://x.example",
        "mailto:",
        "_spf.example.com",
        "1.14",
    ]
) | st.text(max_size=12)
SCALARS = st.none() | st.booleans() | st.integers(-5, 2**70) | st.floats() | NAMES


def lists(of: st.SearchStrategy[Any] = NAMES) -> st.SearchStrategy[list[Any]]:
    return st.lists(of, max_size=3)


def maybe(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


DOMAIN = st.none() | maybe(
    dkim=maybe(selectors=lists(), algorithm=st.sampled_from(["rsa-2048", "ed25519", "x"])),
    spf=maybe(include=lists(), ip4=lists(), ip6=lists(), mx=st.booleans(), all=NAMES),
    dmarc=maybe(
        p=st.sampled_from(["none", "reject"]),
        pct=st.integers(-1, 101),
        rua=lists(),
        ruf=lists(),
        fo=st.sampled_from(["1", "0:d", "x"]),
        adkim=st.just("s"),
    ),
    mta_sts=maybe(mode=st.sampled_from(["enforce", "none"]), max_age=st.integers(-1, 10**8)),
    tls_rpt=maybe(rua=lists()),
)
MANIFESTS = st.fixed_dictionaries(
    {"version": st.just(1) | SCALARS},
    optional={
        "server": maybe(ipv4=lists(), ipv6=lists()),
        "chasquid": maybe(version=NAMES, hooks=st.booleans(), pipe_aliases=SCALARS),
        "certificates": lists(
            maybe(name=NAMES, acme_sh=NAMES, certbot=NAMES, files=maybe(fullchain=NAMES, key=NAMES))
        ),
        "domains": st.dictionaries(NAMES, DOMAIN, max_size=3),
        "extra": SCALARS,
    },
)
ANYTHING = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=12,
)


def check_answer(data: bytes) -> None:
    manifest, problems = parse_manifest(data)
    assert all(isinstance(p, Problem) for p in problems)
    assert (manifest is None) == any(p.is_error for p in problems)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    check_answer(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_fuzz_yaml_ish_text(text: str) -> None:
    check_answer(text.encode())


@settings(max_examples=200, deadline=None)
@given(MANIFESTS | ANYTHING, st.booleans())
def test_fuzz_manifest_shaped_documents(data: Any, flow: bool) -> None:
    text = yaml.safe_dump(data, allow_unicode=True, default_flow_style=flow)
    manifest, problems = parse_manifest(text.encode())
    assert (manifest is None) == any(p.is_error for p in problems)
    if manifest is not None:
        assert set(manifest.domains) == set(data.get("domains") or {})
        assert len(manifest.certificates) == len(data.get("certificates") or [])


SCHEMA_FILE = Path(manifest_validator.__file__).with_name("schema.json")
REGENERATE = "the schema changed: run scripts/gen-schema-validator"


def test_the_generated_validator_is_the_schema_of_today() -> None:
    schema = SCHEMA_FILE.read_bytes()
    assert hashlib.sha256(schema).hexdigest() == manifest_validator.SCHEMA_SHA256, REGENERATE
    if fastjsonschema.VERSION != manifest_validator.VERSION:
        # Another fastjsonschema writes other code for the same schema; the test below
        # still holds the generated validator to the schema's answers.
        return
    generated = Path(manifest_validator.__file__).read_text(encoding="utf-8")
    assert generated == fast.validator_source(schema, "schema.json"), REGENERATE


@settings(max_examples=300, deadline=None)
@given(MANIFESTS | ANYTHING)
def test_the_generated_validator_answers_as_the_compiled_one(data: Any) -> None:
    expected = fast.fast_valid(manifest_schema(), data)
    assert manifest_validator.is_valid(data) == expected
    if not expected:  # the answer that makes parse_manifest list the errors
        assert list(jsonschema.Draft7Validator(manifest_schema()).iter_errors(data))
