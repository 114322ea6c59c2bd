"""DKIM selectors: the manifest against what DNS publishes (the committed zone).

The manifest's selectors are the only ones that sign, so a hand-made
``domains/<d>/dkim_selector`` that names another one is an error (it is not
installed, and it misleads). A selector DNS still publishes (``dns/<d>.zone``
of the same revision, committed back by the daemon) may leave the manifest
with a warning, as the second step of a rotation; leaving none of the
published ones is an error, since mail would be signed only with keys DNS
does not have yet (or not at all). An ed25519 key alone is a warning: many
verifiers lack ed25519 and see such mail as unsigned. A published key keeps
its type: ``algorithm`` applies to selectors whose keys are yet to be made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from gitops_mail.core import problems as P
from gitops_mail.core.dns.dkim import PublicKey, key_type
from gitops_mail.core.dns.zone import committed_keys, zone_path
from gitops_mail.core.manifest.model import DomainSettings, Manifest
from gitops_mail.core.snapshot import MANIFEST
from gitops_mail.core.state import DOMAINS_DIR, State

SELECTOR_FILE = "dkim_selector"
Published = Mapping[str, PublicKey]  # selector (lower case) -> key


def check_dkim(state: State, manifest: Manifest) -> list[P.Problem]:
    keys = committed_keys(state)
    found: list[P.Problem] = list(_selector_files(state, manifest))
    for name, settings in sorted(manifest.domains.items()):
        published = {s: k for (d, s), k in keys.items() if d == name}
        found += _rotation(manifest, settings, published)
        found += _algorithm(manifest, settings, published)
    return found


def _selectors(settings: DomainSettings) -> list[str]:
    return [s.lower() for s in settings.dkim.selectors] if settings.dkim is not None else []


def _selector_files(state: State, manifest: Manifest) -> Iterator[P.Problem]:
    for name in sorted(state.domains):
        path = f"{DOMAINS_DIR}/{name}/{SELECTOR_FILE}"
        data = state.snapshot.data(path)
        if data is None:
            continue
        said = data.decode("utf-8", "replace").strip()
        settings = manifest.domains.get(name)
        wanted = _selectors(settings) if settings is not None else []
        if said.lower() in wanted:
            yield P.warning(
                path,
                1,
                "dkim.selector-file",
                "gitops-mail does not install this file: the manifest's dkim.selectors decide",
                "remove it",
            )
            continue
        if not wanted:
            yield P.warning(
                path,
                1,
                "dkim.selector-file",
                f"gitops-mail does not install this file, and the manifest has no DKIM for "
                f"{name}: its mail goes out unsigned",
                f"remove it and add `dkim: {{selectors: [{said}]}}` to the domain in "
                "gitops-mail.yaml (`gitops-mail dkim import` brings the server's key along)",
            )
            continue
        shown = ", ".join(wanted)
        yield P.error(
            path,
            1,
            "dkim.selector-mismatch",
            f"says {said!r}, but the manifest's dkim.selectors for {name} are {shown}: mail "
            "is signed with the manifest's selectors only, and DNS publishes those",
            "remove this file; list the selectors under domains.<domain>.dkim in gitops-mail.yaml",
        )


def _rotation(
    manifest: Manifest, settings: DomainSettings, published: Published
) -> Iterator[P.Problem]:
    wanted = _selectors(settings)
    removed = sorted(s for s in published if s not in wanted)
    if not removed:
        return
    line = manifest.doc.line_of(("domains", settings.name, "dkim")) or settings.line
    zone = zone_path(settings.name)
    if not any(s in published for s in wanted):
        what = "signed only with keys DNS does not publish yet" if wanted else "unsigned"
        yield P.error(
            MANIFEST,
            line,
            "dkim.last-selector-removed",
            f"{settings.name}: {', '.join(removed)} is the last selector {zone} publishes, and "
            f"the manifest no longer has it: mail would go out {what}, and fail DKIM",
            "rotate in two steps: `selectors: [new, old]` until the daemon has committed the "
            f"new record and it is in DNS, then drop old; to stop signing on purpose, delete the "
            f"DKIM records from {zone} in the same commit",
        )
        return
    for selector in removed:
        yield P.warning(
            MANIFEST,
            line,
            "dkim.selector-removed",
            f"{settings.name}: selector {selector} no longer signs, but {zone} still publishes "
            f"it; the daemon drops it from {zone}",
            f"keep {selector}._domainkey.{settings.name} in DNS a few more days (mail already "
            "sent is checked against it), then delete it",
        )


def _algorithm(
    manifest: Manifest, settings: DomainSettings, published: Published
) -> Iterator[P.Problem]:
    if settings.dkim is None:
        return
    algorithm, wanted = settings.dkim.algorithm, _selectors(settings)
    line = manifest.doc.line_of(("domains", settings.name, "dkim")) or settings.line
    kinds = {s: published[s].k if s in published else key_type(algorithm) for s in wanted}
    if all(kind == "ed25519" for kind in kinds.values()):
        yield P.warning(
            MANIFEST,
            line,
            "dkim.ed25519-only",
            f"{settings.name} is signed with ed25519 keys only: many receivers cannot verify "
            "ed25519 and treat its mail as unsigned",
            "sign with an RSA selector too: keep (or add, before switching the algorithm) "
            "one whose key is RSA",
        )
    if wanted and all(kind != key_type(algorithm) for kind in kinds.values()):
        shown = ", ".join(f"{s} ({kinds[s]})" for s in wanted)
        yield P.warning(
            MANIFEST,
            line,
            "dkim.algorithm-kept",
            f"{settings.name}: no selector has an {algorithm} key: {shown} keep their keys, "
            f"and algorithm {algorithm} applies to new selectors only",
            "to change the algorithm, rotate to a new selector",
        )
