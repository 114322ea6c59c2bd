"""The text of the records (pure): SPF, DMARC, MTA-STS policy, TLS-RPT and TXT strings.

``zone`` lays them out in ``dns/<domain>.zone``; the checks and the plan read
the same values, so what is validated is byte for byte what is published.
"""

from __future__ import annotations

from gitops_mail.core.domainname import to_ascii
from gitops_mail.core.manifest.model import Dmarc, MtaSts, Spf

TXT_CHUNK = 255


def spf_value(spf: Spf) -> str:
    terms = ["v=spf1"]
    terms += ["mx"] if spf.mx else []
    terms += ["a"] if spf.a else []
    terms += [f"ip4:{net}" for net in spf.ip4] + [f"ip6:{net}" for net in spf.ip6]
    terms += [f"include:{name}" for name in spf.include]
    return " ".join([*terms, spf.all])


def dmarc_value(dmarc: Dmarc) -> str:
    tags = [("v", "DMARC1"), ("p", dmarc.p)]
    optional = [("sp", dmarc.sp), ("pct", None if dmarc.pct is None else str(dmarc.pct))]
    optional += [("rua", report_uris(dmarc.rua)), ("ruf", report_uris(dmarc.ruf)), ("fo", dmarc.fo)]
    optional += [("adkim", dmarc.adkim), ("aspf", dmarc.aspf)]
    tags += [(key, value) for key, value in optional if value]
    return "; ".join(f"{key}={value}" for key, value in tags)


def mta_sts_policy(mta_sts: MtaSts, *hostnames: str) -> str:
    """The policy file's text (RFC 8461 section 3.2) with ``hostnames`` as the MX hosts."""
    lines = ["version: STSv1", f"mode: {mta_sts.mode}", *(f"mx: {name}" for name in hostnames)]
    return "\n".join([*lines, f"max_age: {mta_sts.max_age}"]) + "\n"


def txt_strings(value: bytes) -> str:
    """``value`` as quoted character-strings of at most 255 bytes each."""
    chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [b""]
    return " ".join(f'"{_escape(chunk)}"' for chunk in chunks)


def _escape(chunk: bytes) -> str:
    return "".join(_escape_byte(byte) for byte in chunk)


def _escape_byte(byte: int) -> str:
    if byte in b'"\\':
        return "\\" + chr(byte)
    if 0x20 <= byte < 0x7F:
        return chr(byte)
    return f"\\{byte:03d}"


def report_uris(uris: tuple[str, ...]) -> str:
    return ",".join(_ascii_uri(uri) for uri in uris)


def _ascii_uri(uri: str) -> str:
    """A ``mailto:`` URI with its domain as an A-label; other URIs unchanged."""
    if uri[:7].lower() != "mailto:" or "@" not in uri:
        return uri
    local, _, domain = uri.rpartition("@")
    name, bang, size = domain.partition("!")
    return f"{local}@{to_ascii(name) or name}{bang}{size}"
