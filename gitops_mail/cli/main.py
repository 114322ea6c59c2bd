"""The command line: ``main(argv) -> int``, parsing and dispatch only.

Each command lives in ``gitops_mail/cli/<name>.py`` as ``run(args) -> int``
and is imported only when it runs, so ``--help`` stays fast. Errors become
exit codes here, in one place: ``GitopsMailError.exit_code`` (1 unless a
subclass says otherwise), 1 for an operating-system error (a file that cannot
be read), 130 for Ctrl-C, and tracebacks only with ``--debug``.

A command line that cannot be parsed (unknown option, missing argument)
exits 64, EX_USAGE of sysexits(3): never 2, which ``plan`` keeps for "there
are changes". An argument that parses but is wrong (an address that is
not one, a user that exists) is a ``UsageError``: 1, like every other
error. No command at all prints the help on standard error and exits 1, as
git does. Output cut short by its reader
(``gitops-mail history | head``) ends quietly with 141, as a program killed
by SIGPIPE does in a shell.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from gitops_mail import __version__
from gitops_mail.errors import GitopsMailError

EX_USAGE = 64  # sysexits(3): the command was used incorrectly
EX_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a reader that went away
FORMATS_PROBLEMS = ("text", "json")
FORMATS_PLAN = ("text", "markdown", "json")


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", default=".", help="the conf repo (bare or not; default: .)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--rev", default="HEAD", help="the revision to read (default: HEAD)")
    which.add_argument(
        "--worktree", action="store_true", help="read the uncommitted files instead of a commit"
    )


def config_option(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--config`` after the command too; without it the global one (or its default) holds."""
    p.add_argument("--config", default=argparse.SUPPRESS, help=f"{help_text} (as the global one)")


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on EX_USAGE instead of 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


TYPE_CHECKING = False  # as typing's, without importing typing (mypy reads it as True)
if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[_Parser]


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized without its ``import shutil`` (which brings
    zlib, bz2 and lzma): the width ``shutil.get_terminal_size`` would give."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2)


def _columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    stdout = sys.__stdout__
    try:
        return (os.get_terminal_size(stdout.fileno()).columns or 80) if stdout else 80
    except (ValueError, OSError):
        return 80


