"""The manifest, ``gitops-mail.yaml``: what chasquid's own files do not say.

``parse_manifest`` reads it in three passes and reports every problem at once:
YAML (syntax, duplicate keys), the JSON Schema in ``schema.json``
(shipped with the package; editors can use it through yaml-language-server),
then the cross-field rules in ``rules``. A manifest comes back only
when no pass found an error; warnings come back beside it.

The schema's yes/no comes from ``validator``, generated from the
schema ahead of time (``scripts/gen-schema-validator``); only an invalid
manifest loads the schema itself, to list every error. The result types are
named tuples: quicker than dataclasses to define at every start.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, NamedTuple, cast

from gitops_mail.core.manifest import validator as manifest_validator
from gitops_mail.core.manifest.hosts import NO_HOSTS, Hosts, host_problems, parse_hosts
from gitops_mail.core.manifest.rules import rule_problems
from gitops_mail.core.problems import Problem, has_errors
from gitops_mail.core.yamldoc.document import YamlDoc, load_yaml

MANIFEST_PATH = "gitops-mail.yaml"
SCHEMA_FILE = "schema.json"
DEFAULT_CHASQUID = "1.11"
DENIED_USERS_SINCE = (1, 13)
NATIVE_DKIM_SINCE = (1, 14)
_HINTS = {
    "yaml.empty": "start it with 'version: 1'",
    "yaml.not-mapping": "start it with 'version: 1', then the settings as 'key: value' lines",
    "yaml.file-size": "a manifest needs a few kB: users and aliases belong in chasquid's files "
    "(chasquid/domains/<domain>/users, aliases)",
}


class CertificateSource(NamedTuple):
    """Where the server finds a certificate that becomes chasquid ``certs/<name>/``.

    ``kind`` is ``acme_sh`` or ``certbot`` (``directory`` set) or ``files``
    (``fullchain`` and ``key`` set). All paths are on the server.
    """

    name: str
    kind: str
    directory: str | None
    fullchain: str | None
    key: str | None
    line: int
    allow_name_mismatch: bool = False  # a test server: the hostname need not be covered


class Dkim(NamedTuple):
    selectors: tuple[str, ...]
    algorithm: str = "rsa-2048"


class Spf(NamedTuple):
    include: tuple[str, ...] = ()
    ip4: tuple[str, ...] = ()
    ip6: tuple[str, ...] = ()
    mx: bool = True
    a: bool = False
    all: str = "~all"


class Dmarc(NamedTuple):
    p: str
    sp: str | None = None
    pct: int | None = None
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: str | None = None
    adkim: str | None = None
    aspf: str | None = None


class MtaSts(NamedTuple):
    mode: str
    max_age: int = 604800


class TlsRpt(NamedTuple):
    rua: tuple[str, ...]


class DomainSettings(NamedTuple):
    name: str
    dkim: Dkim | None
    spf: Spf | None
    dmarc: Dmarc | None
    mta_sts: MtaSts | None
    tls_rpt: TlsRpt | None
    line: int


class Manifest(NamedTuple):
    version: int
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    chasquid_version: tuple[int, int]
    allow_hooks: bool
    allow_pipe_aliases: bool
    certificates: tuple[CertificateSource, ...]
    domains: Mapping[str, DomainSettings]
    doc: YamlDoc
    hosts: Hosts = NO_HOSTS  # several servers from one repo (``hosts``); empty: one server
    host: str | None = None  # the one of ``hosts`` this manifest is viewed for (``hostview``)

    @property
    def native_dkim(self) -> bool:
        """chasquid signs with ``domains/<d>/dkim:<selector>.pem`` itself (1.14+)."""
        return self.chasquid_version >= NATIVE_DKIM_SINCE

    @property
    def denied_users(self) -> bool:
        """chasquid understands receive-only users (``denied {}``, 1.13+)."""
        return self.chasquid_version >= DENIED_USERS_SINCE


@functools.cache
def manifest_schema() -> Mapping[str, object]:
    """The manifest's JSON Schema (one shared object, so its validator compiles once)."""
    with open(os.path.join(os.path.dirname(__file__), SCHEMA_FILE), encoding="utf-8") as file:
        return cast(Mapping[str, object], json.load(file))


