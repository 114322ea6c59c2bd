"""``gitops-mail user add|passwd|remove|list``: edit users files in a checkout.

Writes the working tree only (atomically); committing and pushing is the
user's step, so the change goes through review like any other.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from gitops_mail.cli.source import read_worktree
from gitops_mail.core import domainname
from gitops_mail.core.formats.addresses import normalize_domain
from gitops_mail.core.formats.users import db as U
from gitops_mail.core.state import DOMAINS_DIR, load_state
from gitops_mail.errors import InvalidConfig, NotFound, RepoError, UsageError
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.host import localfs


def run(args: argparse.Namespace) -> int:
    root = _checkout_root(Path(args.repo))
    if args.action == "list":
        return _list(root, args.address, getattr(args, "format", "text"))
    if not args.address:
        raise UsageError(
            f"user {args.action} needs an address",
            f"e.g. gitops-mail user {args.action} i@example.com",
        )
    user, domain = split_address(args.address)
    path = root / DOMAINS_DIR / domain / "users"
    create = args.action == "add" and args.create_domain
    db = _read_db(root, path, domain, create=create)
    db = _edit(args, db, user, domain)
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True)
        print(
            f"created {path.parent.relative_to(root)}; add `{domain}: {{}}` under domains: "
            "in gitops-mail.yaml"
        )
    localfs.atomic_write(path, U.render_users(db))
    rel = path.relative_to(root)
    print(f"{_DONE[args.action]} {user}@{domain} in {rel}; commit and push to apply it")
    return 0


_DONE = {"add": "added", "passwd": "changed the password of", "remove": "removed"}


def _checkout_root(path: Path) -> Path:
    """The top of the checkout ``path`` is in (a plain directory is its own top)."""
    try:
        root = gitplumbing.repo_toplevel(path)
    except RepoError:
        return path
    if gitplumbing.is_bare(root):
        raise UsageError(
            f"{path} is a bare repository: users are edited in a checkout",
            "git clone it, edit there, then commit and push",
        )
    return root


def split_address(address: str) -> tuple[str, str]:
    """``user@domain`` as chasquid stores it: normalised user, Unicode domain."""
    if address.count("@") != 1:
        raise UsageError(f"{address!r} is not an address", "give it as user@domain")
    user, domain = address.split("@")
    why = domainname.name_error(domain)
    normal_domain = normalize_domain(domain.rstrip("."))
    if why is None and normal_domain is None:
        why = "cannot be normalised as chasquid does"
    if not user or why is not None or normal_domain is None:
        raise UsageError(
            f"{address!r} is not a valid address"
            + (f": the domain {why}" if why else ": the user part is empty")
        )
    normal = U.normalize_user(user)
    if not normal or any(c.isspace() for c in normal):
        raise UsageError(f"{user!r} is not a valid user name")
    return normal, normal_domain


def _read_db(root: Path, path: Path, domain: str, *, create: bool) -> U.UserDB:
    domain_dir = path.parent
    if not domain_dir.is_dir() and not create:
        raise NotFound(
            f"unknown domain {domain!r}: {domain_dir.relative_to(root)} does not exist",
            "check the spelling, or pass --create-domain to add the domain "
            "(and add it under domains: in gitops-mail.yaml)",
        )
    if not path.exists():
        return U.UserDB(())
    db, found = U.parse_users(path.read_bytes(), str(path.relative_to(root)))
    if db is None:
        raise InvalidConfig(
            "cannot edit a users file that does not parse:\n"
            + "\n".join(p.format() for p in found),
            "fix the file first (git checkout it, or repair the line shown)",
        )
    return db


def _edit(args: argparse.Namespace, db: U.UserDB, user: str, domain: str) -> U.UserDB:
    exists = user in db.names()
    if args.action == "add" and exists:
        raise UsageError(
            f"{user}@{domain} already exists",
            f"use `gitops-mail user passwd {user}@{domain}` to change its password",
        )
    if args.action in ("passwd", "remove") and not exists:
        raise NotFound(
            f"there is no user {user}@{domain}", f"`gitops-mail user list {domain}` shows the users"
        )
    if args.action == "remove":
        return U.remove_user(db, user)
    password = _read_password(args.password_stdin)
    return U.set_user(db, user, U.hash_password(password))


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise UsageError(
            "there is no terminal to ask for the password", "pipe it in with --password-stdin"
        )
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the passwords do not match", "run the command again")
    if not password:
        raise UsageError("the password is empty", "give a non-empty password")
    return password


def _list(root: Path, which: str | None, form: str) -> int:
    state = load_state(read_worktree(root))
    wanted = domainname.normal_domain(which) if which else None
    if wanted is not None and wanted not in state.domains:
        raise NotFound(
            f"unknown domain {which!r}", f"the domains are the directories under {DOMAINS_DIR}/"
        )
    users = [
        {"address": f"{entry.name}@{name}", "scheme": U.describe_scheme(entry.scheme)}
        for name, domain in sorted(state.domains.items())
        if wanted in (None, name) and domain.users is not None
        for entry in domain.users.users
    ]
    if form == "json":
        print(json.dumps({"users": users}, indent=2, ensure_ascii=False))
    for user in users if form == "text" else ():
        print(f"{user['address']}\t{user['scheme']}")
    return 0
