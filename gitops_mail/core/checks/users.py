"""Checks of one domain's users database, beyond what it takes to parse it.

chasquid loads a users file with bad names, duplicates or absurd scrypt
parameters without a word; the damage shows only when someone tries to log in
(or, with ``logN: 0``, when chasquid panics on that login). We say so before.
"""

from __future__ import annotations

import re

from gitops_mail.core.formats.users.db import (
    Denied,
    InvalidUserName,
    Plain,
    Scrypt,
    User,
    UserDB,
    normalize_user,
)
from gitops_mail.core.problems import Problem, error, warning

_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_MAX_SCRYPT_BYTES = 1 << 30  # 1 GiB per login: more than a small server can spare


def check_users(
    db: UserDB, path: str, domain: str, *, chasquid_version: tuple[int, int]
) -> list[Problem]:
    """Every problem of ``db`` (read from ``path``, the users of ``domain``)."""
    if not db.users:
        return [_empty(path, domain)]
    names = [user.name for user in db.users]
    if len(set(names)) != len(names) or not _PLAIN_NAMES.fullmatch("\n".join(names)):
        return _each_user(db, path, domain, chasquid_version)
    found: list[Problem] = []  # no name twice, all valid and normalised: the usual case
    for user in db.users:
        scheme = user.scheme
        if type(scheme) is not Scrypt or not _sound(scheme):
            found += _check_scheme(path, user, domain, chasquid_version)
    return found


# Lower-case printable ASCII but "@": valid and normalised already (most names).
_PLAIN_NAME = "[!-?\\[-~]+"
_PLAIN_NAMES = re.compile(f"{_PLAIN_NAME}(?:\n{_PLAIN_NAME})*")


def _each_user(db: UserDB, path: str, domain: str, version: tuple[int, int]) -> list[Problem]:
    found: list[Problem] = []
    first_line: dict[str, int] = {}
    for user in db.users:
        if user.name in first_line:
            found.append(_duplicate(path, user, first_line[user.name]))
        else:
            first_line[user.name] = user.line
            found += _check_name(path, user, domain)
        found += _check_scheme(path, user, domain, version)
    return found


def _sound(s: Scrypt) -> bool:
    """``_scrypt_flaws(s)`` is empty: the usual case, checked without building a list."""
    return (
        10 <= s.log_n <= 20
        and s.r >= 1
        and s.p >= 1
        and s.key_len >= 16
        and len(s.salt) >= 8
        and len(s.encrypted) == s.key_len
        and 128 * s.r << s.log_n <= _MAX_SCRYPT_BYTES
    )


def _empty(path: str, domain: str) -> Problem:
    return warning(
        path,
        None,
        "users.empty",
        f"users file has no users: chasquid drops every user of {domain}",
        f"add one with `gitops-mail user add USER@{domain}`,"
        f" or delete the file if {domain} should have no users",
    )


def _duplicate(path: str, user: User, first: int) -> Problem:
    return error(
        path,
        user.line,
        "users.duplicate",
        f"user {user.name!r} is listed again (first at line {first});"
        " chasquid keeps only the last entry",
        "remove one of the two entries",
    )


def _check_name(path: str, user: User, domain: str) -> list[Problem]:
    name = user.name
    why = _name_flaw(name)
    if why is None:
        try:
            normal = normalize_user(name)
        except InvalidUserName as exc:
            why = exc.reason
        else:
            if normal == name:
                return []
            return [
                error(
                    path,
                    user.line,
                    "users.name_not_normalized",
                    f"user name {name!r} is not in chasquid's normalised form:"
                    " nobody can log in as it",
                    f"rename it to {normal!r}: chasquid looks up {normal}@{domain}",
                )
            ]
    hint = "remove the entry and add the user again with `gitops-mail user add`"
    message = f"user name {name!r} is not valid for chasquid: {why}"
    return [error(path, user.line, "users.name_invalid", message, hint)]


def _name_flaw(name: str) -> str | None:
    if not name:
        return "it is empty"
    if "@" in name:
        return "it contains '@' (the file holds only the part before the domain)"
    if _BAD_CHARS.search(name):
        return "it contains whitespace or a control character"
    return None


def _check_scheme(path: str, user: User, domain: str, version: tuple[int, int]) -> list[Problem]:
    scheme, name = user.scheme, user.name
    passwd = f"set a new password with `gitops-mail user passwd {name}@{domain}`"
    if isinstance(scheme, Scrypt):
        flaws = _scrypt_flaws(scheme)
        if not flaws:
            return []
        if _crashes_chasquid(scheme):
            flaws[-1] += " (chasquid crashes when anyone tries to log in as this user)"
        message = f"user {name!r}: " + "; ".join(flaws)
        return [error(path, user.line, "users.scrypt_params", message, passwd)]
    if isinstance(scheme, Plain):
        message = f"user {name!r} has its password stored in clear (plain scheme)"
        return [warning(path, user.line, "users.plain", message, passwd)]
    if isinstance(scheme, Denied):
        return _check_denied(path, user, domain, version)
    message = f"user {name!r} has no password scheme: nobody can log in as it"
    return [error(path, user.line, "users.no_scheme", message, passwd)]


def _check_denied(path: str, user: User, domain: str, version: tuple[int, int]) -> list[Problem]:
    if version >= (1, 13):
        return []
    shown = ".".join(map(str, version))
    return [
        error(
            path,
            user.line,
            "users.denied_unsupported",
            f"user {user.name!r} is receive-only (denied), which chasquid {shown} does not"
            " know: it refuses the whole users file (receive-only users need 1.13)",
            "if the server runs chasquid 1.13 or later, set `chasquid.version` in"
            " gitops-mail.yaml; otherwise give the user a password with"
            f" `gitops-mail user passwd {user.name}@{domain}`",
        )
    ]


def _crashes_chasquid(s: Scrypt) -> bool:
    """Where Go's scrypt errors or panics: chasquid then panics on the login attempt."""
    sane = 1 <= s.log_n <= 62 and s.r >= 1 and s.p >= 1 and s.r * s.p < 2**30
    return not sane or s.key_len < 0


def _scrypt_flaws(s: Scrypt) -> list[str]:
    flaws: list[str] = []
    if not 10 <= s.log_n <= 20:
        flaws.append(f"scrypt logN is {s.log_n}, outside the safe range 10..20")
    if s.r < 1:
        flaws.append(f"scrypt r is {s.r}, must be at least 1")
    if s.p < 1:
        flaws.append(f"scrypt p is {s.p}, must be at least 1")
    if s.key_len < 16:
        opens = " (chasquid accepts any password)" if s.key_len == 0 and not s.encrypted else ""
        flaws.append(f"scrypt keyLen is {s.key_len}, must be at least 16{opens}")
    if len(s.salt) < 8:
        flaws.append(f"scrypt salt is {len(s.salt)} bytes, must be at least 8")
    if len(s.encrypted) != s.key_len and s.key_len >= 16:
        flaws.append(
            f"scrypt hash is {len(s.encrypted)} bytes but keyLen is {s.key_len}:"
            " no password can match"
        )
    if not flaws and 128 * s.r << s.log_n > _MAX_SCRYPT_BYTES:
        mib = (128 * s.r << s.log_n) >> 20
        flaws.append(f"scrypt needs {mib} MiB per login (logN {s.log_n}, r {s.r}), more than 1024")
    return flaws
