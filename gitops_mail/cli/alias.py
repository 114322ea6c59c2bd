"""``gitops-mail alias resolve ADDR``: the final recipients, by chasquid's rules."""

from __future__ import annotations

import argparse

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
    if not resolution.exists and not state.resolver.is_local(normalize_domain(domain) or domain):
        print(address)
        print(f"({domain} is not a local domain: chasquid relays the mail to its servers)")
        return 0
    if not resolution.exists:
        raise GitopsMailError(
            f"chasquid would reject mail for {address}: no such user or alias",
            "add a user, an alias or a catch-all (*) to the domain's aliases file",
        )
    for rcpt in resolution.recipients:
        print(f"| {rcpt.address}" if rcpt.kind is Kind.PIPE else rcpt.address)
    if resolution.catch_all:
        print(f"(through the catch-all of {domain})")
    return 0
