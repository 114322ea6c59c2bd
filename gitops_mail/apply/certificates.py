"""The certificates an apply installs: each source's, or the live one when the source's
is refused (``host.certs.guard``: never worse), and the record of refusals.

A refused certificate leaves the live one served, whatever else the revision
changes: a push of a config change is never blocked by a bad renewal while
the live certificate is good, and says so with a warning. With no live
certificate (a first install, or a new entry) a refusal is the revision's
error. A source path the host's policy refuses is always an error: that is
the revision asking for what the host does not allow, not a renewal.

Refusals are recorded in ``state_dir/certificates.json`` (0640 with the
state dir's group, like ``state.json``: the push hooks read it), one entry
per refused certificate, keyed by its name:

    {"mail.example.com": {"code": "cert.expired", "reason": "certificate ...",
      "hint": "...", "refused_at": "2026-12-08T04:00:00+00:00",
      "sources": {"/path/fullchain.cer": "<sha256>", ...},
      "live": {"fingerprint": "<sha256 hex>", "not_after": "...", "names": [...]}}}

An entry is written once per content of the source files (``sources``), and
removed when a certificate of that name is installed again. The source
files' digests also go to ``stilllive``'s record when the apply ends, so a
refused renewal is not tried again until one of its files changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops_mail import logs
from gitops_mail.core.certs import CertMaterial, CertNote
from gitops_mail.core.manifest.model import CertificateSource
from gitops_mail.core.state import State
from gitops_mail.host import localfs, statedir
from gitops_mail.host.certs import guard
from gitops_mail.host.certs.source import CertificateError, load_certificate
from gitops_mail.host.settings import HostSettings

CERTIFICATES = "certificates.json"

log = logs.get_logger("gitops_mail.certificates")


@dataclass(frozen=True)
class Chosen:
    """What an apply renders: ``certs`` by name, a note per entry, the files read."""

    certs: dict[str, CertMaterial]
    notes: tuple[CertNote, ...]
    sources: tuple[str, ...]

    @property
    def warnings(self) -> list[str]:
        """One line per refused certificate, for the apply's message."""
        said = "the live certificate is still served"
        return [f"warning: {n.refused}; {said}" for n in self.notes if n.refused]


def choose(
    settings: HostSettings, state: State, *, record: bool, now: datetime | None = None
) -> Chosen:
    """Each entry's certificate, or the live one in its place when it is refused;
    ``record``: write the refusals (not in a dry run). Raises ``CertificateError``
    when nothing can be served for an entry."""
    if state.manifest is None:
        return Chosen({}, (), ())
    now = now or datetime.now(UTC)
    certs: dict[str, CertMaterial] = {}
    notes: list[CertNote] = []
    sources: list[str] = []
    refused: dict[str, dict[str, Any]] = {}
    for source in state.manifest.certificates:
        new = _load(source, settings, now)
        live = guard.live_material(settings.chasquid.config_dir, source.name)
        sources += guard.source_files(source)
        problem: CertificateError | None
        if isinstance(new, CertificateError):
            problem = new
        else:
            problem = guard.refusal(source, new, live, now=now)
            if problem is None:
                certs[source.name] = new
                notes.append(_note(source.name, live, new))
                continue
        if live is None:
            raise problem  # nothing served yet: the revision cannot be applied
        certs[source.name] = live
        notes.append(_note(source.name, live, live, problem))
        refused[source.name] = _entry(problem, live, guard.source_files(source), now)
    if record:
        _record(settings.state_dir, refused)
    return Chosen(certs, tuple(notes), tuple(dict.fromkeys(sources)))


def _load(
    source: CertificateSource, settings: HostSettings, now: datetime
) -> CertMaterial | CertificateError:
    try:
        return load_certificate(source, policy=settings.policy, now=now)
    except CertificateError as exc:
        if exc.code.startswith("policy."):
            raise  # the revision asks for a path the host does not allow: its own error
        return exc


def _note(
    name: str, live: CertMaterial | None, new: CertMaterial, problem: CertificateError | None = None
) -> CertNote:
    return CertNote(
        name,
        old_fingerprint=live.fingerprint if live is not None else "",
        old_not_after=live.not_after if live is not None else None,
        new_fingerprint=new.fingerprint,
        new_not_after=new.not_after,
        refused=problem.message if problem is not None else "",
        code=problem.code if problem is not None else "",
    )


def _entry(
    problem: CertificateError, live: CertMaterial, files: tuple[str, ...], now: datetime
) -> dict[str, Any]:
    return {
        "code": problem.code,
        "reason": problem.message,
        "hint": problem.hint,
        "refused_at": now.isoformat(timespec="seconds"),
        "sources": {path: _digest(path) for path in files},
        "live": {
            "fingerprint": live.fingerprint,
            "not_after": live.not_after.isoformat(timespec="seconds"),
            "names": list(live.names),
        },
    }


def refusals(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The refused certificates by name (empty when none, or the record is unreadable)."""
    try:
        data = json.loads(localfs.read_own(state_dir / CERTIFICATES))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def _record(state_dir: Path, refused: dict[str, dict[str, Any]]) -> None:
    """Write the refusals if they differ from the record (a refusal of the same files
    keeps its first time, and is logged once)."""
    old = refusals(state_dir)
    new: dict[str, dict[str, Any]] = {}
    for name, entry in refused.items():
        known = old.get(name)
        if known is not None and known.get("sources") == entry["sources"]:
            new[name] = known
            continue
        new[name] = entry
        log.warning("certificate.refused", name=name, code=entry["code"], reason=entry["reason"])
    if new == old:
        return
    statedir.prepare(state_dir)
    data = (json.dumps(new, indent=1, sort_keys=True) + "\n").encode()
    statedir.write_shared(state_dir / CERTIFICATES, data)


def _digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None
