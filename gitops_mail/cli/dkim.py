"""``gitops-mail dkim export|import DOMAIN SELECTOR``: move a DKIM key between hosts.

``export`` writes the private key (PKCS#8 PEM) to a new 0600 file or to
standard output, with a warning on standard error; ``import`` reads one
(PKCS#1 or PKCS#8, RSA or ed25519; a file or standard input) into this
host's key store. Import refuses a key whose public half differs from the
one the committed ``dns/<domain>.zone`` publishes: it would make every
signature fail. Neither command ever prints key bytes anywhere else.
"""

from __future__ import annotations

import argparse
import os
import sys

from gitops_mail import logs
from gitops_mail.core.dns.dkim import PublicKey
from gitops_mail.core.dns.zone import committed_keys, zone_path
from gitops_mail.core.state import State, load_state
from gitops_mail.errors import InvalidConfig, NotFound, UsageError
from gitops_mail.git import read as gitread
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.dkim import keygen
from gitops_mail.host.dkim.store import KeyStore

WARNING = (
    "gitops-mail: warning: this is the private DKIM key of {record}: whoever holds it can sign "
    "mail as {domain}. Keep it off git, chat and tickets; move it only to another host of "
    "yours or to an encrypted backup."
)


def run(args: argparse.Namespace) -> int:
    logs.configure()  # events on standard error: standard output may carry the key
    settings = hostsettings.load(getattr(args, "config", None))
    store = KeyStore(settings.state_dir)
    if args.action == "export":
        return _export(store, args)
    state = load_state(gitread.read_revision(settings.repo, settings.branch))
    return _import(store, state, args)


def _record(args: argparse.Namespace) -> str:
    return f"{args.selector}._domainkey.{args.domain}"


def _export(store: KeyStore, args: argparse.Namespace) -> int:
    key = store.load(args.domain, args.selector)
    if key is None:
        raise NotFound(
            f"this host has no DKIM key for {_record(args)}",
            "the server makes a key for each selector of gitops-mail.yaml on its next apply",
        )
    print(WARNING.format(record=_record(args), domain=args.domain), file=sys.stderr)
    if args.output in (None, "-"):
        sys.stdout.buffer.write(key.pem)
        sys.stdout.flush()
        return 0
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise UsageError(
            f"cannot create {args.output}: {exc.strerror}",
            "name a file that does not exist yet (it is created 0600)",
        ) from exc
    with open(fd, "wb") as handle:
        handle.write(key.pem)
    print(f"exported {_record(args)} to {args.output} (mode 0600)", file=sys.stderr)
    return 0


def _import(store: KeyStore, state: State, args: argparse.Namespace) -> int:
    pem, public = keygen.from_pem(_read_key(args.file))
    published = committed_keys(state).get((args.domain, args.selector.lower()))
    zone = zone_path(args.domain)
    if published is not None and published != public:
        raise InvalidConfig(
            f"refusing the key: its public half is not the one {zone} publishes for "
            f"{_record(args)}, so every signature made with it would fail",
            "export the key from the host whose key the zone publishes, or rotate to a new "
            "selector instead",
        )
    held = store.load(args.domain, args.selector)
    if published is None and held is not None and held.public != public:
        raise InvalidConfig(
            f"refusing the key: this host already has a different key for {_record(args)}, "
            f"and {zone} publishes neither",
            f"remove {held.path} by hand first if the imported key is the one to keep",
        )
    print(WARNING.format(record=_record(args), domain=args.domain), file=sys.stderr)
    store.put(args.domain, args.selector, pem, public)
    _report(state, args, published)
    return 0


def _read_key(name: str | None) -> bytes:
    if name in (None, "-"):
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(
            f"cannot read {name}: {exc.strerror}", "name the exported PEM file"
        ) from exc


def _report(state: State, args: argparse.Namespace, published: PublicKey | None) -> None:
    manifest = state.manifest
    settings = manifest.domains.get(args.domain) if manifest is not None else None
    selectors = [s.lower() for s in settings.dkim.selectors] if settings and settings.dkim else []
    said = f"imported {_record(args)}"
    if published is None:
        said += f" ({zone_path(args.domain)} does not publish it yet)"
    print(said)
    if args.selector.lower() not in selectors:
        domain = args.domain
        print(f"note: {args.selector} is not in dkim.selectors of {domain}: nothing signs with it")
    print("next: `gitops-mail apply` (or `gitops-mail reconcile-now`) installs it")
