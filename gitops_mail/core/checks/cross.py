"""Checks across files: the manifest against the chasquid tree.

Hooks are allowed only when the manifest says so (and the host's policy, judged
in ``policy``, allows them), every domain is known to both, the hostname has a
certificate, and every domain has a postmaster.
"""

from __future__ import annotations

from collections.abc import Iterator

from gitops_mail.core import domainname
from gitops_mail.core import problems as P
from gitops_mail.core.formats.addresses import normalize_domain
from gitops_mail.core.manifest.model import Manifest
from gitops_mail.core.snapshot import CHASQUID_DIR, MANIFEST
from gitops_mail.core.state import CONF_PATH, State

HOOKS_DIR = f"{CHASQUID_DIR}/hooks"
# chasquid 1.11 runs hooks/post-data after DATA, and hooks/alias-resolve ADDRESS for
# each lookup of a local address (RCPT TO and delivery): its output, read as the right
# side of an aliases line, adds recipients, so it can accept addresses no file names.
ALIAS_HOOK = "alias-resolve"
KNOWN_HOOKS = frozenset({"post-data", ALIAS_HOOK})


def check_cross(state: State) -> list[P.Problem]:
    found = list(_hooks(state))
    if state.manifest is not None:
        found += _domains_agree(state, state.manifest)
        found += _hostname_certificate(state, state.manifest)
    found += _postmasters(state)
    return found


def _hooks(state: State) -> Iterator[P.Problem]:
    allowed = state.manifest.allow_hooks if state.manifest is not None else False
    # A manifest that does not parse allows nothing, but its own errors say why.
    unknown = state.manifest is None and state.snapshot.data(MANIFEST) is not None
    for rel, entry in state.snapshot.under(HOOKS_DIR):
        path = f"{HOOKS_DIR}/{rel}"
        if not entry.is_regular or "/" in rel:
            continue
        if not allowed and not unknown:
            yield P.error(
                path,
                None,
                "hooks.not-allowed",
                "hooks run programs on the server, and the manifest does not allow them",
                "set `chasquid: {hooks: true}` in gitops-mail.yaml (the host's policy must "
                "allow them too: policy.repo_hooks), or remove the hook",
            )
        elif allowed and not entry.is_executable:
            yield P.error(
                path,
                None,
                "hooks.not-executable",
                "the hook is not executable: chasquid would fail every message with 451",
                f"git update-index --chmod=+x {path}",
            )
        if rel not in KNOWN_HOOKS:
            yield P.warning(
                path,
                None,
                "hooks.unknown",
                f"chasquid never runs a hook named {rel!r}",
                "chasquid runs hooks/post-data and hooks/alias-resolve; rename or remove this file",
            )


def _domains_agree(state: State, manifest: Manifest) -> Iterator[P.Problem]:
    wanted = manifest.domains  # the manifest's own rules keep these in normal form
    dirs = {normalize_domain(name) or name for name in state.domains}
    for name, settings in sorted(wanted.items()):
        if name not in dirs:
            yield P.error(
                MANIFEST,
                settings.line,
                "manifest.domain-without-dir",
                f"domain {name!r} is in the manifest but chasquid has no directory for it: "
                "it would not accept mail for it",
                f"add chasquid/domains/{name}/aliases (or users), or remove it from domains:",
            )
    for name in state.domains:
        if (normalize_domain(name) or name) not in wanted:
            yield P.warning(
                f"{CHASQUID_DIR}/domains/{name}",
                None,
                "manifest.dir-without-domain",
                f"domain {name!r} receives mail but is not under domains: in the manifest, "
                "so no DNS records (MX, SPF, DKIM, DMARC) are generated for it",
                f"add `{name}: {{}}` under domains: in gitops-mail.yaml",
            )


def _hostname_certificate(state: State, manifest: Manifest) -> Iterator[P.Problem]:
    certificates = manifest.certificates
    hostname = state.hostname
    line = manifest.doc.line_of(("certificates",))
    if not certificates:
        yield P.error(
            MANIFEST,
            line,
            "manifest.no-certificate",
            "no certificate: chasquid refuses to start without one",
            "add a certificates: entry named after the hostname, with its acme_sh, certbot "
            "or files source",
        )
    elif hostname and domainname.to_ascii(hostname) not in {
        domainname.to_ascii(c.name) for c in certificates
    }:
        yield P.error(
            MANIFEST,
            line,
            "manifest.no-hostname-certificate",
            f"no certificate is named after the hostname {hostname!r} "
            f"(set in {CONF_PATH}): clients would not get a certificate for it",
            f"add a certificates: entry with `name: {hostname}`",
        )


def _postmasters(state: State) -> Iterator[P.Problem]:
    for name, domain in sorted(state.domains.items()):
        if not state.resolver.resolve(f"postmaster@{name}").exists:
            yield P.warning(
                domain.aliases_path,
                None,
                "aliases.no-postmaster",
                f"postmaster@{name} does not exist: RFC 5321 requires it, and some "
                "senders check it",
                "add `postmaster: you@example.com` to the aliases file (or a catch-all)",
            )
