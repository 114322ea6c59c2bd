"""Addresses as chasquid handles them: split, normalised, judged valid.

chasquid normalises a user with PRECIS ``UsernameCaseMapped`` (see
``users.names``) and a domain with IDNA-to-Unicode, NFC and lower case. Most of
its callers keep the input unchanged when normalisation fails, so both forms
are offered: ``user_or_raw`` (chasquid's lenient use) and the strict
functions that say it failed.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from gitops_mail.core.formats.users.names import InvalidUserName, normalize_user

# Go's unicode.IsSpace, which strings.TrimSpace uses (str.strip would also strip \x1c-\x1f).
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)
HAS_SPACE = re.compile(f"[{re.escape(GO_SPACE)}]")
_PLAIN_DOMAIN = re.compile(r"[!-~]*")
_PLAIN_ADDRESS = re.compile(r"[\w.+=*-]+(?:@[a-z0-9-]+(?:\.[a-z0-9-]+)*)?", re.ASCII | re.I)
_BAD_DOMAIN_CHARS = re.compile(r"[\x00-\x2c/:-@\[-\^`{-\x7f]")  # ASCII but [A-Za-z0-9._-]


def split_address(address: str) -> tuple[str, str]:
    """``user, domain`` at the first ``@`` (domain empty without one), like chasquid."""
    user, _, domain = address.partition("@")
    return user, domain


def go_lower(text: str) -> str:
    return "".join(char.lower() for char in text)  # per rune, no final-sigma context, like Go


def user_or_raw(user: str) -> str:
    """``normalize.User`` as chasquid uses it: the input itself where it is invalid."""
    try:
        return normalize_user(user)
    except InvalidUserName:
        return user


@lru_cache(maxsize=4096)
def normalize_domain(domain: str) -> str | None:
    """``normalize.Domain``: IDNA labels to Unicode, NFC, lower case; None if invalid."""
    if _PLAIN_DOMAIN.fullmatch(domain) and "xn--" not in domain:
        return domain.lower()
    labels = domain.split(".")
    for index, label in enumerate(labels):
        if label.startswith("xn--"):
            if label.rfind("-") == 4:  # Go refuses a delimiter first, Python does not
                return None
            try:
                labels[index] = label[4:].encode("ascii").decode("punycode")
            except ValueError:  # UnicodeError included
                return None
    return go_lower(unicodedata.normalize("NFC", ".".join(labels)))


def normalize_address(address: str) -> str | None:
    """``normalize.Addr``: user and domain normalised; None where either fails."""
    user, domain = split_address(address)
    normal_domain = normalize_domain(domain)
    try:
        normal_user = normalize_user(user)
    except InvalidUserName:
        return None
    return None if normal_domain is None else f"{normal_user}@{normal_domain}"


def address_problem(text: str) -> tuple[str, str] | None:
    """Why ``text`` (an aliases-file target) is not a deliverable address, and a fix.

    Stricter than chasquid, which keeps what it cannot normalise and fails at
    delivery. ``text`` may lack the domain (the file's own is added).
    """
    if _PLAIN_ADDRESS.fullmatch(text) and "xn--" not in text:
        return None
    found = _shape_problem(text)
    if found is not None:
        return found
    user, domain = split_address(text)
    if "@" in domain:
        return "it contains more than one '@'", ""
    if not user or ("@" in text and not domain):
        return f"nothing {'after' if user else 'before'} '@'", ""
    return _user_problem(user) or _domain_problem(domain)


def _shape_problem(text: str) -> tuple[str, str] | None:
    if text.startswith("|"):
        return "a pipe must be the whole right side", (
            "give the command an alias of its own (`name-cmd: | command`) and list that alias"
        )
    if " via " in text:
        return "'via' forwarding needs chasquid 1.16 and is not supported by gitops-mail", (
            "forward to the address without 'via'"
        )
    if "#" in text:
        return "a comment must be on a line of its own", "move the comment to its own line"
    if HAS_SPACE.search(text):
        return "it contains a space", "separate addresses with ','"
    return None


def _user_problem(user: str) -> tuple[str, str] | None:
    try:
        normalize_user(user)
    except InvalidUserName as exc:
        return f"the user part {user!r}: {exc.reason}", ""
    return None


def _domain_problem(domain: str) -> tuple[str, str] | None:
    if not domain:
        return None  # the file's own domain is added
    bad = not all(domain.split(".")) or _BAD_DOMAIN_CHARS.search(domain)
    if bad or normalize_domain(domain) is None:
        return f"{domain!r} is not a valid domain name", ""
    return None
