"""``gitops-mail check``: live DNS and the served certificates against the repo.

On the server (the default) it checks the revision live on this host, as the
host settings say, DNS and TLS both. With ``--repo`` it checks a checkout's
revision against DNS only: the certificates chasquid serves are compared with
the ones on the server's disk, so only the server can check them.
"""

from __future__ import annotations

import argparse
import ipaddress

from gitops_mail.core.dns import findings as fnd
from gitops_mail.errors import InvalidConfig


def resolver_address(text: str) -> str:
    """``--resolver``: an IP address (argparse type)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address (e.g. --resolver 9.9.9.9)"
        ) from None


def run(args: argparse.Namespace) -> int:
    if args.repo is not None:
        found, about = _checkout(args)
    else:
        found, about = _host(args)
    if args.format == "json":
        print(fnd.to_json(found, **about))
    else:
        print(f"checked {about['checked']}")
        print(fnd.table(found), end="")
    return fnd.exit_code(found, strict=args.strict)


def _host(args: argparse.Namespace) -> tuple[list[fnd.Finding], dict[str, object]]:
    from gitops_mail.daemon.livecheck import host_check  # noqa: PLC0415 - start-up time
    from gitops_mail.host import settings as hostsettings  # noqa: PLC0415

    checked = host_check(hostsettings.load(args.config), args.resolver)
    where = "live on this host" if checked.live else "the branch tip: nothing is applied here yet"
    text = f"{checked.revision[:7]} ({where}) through {_resolver(args)}"
    return checked.findings, {"checked": text, "revision": checked.revision, "live": checked.live}


def _checkout(args: argparse.Namespace) -> tuple[list[fnd.Finding], dict[str, object]]:
    from gitops_mail.cli.source import load_source  # noqa: PLC0415 - start-up time
    from gitops_mail.host import livecheck  # noqa: PLC0415

    state = load_source(args)
    if state.manifest is None:
        raise InvalidConfig(
            f"{args.rev} of {args.repo} has no valid gitops-mail.yaml",
            "run gitops-mail validate to see why",
        )
    found = livecheck.run(livecheck.desired_from(state), resolver=args.resolver)
    text = f"{args.rev} of {args.repo} through {_resolver(args)} (DNS only; TLS on the server)"
    return found, {"checked": text, "revision": state.snapshot.revision or args.rev}


def _resolver(args: argparse.Namespace) -> str:
    return f"resolver {args.resolver}" if args.resolver else "this host's resolver"