def _add(
    sub: Subparsers, name: str, module: str, help_text: str, config: str = "host settings file"
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
    p.set_defaults(module=module, command=name)
    config_option(p, config)  # before or after the command, for every command
    return p


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command``, only that command's part.

    Each command's parser costs start-up time, so ``main`` builds only the one
    it runs when the arguments name it plainly (see ``_named_command``).
    """
    parser = _Parser(
        prog="gitops-mail",
        description="Manage a chasquid mail server from a git repository.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"gitops-mail {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--config",
        help="host settings file (default: $GITOPS_MAIL_CONFIG or "
        "/etc/gitops-mail/gitops-mail.yaml)",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, add in _COMMANDS.items():
        if command is None or name == command:
            add(sub)
    return parser


def _named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when only ``--debug`` and ``--config`` come before it.

    Anything else first (``--help``, an abbreviated option) gets the whole parser.
    """
    i = 0
    while i < len(argv) and (argv[i] in ("--debug", "--config") or argv[i].startswith("--config=")):
        i += 2 if argv[i] == "--config" else 1
    return argv[i] if i < len(argv) and argv[i] in _COMMANDS else None


def _validate(sub: Subparsers) -> None:
    policy = "host settings whose policy to judge by (default: $GITOPS_MAIL_CONFIG if it exists)"
    p = _add(sub, "validate", "validate", "check a revision; every problem at once", policy)
    _source_options(p)
    p.add_argument("--format", choices=FORMATS_PROBLEMS, default="text")
    p.add_argument("--strict", action="store_true", help="fail on warnings too")


def _plan(sub: Subparsers) -> None:
    p = _add(
        sub,
        "plan",
        "plan",
        "show what applying a revision would change (exit 0: no change, 2: changes, 1: error)",
    )
    _source_options(p)
    base = p.add_mutually_exclusive_group()
    base.add_argument(
        "--base",
        help="compare with this revision (default: the parent of --rev; with --worktree, HEAD)",
    )
    base.add_argument(
        "--live",
        action="store_true",
        help="the plan `apply` makes on this host: from its live revision to the host's "
        "branch (or --rev) of the repo its settings name (or --repo)",
    )
    p.add_argument("--format", choices=FORMATS_PLAN, default="text")
    p.set_defaults(repo=None, rev=None)  # --live takes both from the host settings


def _user(sub: Subparsers) -> None:
    p = _add(sub, "user", "user", "add, change, remove or list users in a checkout")
    p.add_argument("action", choices=("add", "passwd", "remove", "list"))
    p.add_argument("address", nargs="?", help="user@domain (for list: a domain, or nothing)")
    p.add_argument("--repo", default=".", help="the checkout to edit (default: .)")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    p.add_argument(
        "--create-domain",
        action="store_true",
        help="create the domain's directory if it does not exist",
    )
    p.add_argument("--format", choices=FORMATS_PROBLEMS, default="text", help="for list")


def _alias(sub: Subparsers) -> None:
    p = _add(sub, "alias", "alias", "who receives mail for an address, by chasquid's rules")
    p.add_argument("action", choices=("resolve",))
    p.add_argument("address")
    _source_options(p)
    p.add_argument("--format", choices=FORMATS_PROBLEMS, default="text")


def _dns(sub: Subparsers) -> None:
    p = _add(
        sub,
        "dns",
        "dns",
        "the DNS records to publish (MX, A/AAAA, SPF, DKIM, DMARC, ...)",
        "host settings file (on the server: the key store's keys)",
    )
    p.add_argument("domain", nargs="?", help="one domain of the manifest (default: all)")
    p.add_argument(
        "--repo",
        default=None,
        help="the conf repo (default: the host's watched repo on the server, else .)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--rev", default=None, help="the revision to read (default: HEAD)")
    which.add_argument(
        "--worktree", action="store_true", help="read the uncommitted files instead of a commit"
    )
    p.add_argument("--format", choices=("zone", "json", "table"), default="zone")


def _dkim(sub: Subparsers) -> None:
    p = _add(
        sub,
        "dkim",
        "dkim",
        "move a DKIM private key between hosts or into a backup (export, import)",
    )
    p.add_argument("action", choices=("export", "import"))
    p.add_argument("domain")
    p.add_argument("selector")
    p.add_argument("file", nargs="?", help="import: the PEM file to read (default: stdin)")
    p.add_argument("-o", "--output", help="export: a new file to write (default: stdout)")


def _init(sub: Subparsers) -> None:
    p = _add(sub, "init", "scaffold", "scaffold a new conf repo for DOMAIN in DIR")
    p.add_argument("domain")
    p.add_argument("directory")


def _import(sub: Subparsers) -> None:
    p = _add(sub, "import", "scaffold", "adopt an existing chasquid config dir into a new repo")
    p.add_argument("chasquid_dir")
    p.add_argument("directory")


def _apply(sub: Subparsers) -> None:
    p = _add(
        sub,
        "apply",
        "apply",
        "apply a revision to this host: validate, pre-flight, swap, "
        "restart as needed, probe; restore on failure",
    )
    p.add_argument("--rev", help="the revision to apply (default: the host's branch)")
    p.add_argument(
        "--dry-run", action="store_true", help="stage and pre-flight, show the plan, change nothing"
    )
    p.add_argument("--no-wait", action="store_true", help="fail if another apply is running")


def _status(sub: Subparsers) -> None:
    p = _add(
        sub,
        "status",
        "status",
        "what is live, drift, whether chasquid runs (exit 0: the branch tip is live or on its "
        "way and chasquid runs, 1: chasquid does not run, 3: the tip failed and is not tried "
        "again by itself)",
    )
    p.add_argument("--format", choices=FORMATS_PROBLEMS, default="text")


def _history(sub: Subparsers) -> None:
    p = _add(sub, "history", "status", "the last 50 apply attempts on this host")
    p.add_argument("--format", choices=FORMATS_PROBLEMS, default="text")
    p.add_argument(
        "--revision", metavar="REV", help="only the attempts at this revision (an id or its start)"
    )


def _rollback(sub: Subparsers) -> None:
    p = _add(
        sub,
        "rollback",
        "status",
        "apply the last good revision again (or --to REV) (exit 0: rolled back, 3: that "
        "revision is already live, nothing rolled back)",
    )
    p.add_argument("--to", help="the revision to go back to (default: the last good one)")
    p.add_argument("--no-wait", action="store_true", help="fail if another apply is running")


def _hooks(sub: Subparsers) -> None:
    p = _add(
        sub,
        "hooks",
        "hooks",
        "install push hooks into the watched repo: reject invalid pushes, "
        "show the daemon's result to the pusher",
    )
    p.add_argument("action", choices=("install",))
    p.add_argument("repo", help="the repository the host settings watch (bare or not)")
    p.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="seconds post-receive waits for the daemon's result (default: 15)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace hooks gitops-mail did not install (each kept as NAME.before-gitops-mail)",
    )


