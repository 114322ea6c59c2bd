"""Cross-field rules of the manifest: what its JSON Schema cannot say.

Addresses valid and of the right family (and public, since they go into DNS:
documentation addresses, RFC 5737 and RFC 3849, are placeholders left in),
certificate names usable as directory names and unique, certificate paths
absolute, domain names valid and in chasquid's normal form, DKIM selectors
valid and unique, report URIs well formed, a supported chasquid version.

The rules read the raw data defensively (a value of the wrong type is the
schema's finding, skipped here), so one run reports schema errors and rule
errors together.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from gitops_mail.core.domainname import label_error, name_error, normal_domain
from gitops_mail.core.manifest.accept import acceptances, accepted
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.yamldoc.document import KeyPath, YamlDoc, problem_at

MIN_CHASQUID = (1, 11)
_VERSION = re.compile(r"[0-9]{1,6}\.[0-9]{1,6}")
_DNS_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_REPORT_SIZE = re.compile(r"![0-9]+[kmgt]?$")
_EXAMPLES = {4: "198.51.100.7", 6: "2001:db8::7"}
_NETWORK_EXAMPLES = {4: "192.0.2.0/24", 6: "2001:db8::/32"}
_DOCUMENTATION = {  # RFC 5737 (IPv4) and RFC 3849 (IPv6): for examples, never routed
    net: "RFC 3849" if ":" in net else "RFC 5737"
    for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
}
_PLACEHOLDER_HINT = "replace it with the server's own public address"
_MAILTO_HINT = 'write it like "mailto:reports@example.com"'

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class _Rules:
    doc: YamlDoc
    file: str

    def error(self, path: KeyPath, code: str, message: str, hint: str = "") -> Problem:
        return problem_at(self.doc, self.file, path, code, message, hint=hint)

    def warning(self, path: KeyPath, code: str, message: str, hint: str = "") -> Problem:
        return problem_at(
            self.doc, self.file, path, code, message, hint=hint, severity=Severity.WARNING
        )

    def repeats(self, items: list[tuple[KeyPath, object, str]], code: str) -> Iterator[Problem]:
        """``items`` are ``(path, identity, text)``; report each repeated identity."""
        first: dict[object, KeyPath] = {}
        for path, identity, text in items:
            if identity not in first:
                first[identity] = path
                continue
            message = (
                f"{text!r} is listed twice (first on line {self.doc.line_of(first[identity])})"
            )
            yield self.error(path, code, message, "remove one of them")


def rule_problems(doc: YamlDoc, file: str) -> list[Problem]:
    rules = _Rules(doc, file)
    data = doc.data
    problems = [*_chasquid(rules, data), *_server(rules, data), *_certificates(rules, data)]
    for name, settings in _mapping(_get(data, "domains")).items():
        problems += _domain(rules, name, settings)
    return accepted(problems, acceptances(doc, file))  # stale ones: checks.validate


def _get(data: object, *keys: str) -> object:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _mapping(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _strings(value: object) -> list[tuple[int, str]]:
    items = value if isinstance(value, list) else []
    return [(index, item) for index, item in enumerate(items) if isinstance(item, str)]


def _chasquid(rules: _Rules, data: object) -> Iterator[Problem]:
    version = _get(data, "chasquid", "version")
    if not (isinstance(version, str) and _VERSION.fullmatch(version)):
        return
    major, minor = version.split(".")
    if (int(major), int(minor)) < MIN_CHASQUID:
        message = f"chasquid {version} is older than 1.11, the oldest version gitops-mail supports"
        hint = "upgrade chasquid on the server"
        yield rules.error(("chasquid", "version"), "manifest.chasquid-version", message, hint)


def _server(rules: _Rules, data: object) -> Iterator[Problem]:
    for version in (4, 6):
        valid: list[tuple[KeyPath, object, str]] = []
        for index, text in _strings(_get(data, "server", f"ipv{version}")):
            path = ("server", f"ipv{version}", index)
            problems, address = _address(rules, path, text, version)
            yield from problems
            if address is not None:
                valid.append((path, address, text))
        yield from rules.repeats(valid, "manifest.ip-duplicate")


def _address(
    rules: _Rules, path: KeyPath, text: str, version: int
) -> tuple[list[Problem], Address | None]:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        message = f"{text!r} is not an IPv{version} address"
        hint = f"write it like {_EXAMPLES[version]}"
        return [rules.error(path, "manifest.ip", message, hint)], None
    if address.version != version:
        message = f"{text} is an IPv{address.version} address"
        hint = f"move it to server.ipv{address.version}"
        return [rules.error(path, "manifest.ip-family", message, hint)], None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        message = f"{text} has a zone index, which DNS records cannot hold"
        return [rules.error(path, "manifest.ip", message, "remove the '%...' part")], None
    documentation = _documentation(address)
    if documentation is not None:
        record = "A" if version == 4 else "AAAA"
        message = (
            f"{text} is a documentation address ({documentation}), an example left in: "
            f"it would be published in the {record} and SPF records of every domain"
        )
        return [rules.warning(path, "manifest.ip-placeholder", message, _PLACEHOLDER_HINT)], address
    kind = _not_public(address)
    if kind is None:
        return [], address
    message = f"{text} is not a public address ({kind}), but it goes into public DNS records"
    hint = "list the server's public addresses"
    return [rules.warning(path, "manifest.ip-not-public", message, hint)], address


def _documentation(address: Address | ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
    """The RFC that reserves ``address`` (or a network) for documentation, if one does."""
    for net, rfc in _DOCUMENTATION.items():
        network = ipaddress.ip_network(net)
        if network.version != address.version:
            continue
        if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            if address in network:
                return rfc
        elif address.subnet_of(network):  # type: ignore[arg-type]
            return rfc
    return None


def _not_public(address: Address) -> str | None:
    """What kind of non-public address this is; None for public ones (documentation
    addresses are told apart before: ``_documentation``)."""
    kinds = {
        "loopback": address.is_loopback,
        "link-local": address.is_link_local,
        "multicast": address.is_multicast,
        "unspecified": address.is_unspecified,
        "reserved": address.is_reserved,
        "private": address.is_private,
        "non-public": not address.is_global,
    }
    return next((kind for kind, found in kinds.items() if found), None)


def _certificates(rules: _Rules, data: object) -> Iterator[Problem]:
    certificates = _get(data, "certificates")
    named: list[tuple[KeyPath, object, str]] = []
    for index, raw in enumerate(certificates if isinstance(certificates, list) else []):
        name = _get(raw, "name")
        if isinstance(name, str) and _bad_file_name(name):
            message = f"{name!r} cannot be a directory name under certs/"
            hint = "use a plain name like mail.example.com, without '/' or '..'"
            yield rules.error(("certificates", index, "name"), "manifest.cert-name", message, hint)
        elif isinstance(name, str):
            named.append((("certificates", index, "name"), name, name))
        yield from _certificate_paths(rules, ("certificates", index), raw)
    yield from rules.repeats(named, "manifest.cert-duplicate")


def _bad_file_name(name: str) -> bool:
    return (
        not name.isprintable() or any(bad in name for bad in ("/", "\\", "..")) or name in ("", ".")
    )


def _certificate_paths(rules: _Rules, path: KeyPath, raw: object) -> Iterator[Problem]:
    places = [(key,) for key in ("acme_sh", "certbot")] + [("files", "fullchain"), ("files", "key")]
    for place in places:
        value = _get(raw, *place)
        if isinstance(value, str) and not value.startswith("/"):
            message = f"{value!r} is not an absolute path"
            hint = "write the full path on the server, starting with '/'"
            yield rules.error((*path, *place), "manifest.cert-path", message, hint)


def _domain(rules: _Rules, name: str, settings: object) -> Iterator[Problem]:
    path: KeyPath = ("domains", name)
    reason = name_error(name)
    if reason:
        yield rules.error(
            path, "manifest.domain-name", f"{name!r} is not a valid domain name: it {reason}"
        )
    elif (normal := normal_domain(name)) != name:
        yield rules.error(
            path, "manifest.domain-form", _form_message(name), f"write it as '{normal}'"
        )
    yield from _dkim(rules, (*path, "dkim"), _get(settings, "dkim"))
    yield from _spf(rules, (*path, "spf"), _get(settings, "spf"))
    for key in ("rua", "ruf"):
        for index, uri in _strings(_get(settings, "dmarc", key)):
            reason = _mailto_error(uri)
            if reason:
                where = (*path, "dmarc", key, index)
                yield rules.error(where, "manifest.dmarc-uri", f"{uri!r} {reason}", _MAILTO_HINT)
    for index, uri in _strings(_get(settings, "tls_rpt", "rua")):
        reason = _report_uri_error(uri)
        if reason:
            where = (*path, "tls_rpt", "rua", index)
            yield rules.error(where, "manifest.tls-rpt-uri", f"{uri!r} {reason}", _MAILTO_HINT)


def _form_message(name: str) -> str:
    if name != name.lower():
        return f"the domain {name!r} must be written in lower case"
    if name.endswith("."):
        return f"the domain {name!r} must not end with '.'"
    return f"the domain {name!r} must be written in Unicode, as chasquid names its directories"


def _dkim(rules: _Rules, path: KeyPath, dkim: object) -> Iterator[Problem]:
    valid: list[tuple[KeyPath, object, str]] = []
    for index, selector in _strings(_get(dkim, "selectors")):
        where = (*path, "selectors", index)
        reason = label_error(selector)
        if reason:
            message = f"{selector!r} is not a valid selector: it {reason}"
            yield rules.error(
                where, "manifest.dkim-selector", message, "a selector is one DNS label, like s2026"
            )
        else:
            valid.append((where, selector.lower(), selector))
    yield from rules.repeats(valid, "manifest.dkim-duplicate")


def _spf(rules: _Rules, path: KeyPath, spf: object) -> Iterator[Problem]:
    for version in (4, 6):
        for index, text in _strings(_get(spf, f"ip{version}")):
            problem = _network_problem(rules, (*path, f"ip{version}", index), text, version)
            if problem is not None:
                yield problem
    for index, name in _strings(_get(spf, "include")):
        reason = _dns_name_error(name)
        if reason:
            message = f"{name!r} is not a domain name: it {reason}"
            hint = "name the domain whose SPF record to include, like _spf.google.com"
            yield rules.error((*path, "include", index), "manifest.spf-include", message, hint)


def _network_problem(rules: _Rules, path: KeyPath, text: str, version: int) -> Problem | None:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        message = f"{text!r} is not an IPv{version} address or network"
        hint = f"write it like {_EXAMPLES[version]} or {_NETWORK_EXAMPLES[version]}"
        return rules.error(path, "manifest.spf-ip", message, hint)
    if network.version == version:
        documentation = _documentation(network)
        if documentation is None:
            return None
        message = (
            f"{text} is a documentation address ({documentation}), an example left in: "
            "the SPF record would allow it to send this domain's mail"
        )
        hint = "replace it with an address that really sends this domain's mail"
        return rules.warning(path, "manifest.ip-placeholder", message, hint)
    message = f"{text} is an IPv{network.version} address"
    return rules.error(path, "manifest.spf-ip", message, f"move it to spf.ip{network.version}")


def _dns_name_error(name: str) -> str | None:
    """Why ``name`` cannot be an SPF include target (underscores and macros allowed)."""
    if "%{" in name:
        return None
    labels = name.removesuffix(".").split(".")
    if len(name) > 253:
        return "is longer than 253 characters"
    if len(labels) < 2:
        return "needs at least 2 labels (like _spf.example.com)"
    bad = next((label for label in labels if not _DNS_LABEL.fullmatch(label)), None)
    return None if bad is None else f"has an invalid label {bad!r}"


def _mailto_error(uri: str) -> str | None:
    if uri[:7].lower() != "mailto:":
        return "is not a mailto: URI"
    address = _REPORT_SIZE.sub("", uri[7:])
    if "," in address:
        return "holds more than one address; list each one on its own"
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        return "does not hold an email address"
    reason = name_error(domain)
    return None if reason is None else f"has an invalid domain: it {reason}"


def _report_uri_error(uri: str) -> str | None:
    if uri[:8].lower() == "https://":
        return None if len(uri) > 8 else "has no host"
    if uri[:7].lower() != "mailto:":
        return "is neither a mailto: nor an https: URI"
    return _mailto_error(uri)