def parse_manifest(data: bytes, path: str = MANIFEST_PATH) -> tuple[Manifest | None, list[Problem]]:
    """Read and check a manifest; ``(None, problems)`` if any problem is an error."""
    doc, found = load_yaml(data, path)
    problems = [replace(p, hint=_HINTS.get(p.code, p.hint)) for p in found]
    if doc is None:
        return None, problems
    problems += _schema_problems(doc, path)
    problems += rule_problems(doc, path) + host_problems(doc, path)
    problems = sorted(dict.fromkeys(problems), key=lambda p: (p.line or 0, p.column or 0))
    if has_errors(problems):
        return None, problems
    return _manifest(doc), problems


def _schema_problems(doc: YamlDoc, path: str) -> list[Problem]:
    if manifest_validator.is_valid(doc.data):
        return []
    from gitops_mail.core.yamldoc import (  # noqa: PLC0415 - only an invalid manifest needs it
        schema as yamlschema,
    )

    return yamlschema.all_problems(doc, manifest_schema(), path)


def _manifest(doc: YamlDoc) -> Manifest:
    data = cast(dict[str, Any], doc.data)
    server = data.get("server") or {}
    chasquid = data.get("chasquid") or {}
    major, minor = str(chasquid.get("version", DEFAULT_CHASQUID)).split(".")
    certificates = data.get("certificates") or []
    domains = data.get("domains") or {}
    return Manifest(
        version=int(data["version"]),
        ipv4=tuple(server.get("ipv4", ())),
        ipv6=tuple(server.get("ipv6", ())),
        chasquid_version=(int(major), int(minor)),
        allow_hooks=bool(chasquid.get("hooks", False)),
        allow_pipe_aliases=bool(chasquid.get("pipe_aliases", False)),
        certificates=tuple(_certificate(doc, i, raw) for i, raw in enumerate(certificates)),
        domains=MappingProxyType({n: _domain(doc, n, raw or {}) for n, raw in domains.items()}),
        doc=doc,
        hosts=parse_hosts(doc),
    )


def _certificate(doc: YamlDoc, index: int, raw: dict[str, Any]) -> CertificateSource:
    kind = next(k for k in ("acme_sh", "certbot", "files") if k in raw)
    files = raw.get("files") or {}
    return CertificateSource(
        name=raw["name"],
        kind=kind,
        directory=None if kind == "files" else raw[kind],
        fullchain=files.get("fullchain"),
        key=files.get("key"),
        line=doc.line_of(("certificates", index)) or 1,
        allow_name_mismatch=raw.get("allow_name_mismatch", False),
    )


def _domain(doc: YamlDoc, name: str, raw: dict[str, Any]) -> DomainSettings:
    dkim, spf, dmarc = raw.get("dkim"), raw.get("spf"), raw.get("dmarc")
    mta_sts, tls_rpt = raw.get("mta_sts"), raw.get("tls_rpt")
    return DomainSettings(
        name=name,
        dkim=None if dkim is None else Dkim(tuple(dkim["selectors"]), **_pick(dkim, "algorithm")),
        spf=None if spf is None else Spf(**_pick(spf, "mx", "a", "all"), **_lists(spf)),
        dmarc=None if dmarc is None else _dmarc(dmarc),
        mta_sts=None if mta_sts is None else MtaSts(**_pick(mta_sts, "mode", "max_age")),
        tls_rpt=None if tls_rpt is None else TlsRpt(tuple(tls_rpt["rua"])),
        line=doc.line_of(("domains", name)) or 1,
    )


def _dmarc(raw: dict[str, Any]) -> Dmarc:
    return Dmarc(**_pick(raw, "p", "sp", "pct", "fo", "adkim", "aspf"), **_lists(raw))


def _pick(raw: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The scalar settings present in ``raw`` (absent ones take the dataclass default)."""
    picked = {key: raw[key] for key in keys if key in raw}
    for key in ("pct", "max_age"):
        if key in picked:
            picked[key] = int(picked[key])
    return picked


def _lists(raw: dict[str, Any]) -> dict[str, Any]:
    keys = ("include", "ip4", "ip6", "rua", "ruf")
    return {key: tuple(raw[key]) for key in keys if key in raw}