def _hook(sub: Subparsers) -> None:
    # internal: what the installed hooks run; not in --help
    p = sub.add_parser("hook", formatter_class=_Formatter)
    p.set_defaults(module="hooks", command="hook")
    p.add_argument("hook", choices=("pre-receive", "post-receive"))
    p.add_argument("--repo", default=".")
    p.add_argument("--timeout", type=float, default=15.0)
    config_option(p, "host settings file")


def _daemon(sub: Subparsers) -> None:
    _add(sub, "daemon", "daemon", "watch the repo and reconcile every new tip until SIGTERM")


def _reconcile_now(sub: Subparsers) -> None:
    p = _add(
        sub, "reconcile-now", "daemon", "ask the running daemon for a pass now; print its result"
    )
    p.add_argument("--no-wait", action="store_true", help="only ask; do not wait for the result")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default: 120)")


def _check(sub: Subparsers) -> None:
    p = _add(
        sub,
        "check",
        "check",
        "compare live DNS (MX, A/AAAA, PTR, SPF, DKIM, DMARC, MTA-STS, TLS-RPT) and the "
        "certificates served on 25, 465 and 587 with the repo (exit 0: all good, 1: problems)",
    )
    p.add_argument(
        "--resolver",
        type=_resolver_address,
        metavar="IP",
        help="ask this resolver instead of this host's (/etc/resolv.conf)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--strict", action="store_true", help="fail on warnings too")
    p.add_argument(
        "--repo",
        help="check a checkout's revision (DNS only) instead of what is live on this host",
    )
    p.add_argument("--rev", default="HEAD", help="with --repo: the revision (default: HEAD)")


def _resolver_address(text: str) -> str:
    from gitops_mail.cli.check import resolver_address  # noqa: PLC0415 - start-up time

    return resolver_address(text)


def _send_test(sub: Subparsers) -> None:
    p = _add(
        sub,
        "send-test",
        "sendtest",
        "submit a test message with AUTH over TLS; show banner, TLS, certificate and answers "
        "(password: $GITOPS_MAIL_PASSWORD or a prompt)",
        config="host settings file, to find this host's hostname",
    )
    p.add_argument("--from", dest="from_", required=True, metavar="ADDR", help="sender")
    p.add_argument("--to", required=True, metavar="ADDR", help="recipient")
    p.add_argument("--server", help="host to submit to (default: this host's chasquid hostname)")
    p.add_argument(
        "--port", type=int, default=587, help="465: TLS on connect; 587 (default): STARTTLS"
    )
    p.add_argument(
        "--tls",
        choices=("starttls", "implicit"),
        help="how TLS starts on another port (default: implicit on 465, else starttls)",
    )
    p.add_argument("--user", help="the login (default: the --from address)")
    p.add_argument("--ca-file", help="verify the certificate against this CA file")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the certificate (a test server with a self-signed one)",
    )


def _supervise(sub: Subparsers) -> None:
    _add(
        sub,
        "supervise",
        "supervise",
        "run chasquid as a child and start it again "
        "whenever it ends (chasquid.service: supervise); until SIGTERM or SIGINT",
    )


