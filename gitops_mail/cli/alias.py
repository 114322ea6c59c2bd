"""``gitops-mail alias resolve ADDR``: the final recipients, by chasquid's rules."""

from __future__ import annotations

import argparse
import json

from gitops_mail.cli.source import load_source
from gitops_mail.core.formats.addresses import normalize_domain
from gitops_mail.core.formats.aliases.parse import Kind
from gitops_mail.errors import GitopsMailError, UsageError


def run(args: argparse.Namespace) -> int:
    address: str = args.address
    if "@" not in address:
        raise UsageError(f"{address!r} is not an address", "give it as user@domain")
    state = load_source(args)
    resolution = state.resolver.resolve(address)
    if resolution.error:
        raise GitopsMailError(
            f"cannot resolve {address}: {resolution.error}",
            "gitops-mail validate shows where the aliases go wrong",
        )
    domain = address.rpartition("@")[2]
    local = state.resolver.is_local(normalize_domain(domain) or domain)
    if not resolution.exists and local:
        raise GitopsMailError(
            f"chasquid would reject mail for {address}: no such user or alias",
            "add a user, an alias or a catch-all (*) to the domain's aliases file",
        )
    recipients = (
        [{"address": r.address, "kind": r.kind.name.lower()} for r in resolution.recipients]
        if resolution.exists
        else [{"address": address, "kind": "remote"}]
    )
    if getattr(args, "format", "text") == "json":
        answer = {"address": address, "local": local, "catch_all": resolution.catch_all}
        print(json.dumps({**answer, "recipients": recipients}, indent=2, ensure_ascii=False))
        return 0
    _print_text(recipients, domain, local=local, catch_all=resolution.catch_all)
    return 0


def _print_text(
    recipients: list[dict[str, str]], domain: str, *, local: bool, catch_all: bool
) -> None:
    for rcpt in recipients:
        print(f"| {rcpt['address']}" if rcpt["kind"] == Kind.PIPE.name.lower() else rcpt["address"])
    if not local:
        print(f"({domain} is not a local domain: chasquid relays the mail to its servers)")
    elif catch_all:
        print(f"(through the catch-all of {domain})")
