"""chasquid's user-name normalisation: PRECIS ``UsernameCaseMapped`` (RFC 8265).

chasquid normalises the local part of every address with Go's
``precis.UsernameCaseMapped`` before it looks a user up, and chasquid-util does
the same before it writes one. A users-file key that is not in that form can
never log in. Go lower-cases without the Greek final-sigma rule, so we do too.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from gitops_mail.errors import GitopsMailError

if TYPE_CHECKING:
    from precis_i18n.profile import Username

_ASCII_NAME = re.compile(r"[!-~]+")  # printable ASCII but space: all valid, only case maps


class InvalidUserName(GitopsMailError, ValueError):
    """A name chasquid's normalisation refuses."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            f"user name {name!r} is not valid for chasquid: {reason}",
            "use letters, digits and ASCII punctuation (chasquid applies PRECIS,"
            " RFC 8265, to user names)",
        )
        self.name = name
        self.reason = reason


@functools.cache
def _profile() -> Username:
    """The PRECIS profile, as Go applies it; built on first use, as only names
    outside printable ASCII need it (and building it takes a while)."""
    from precis_i18n.profile import Username  # noqa: PLC0415 - see the docstring
    from precis_i18n.unicode import UnicodeData  # noqa: PLC0415

    class GoUsernameCaseMapped(Username):
        def case_mapping_rule(self, value: str) -> str:
            return "".join(char.lower() for char in value)  # no final-sigma context

    return GoUsernameCaseMapped(UnicodeData(), "UsernameCaseMapped")


_REASONS = {
    "empty": "it is empty",
    "spaces": "it contains a space",
    "controls": "it contains a control character",
    "has_compat": "it contains a compatibility character",
    "bidi_rule": "it mixes text directions against the Bidi rule",
    "symbols": "it contains a symbol",
    "punctuation": "it contains non-ASCII punctuation",
    "unassigned": "it contains an unassigned code point",
}


@functools.lru_cache(maxsize=65536)
def normalize_user(name: str) -> str:
    """The name chasquid stores and looks up for ``name``; ``InvalidUserName`` if none."""
    if _ASCII_NAME.fullmatch(name):
        return name.lower()
    try:
        return _profile().enforce(name)
    except UnicodeEncodeError as exc:
        raise InvalidUserName(name, _reason(exc)) from None


def _reason(exc: UnicodeEncodeError) -> str:
    code = exc.reason.removeprefix("DISALLOWED/")
    if code in _REASONS:
        return _REASONS[code]
    return f"PRECIS refuses it ({code.replace('_', ' ')})"
