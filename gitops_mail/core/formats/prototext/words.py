"""Parse errors in our own words: an allow-list, never a token of the file.

The protobuf library's messages quote the token they stopped at (``has no field
named "<token>"``, ``Couldn't parse integer: <token>``, ``Expected string but
found: '<token>'``), and a users file's token may be a salt or a hash. ``describe``
says what kind of mistake it is, from a fixed list of phrases, and names a field
only when the schema defines it: nothing read from the file gets through, not
even a byte. A message not on the list becomes a generic phrase; the position
(line, column) is what points at the mistake.

``character_kind`` does the same for a stray character: its kind, not the character.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping

Fields = Mapping[str, Collection[str]]  # message type's full name -> its field names
_Rule = tuple[str, Callable[[re.Match[str], Fields, str | None], str]]

GENERIC = "the text here does not fit the file's format"
_PUNCTUATION = frozenset("{}<>[]:;,/")
_IDENTIFIER_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t\r\n]*:?[ \t\r\n]*\[?[ \t\r\n]*$")


def _unknown(found: re.Match[str], fields: Fields, _: str | None) -> str:
    names = fields.get(found.group(1), ())
    return f"unknown field (here: {', '.join(names)})" if names else "unknown field"


def _twice(found: re.Match[str], fields: Fields, _: str | None) -> str:
    name = found.group(2)
    return f'field "{name}" is set twice' if name in fields.get(found.group(1), ()) else GENERIC


def _exclusive(found: re.Match[str], fields: Fields, _: str | None) -> str:
    known = fields.get(found.group(3), ())
    first, second = found.group(1), found.group(2)
    if first in known and second in known:
        return f'"{first}" and "{second}" cannot both be set (only one of them)'
    return "two fields that exclude each other are both set"


def _punctuation(found: re.Match[str], fields: Fields, _: str | None) -> str:
    mark = found.group(1)
    return f'expected "{mark}"' if mark in _PUNCTUATION else GENERIC


def _value(words: str) -> Callable[[re.Match[str], Fields, str | None], str]:
    def say(found: re.Match[str], fields: Fields, field: str | None) -> str:
        return f"{words} for {field}" if field else words

    return say


def _fixed(words: str) -> Callable[[re.Match[str], Fields, str | None], str]:
    return lambda found, fields, field: words


_OCTAL = (
    "a string has an octal escape past \\377, which chasquid refuses "
    "(octal escapes are \\000 to \\377)"
)
_EXCLUSIVE = (
    r'Field "(\w+)" is specified along with field "(\w+)", '
    r'[^"]*"\w+" for message type "([\w.]+)"'
)
# Checked in order; each pattern is matched at the start of the library's message.
_RULES: tuple[_Rule, ...] = (
    (r'Message type "([\w.]+)" has no field named ', _unknown),
    (r'Message type "([\w.]+)" should not have multiple "(\w+)" ', _twice),
    (_EXCLUSIVE, _exclusive),
    (r"Couldn't parse (?:integer|float)", _value("expected a number")),
    (r"Value out of range", _value("number out of range")),
    (r'Expected "true" or "false"', _value("expected true or false")),
    (r"Expected string but found", _value("expected a quoted string")),
    (r"String missing ending quote", _fixed("a string has no closing quote")),
    (r"Couldn't parse string", _fixed("a string is not valid UTF-8 once its escapes are read")),
    (r"'latin-1' codec can't encode", _fixed(_OCTAL)),
    (r"'\w+' codec", _fixed("a string has an escape sequence that cannot be read")),
    (r"Expected identifier", _fixed("expected a field name")),
    (r'Expected "(.)"\.$', _punctuation),
    (r'Message type "[\w.]+" does not have extensions', _fixed('"[" where a field name should be')),
    (r"Extension ", _fixed('"[" where a field name should be')),
    (r"Invalid field value", _value("invalid field value")),
    (r"Message too deep", _fixed("messages nested too deeply")),
)


def describe(message: str, fields: Fields, field: str | None = None) -> str:
    """Our words for the library's ``message`` (its line prefix removed).

    ``fields``: the schema, the only names that may be said; ``field``: the
    field whose value was being read, if the caller found it (``field_before``).
    """
    known = {name for names in fields.values() for name in names}
    for pattern, say in _RULES:
        found = re.match(pattern, message)
        if found:
            return say(found, fields, field if field in known else None)
    return GENERIC


def field_before(text: str, offset: int, fields: Fields) -> str | None:
    """The schema's field whose value starts at ``offset`` of ``text`` (``name: value``)."""
    found = _IDENTIFIER_BEFORE.search(text, 0, offset)
    known = {name for names in fields.values() for name in names}
    return found.group(1) if found and found.group(1) in known else None


def character_kind(char: str) -> str:
    """What sort of character ``char`` is (``unexpected <kind>``), in words that do not show it."""
    import unicodedata  # noqa: PLC0415 - only a stray character needs it

    category = unicodedata.category(char)
    if category == "Zs":
        return "special space (such as a no-break space)"
    if category in ("Zl", "Zp"):
        return "Unicode line or paragraph separator"
    if category == "Cc":
        return "control character"
    if category == "Cf":
        return "invisible formatting character (such as a byte order mark)"
    return "character"
