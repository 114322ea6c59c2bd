"""``gitops-mail dns [DOMAIN]``: the records to publish, as a zone file, JSON or a table.

In a checkout it reads a revision (``--repo``/``--rev``/``--worktree``) and
takes the DKIM keys from that revision's committed ``dns/<domain>.zone``. On
the server (host settings present and no ``--repo``) it reads the watched
repo's branch, and the key store's public keys come first: a key made since
the last commit-back is shown too.
"""

from __future__ import annotations

import argparse
import json

from gitops_mail.cli.source import collector_paused, load_source
from gitops_mail.core.dns.dkim import PublicKey
from gitops_mail.core.dns.zone import TTL, Record, committed_keys, render_zones, zone_path
from gitops_mail.core.dns.zone import zone_records as records_of
from gitops_mail.core.state import State, load_state
from gitops_mail.errors import InvalidConfig, UsageError

PENDING = "(made by the server at its next apply)"


def run(args: argparse.Namespace) -> int:
    with collector_paused():
        state, keys = _read(args)
    if state.manifest is None:
        raise InvalidConfig(
            f"{state.snapshot.source} has no valid gitops-mail.yaml: no domain to publish",
            "run `gitops-mail validate` to see why",
        )
    domains = _chosen(state, args.domain)
    records = records_of(state, keys)
    if args.format == "zone":
        zones = render_zones(state, keys)
        print("\n".join(zones[zone_path(d)].decode("ascii") for d in domains), end="")
    elif args.format == "json":
        print(json.dumps(_json(domains, records), indent=2, ensure_ascii=False))
    else:
        print(_table([r for d in domains for r in records[d]]), end="")
    return 0


def _read(args: argparse.Namespace) -> tuple[State, dict[tuple[str, str], PublicKey]]:
    if args.repo is None and _on_server(args):
        return _server(args)
    args.repo = args.repo or "."
    args.rev = args.rev or "HEAD"
    state = load_source(args)
    return state, dict(committed_keys(state))


def _on_server(args: argparse.Namespace) -> bool:
    from gitops_mail.host import settings as hostsettings  # noqa: PLC0415 - start-up time

    return hostsettings.settings_path(getattr(args, "config", None)).is_file()


def _server(args: argparse.Namespace) -> tuple[State, dict[tuple[str, str], PublicKey]]:
    from gitops_mail.git import read as gitread  # noqa: PLC0415 - start-up time
    from gitops_mail.host import settings as hostsettings  # noqa: PLC0415
    from gitops_mail.host.dkim import store as dkimstore  # noqa: PLC0415

    settings = hostsettings.load(getattr(args, "config", None))
    state = load_state(gitread.read_revision(settings.repo, args.rev or settings.branch))
    keys: dict[tuple[str, str], PublicKey] = dict(committed_keys(state))
    keys.update(dkimstore.public_keys(settings.state_dir, state.manifest))
    return state, keys


def _chosen(state: State, domain: str | None) -> list[str]:
    names = sorted(state.manifest.domains) if state.manifest is not None else []
    if domain is None:
        return names
    if domain in names:
        return [domain]
    raise UsageError(
        f"{domain!r} is not a domain of the manifest",
        f"name one of: {', '.join(names) or '(none)'}",
    )


def _json(domains: list[str], records: dict[str, list[Record]]) -> dict[str, object]:
    return {
        "domains": {
            d: {"zone": zone_path(d), "records": [_record(r) for r in records[d]]} for d in domains
        }
    }


def _record(record: Record) -> dict[str, object]:
    return {
        "name": record.name,
        "type": record.rtype,
        "ttl": TTL,
        "value": record.value,
        "pending": record.value is None,
    }


def _table(records: list[Record]) -> str:
    rows = [("NAME", "TYPE", "TTL", "VALUE")]
    rows += [(r.name, r.rtype, str(TTL), r.value or PENDING) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "".join(
        f"{n:<{widths[0]}}  {t:<{widths[1]}}  {ttl:<{widths[2]}}  {v}\n" for n, t, ttl, v in rows
    )