def _deploy(sub: Subparsers) -> None:
    p = _add(sub, "deploy", "deploy", "install or update servers over SSH; push the conf repo")
    p.add_argument("hosts", nargs="+", metavar="HOST", help="[USER@]HOST[:PORT], root or sudo")
    p.add_argument("--conf", default=".", help="the conf repo to push (default: .)")
    p.add_argument("--adopt", action="store_true", help="import the host's /etc/chasquid first")
    p.add_argument(
        "--status",
        action="store_true",
        help="change nothing: show each host's live revision against the conf repo's tip",
    )
    p.add_argument("--remote", default="vps", help="the conf repo's remote (default: vps)")
    p.add_argument(
        "--push-key",
        action="append",
        default=[],
        metavar="FILE",
        help="public key the pusher logs in with (default: the login user's keys)",
    )
    p.add_argument("--pusher", default="git", help="owner of the watched repo (default: git)")
    p.add_argument("--repo-path", default="/srv/mail-conf.git", help="the watched repo there")
    p.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="trust and remember a host key never seen before",
    )
    p.add_argument(
        "--host-settings",
        metavar="FILE",
        help="host settings to install where there are none (deploy sets repo, branch, "
        "state_dir, chasquid.config_dir and .service; default: deploy/gitops-mail.yaml)",
    )
    p.add_argument(
        "--root", default="/", help="install below this directory ({host}: the host's name)"
    )
    p.add_argument(
        "--systemctl", default="systemctl", help="the service manager ({host}: the host's name)"
    )
    p.add_argument("--apt", default="apt-get", help="the package manager's command")
    p.add_argument(
        "--chasquid-service",
        choices=("systemd", "supervise"),
        default="systemd",
        help="how the host settings restart chasquid (default: systemd)",
    )


def _certs(sub: Subparsers) -> None:
    p = _add(
        sub,
        "certs",
        "certs",
        "sync: install renewed certificates now, on the live revision "
        "(acme.sh --reloadcmd, certbot deploy hook); exit 0 served, 1 refused or failed",
    )
    p.add_argument("action", choices=("sync",))
    p.add_argument("--no-wait", action="store_true", help="fail if another apply is running")


# In the order --help lists them.
_COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "validate": _validate,
    "plan": _plan,
    "user": _user,
    "alias": _alias,
    "dns": _dns,
    "dkim": _dkim,
    "init": _init,
    "import": _import,
    "apply": _apply,
    "status": _status,
    "history": _history,
    "rollback": _rollback,
    "certs": _certs,
    "hooks": _hooks,
    "hook": _hook,
    "daemon": _daemon,
    "reconcile-now": _reconcile_now,
    "check": _check,
    "send-test": _send_test,
    "supervise": _supervise,
    "deploy": _deploy,
}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_named_command(arguments))
    args = parser.parse_args(arguments)
    if not getattr(args, "module", None):
        parser.print_help(sys.stderr)
        return 1
    try:
        command = importlib.import_module(f"gitops_mail.cli.{args.module}")
        code = int(command.run(args))
        sys.stdout.flush()  # a reader that went away is noticed here, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone(args.debug)
    except GitopsMailError as exc:
        if args.debug:
            raise
        _print_error(exc.message, exc.hint)
        return exc.exit_code
    except OSError as exc:
        if args.debug:
            raise
        _print_error(str(exc))
        return 1
    except KeyboardInterrupt:
        print("gitops-mail: interrupted", file=sys.stderr)
        return 130


def _reader_gone(debug: bool) -> int:
    """Standard output's reader closed it: stop quietly, as ``git log | head`` does."""
    if debug:
        raise  # noqa: PLE0704 - re-raises the BrokenPipeError being handled
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so that Python's own flush at exit is quiet too
    os.close(devnull)
    return EX_PIPE


def _print_error(message: str, hint: str = "") -> None:
    """An error for a person: names in it may come from the repo, so no raw control character."""
    from gitops_mail.core.printable import shown_lines  # noqa: PLC0415 - only errors need it

    print(f"gitops-mail: error: {shown_lines(message)}", file=sys.stderr)
    if hint:
        print(f"    hint: {shown_lines(hint)}", file=sys.stderr)


def console_main() -> None:
    sys.exit(main())
