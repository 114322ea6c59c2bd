"""``gitops-mail alias resolve ADDR``: the final recipients, by chasquid's rules.

A repo with ``chasquid/hooks/alias-resolve`` gives chasquid a second source:
it runs that hook with each local address it looks up and adds the recipients
the hook prints. The files alone cannot say what the hook answers, so the
answer says when it depends on the hook instead of claiming a rejection.
"""

from __future__ import annotations

import argparse

from gitops_mail.cli.source import load_source
from gitops_mail.core.checks.cross import ALIAS_HOOK, HOOKS_DIR
from gitops_mail.core.formats.addresses import normalize_domain
from gitops_mail.core.formats.aliases.parse import Kind
from gitops_mail.core.printable import json_text, shown
from gitops_mail.errors import GitopsMailError, UsageError

HOOK_PATH = f"{HOOKS_DIR}/{ALIAS_HOOK}"


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
    hook = HOOK_PATH if local and state.snapshot.get(HOOK_PATH) is not None else None
    if not resolution.exists and local and hook is None:
        raise GitopsMailError(
            f"chasquid would reject mail for {address}: no such user or alias",
            "add a user, an alias or a catch-all (*) to the domain's aliases file",
        )
    recipients = [
        {"address": r.address, "kind": r.kind.name.lower()}
        for r in (resolution.recipients if resolution.exists else ())
    ]
    if not local:
        recipients = [{"address": address, "kind": "remote"}]
    if getattr(args, "format", "text") == "json":
        answer = {"address": address, "local": local, "catch_all": resolution.catch_all}
        print(json_text({**answer, "recipients": recipients, "hook": hook}))
        return 0
    _print_text(recipients, address, local=local, catch_all=resolution.catch_all, hook=hook)
    return 0


def _print_text(
    recipients: list[dict[str, str]],
    address: str,
    *,
    local: bool,
    catch_all: bool,
    hook: str | None,
) -> None:
    domain = address.rpartition("@")[2]
    lines = [
        f"| {rcpt['address']}" if rcpt["kind"] == Kind.PIPE.name.lower() else rcpt["address"]
        for rcpt in recipients
    ]
    if not local:
        lines.append(f"({domain} is not a local domain: chasquid relays the mail to its servers)")
    elif catch_all:
        lines.append(f"(through the catch-all of {domain})")
    if hook is not None and recipients:
        lines.append(
            f"(and whatever {hook} prints for {address}: chasquid runs it for every local "
            "address and adds its recipients)"
        )
    elif hook is not None:
        lines.append(
            f"(no user or alias in the files: it depends on {hook}, which chasquid runs for "
            f"{address}: mail is accepted if the hook prints a recipient, else rejected)"
        )
    for line in lines:
        print(shown(line))  # addresses are the repo's: no raw control character
