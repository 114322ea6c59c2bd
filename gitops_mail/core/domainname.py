"""DNS names as chasquid and DNS see them: one place for the rules.

Domain directory names, the hostname, manifest domains and DKIM selectors are
all checked here, so every check agrees on what a valid name is.
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAX_NAME = 253


def to_ascii(name: str) -> str | None:
    """The lower-case A-label form of ``name`` (IDNA), or None if it cannot be encoded."""
    try:
        labels = [_label_to_ascii(label) for label in name.rstrip(".").split(".")]
    except UnicodeError:
        return None
    return ".".join(labels)


def to_unicode(name: str) -> str:
    """The lower-case U-label form (how chasquid names domain directories)."""
    try:
        return ".".join(
            label.encode("ascii").decode("idna") if label.startswith("xn--") else label
            for label in name.lower().split(".")
        )
    except UnicodeError:
        return name.lower()


def _label_to_ascii(label: str) -> str:
    if label.isascii():
        return label.lower()
    return label.lower().encode("idna").decode("ascii")


def name_error(name: str, *, min_labels: int = 2) -> str | None:
    """Why ``name`` is not a valid host or domain name, or None if it is."""
    if not name:
        return "is empty"
    ascii_name = to_ascii(name)
    if ascii_name is None:
        return "cannot be encoded as an internationalised domain name"
    if len(ascii_name) > _MAX_NAME:
        return f"is longer than {_MAX_NAME} characters"
    labels = ascii_name.split(".")
    if len(labels) < min_labels:
        return f"needs at least {min_labels} labels (like mail.example.com)"
    for label in labels:
        if not _LABEL.match(label):
            return f"has an invalid label {label!r} (letters, digits and '-' only, 1-63 characters)"
    return None


def label_error(label: str) -> str | None:
    """Why ``label`` is not a valid single DNS label (a DKIM selector), or None."""
    if not _LABEL.match(label.lower()):
        return "must be 1-63 letters, digits or '-', not starting or ending with '-'"
    return None


def normal_domain(name: str) -> str:
    """The form chasquid uses for a domain directory: lower case, Unicode labels."""
    return to_unicode(name.rstrip("."))
