"""``gitops-mail send-test``: submit one test message with AUTH over TLS and show each answer.

The password comes from ``GITOPS_MAIL_PASSWORD`` or a prompt (never echoed);
it goes to the server's AUTH and nowhere else. The certificate is verified
against the system's CAs (or ``--ca-file``) unless ``--insecure``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from gitops_mail.errors import UsageError

PASSWORD_ENV = "GITOPS_MAIL_PASSWORD"  # noqa: S105 - the variable's name, not a password
IMPLICIT_TLS_PORT = 465


def run(args: argparse.Namespace) -> int:
    from gitops_mail.host.probe.client import Submission, send_test  # noqa: PLC0415 - ssl
    from gitops_mail.host.probe.served import describe  # noqa: PLC0415 - cryptography

    user = args.user or args.from_
    implicit = args.tls == "implicit" if args.tls else args.port == IMPLICIT_TLS_PORT
    submission = Submission(
        server=args.server or _this_host(args),
        port=args.port,
        implicit_tls=implicit,
        sender=args.from_,
        recipient=args.to,
        user=user,
        insecure=args.insecure,
        ca_file=args.ca_file,
    )
    password = _password(user)
    mode = "TLS on connect" if implicit else "STARTTLS"
    print(f"server:      {submission.server}:{submission.port} ({mode})")
    sent = send_test(submission, password)
    checked = "NOT verified (--insecure)" if args.insecure else "verified"
    print(f"banner:      {sent.banner}")
    print(f"tls:         {sent.tls_version}, {sent.cipher}, certificate {checked}")
    print(f"certificate: {describe(sent.der)}")
    print(f"auth:        {sent.auth} (as {user})")
    print(f"answer:      {sent.answer}")
    print(f"message-id:  {sent.message_id}")
    return 0


def _password(user: str) -> str:
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError(
                f"no password for {user}",
                f"set {PASSWORD_ENV}, or run in a terminal to be asked for it",
            )
        password = getpass.getpass(f"password for {user}: ")
    if not password:
        raise UsageError(f"the password for {user} is empty", f"set {PASSWORD_ENV} or type it")
    return password


def _this_host(args: argparse.Namespace) -> str:
    """chasquid's hostname from this host's live chasquid.conf, when no --server is given."""
    from gitops_mail.core.formats.chasquid_conf import parse_config  # noqa: PLC0415
    from gitops_mail.errors import GitopsMailError  # noqa: PLC0415
    from gitops_mail.host import settings as hostsettings  # noqa: PLC0415

    hint = "pass --server HOST"
    try:
        conf = hostsettings.load(args.config).chasquid.config_dir / "chasquid.conf"
        config, _ = parse_config(conf.read_bytes(), str(conf))
    except (GitopsMailError, OSError) as exc:
        message = f"no --server, and this host's chasquid.conf cannot say: {exc}"
        raise UsageError(message, hint) from None
    if config is None or not config.hostname:
        raise UsageError(f"no --server, and {conf} names no hostname", hint)
    return config.hostname
