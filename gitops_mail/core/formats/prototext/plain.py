"""Plain text protobuf: the files Go's ``prototext`` and Python's ``text_format`` read alike.

A plain text is only ``name: value`` entries of known scalar fields, each
optionally followed by ``;`` or ``,``: strings in quotes (adjacent literals
join), lists of them in ``[...]`` for repeated fields, decimal numbers in range
(no sign, no leading zero) and ``true``/``false`` for bools. Both parsers accept
such a text and agree on every value, so a caller that checked the lexer found
no error (``go``) can take the values from the tokens without the
protobuf library. Anything else goes to the library, which judges it.

Field kinds: ``str``, ``opt`` (a proto3 ``optional`` string), ``list`` (a
repeated string), ``bool``, ``int64``, ``uint32``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gitops_mail.core.formats.prototext.go import Field, Token

INT_MAX = {"int64": 2**63 - 1, "uint32": 2**32 - 1}
_NUMBER = re.compile(r"0|[1-9][0-9]*")
_BOOLS = {"true": True, "false": False}


def is_plain(tokens: list[Token], kinds: Mapping[str, str]) -> bool:
    """Whether ``tokens`` are plain entries of the fields in ``kinds``."""
    i, count = 0, len(tokens)
    while i < count:
        name = tokens[i]
        if name.kind != "word" or name.text not in kinds or i + 2 >= count:
            return False
        if tokens[i + 1].text != ":":
            return False
        i = _value_end(tokens, i + 2, kinds[name.text])
        if i < 0:
            return False
        if i < count and tokens[i].text in (";", ","):
            i += 1
    return True


def scalars(found: list[Field], kinds: Mapping[str, str]) -> dict[str, object]:
    """The numbers and bools of a plain text with no singular field set twice."""
    values: dict[str, object] = {}
    for one in found:
        kind = kinds[one.name]
        if kind in ("bool", "int64", "uint32") and one.value is not None:
            text = one.value.text
            values[one.name] = _BOOLS[text] if kind == "bool" else int(text)
    return values


def _value_end(tokens: list[Token], i: int, kind: str) -> int:
    """The index after a plain value of ``kind`` starting at ``i``; -1 if it is not plain."""
    first = tokens[i]
    if kind in INT_MAX:
        plain = first.kind == "word" and _NUMBER.fullmatch(first.text) is not None
        return i + 1 if plain and int(first.text) <= INT_MAX[kind] else -1
    if kind == "bool":
        return i + 1 if first.kind == "word" and first.text in _BOOLS else -1
    if kind == "list" and first.text == "[":
        return _list_end(tokens, i + 1)
    return _strings_end(tokens, i)


def _list_end(tokens: list[Token], i: int) -> int:
    """The index after ``"a", "b" ]`` (the ``[`` is before ``i``); -1 if it is not plain."""
    if i < len(tokens) and tokens[i].text == "]":
        return i + 1
    while True:
        i = _strings_end(tokens, i)
        if i < 0 or i >= len(tokens) or tokens[i].text not in (",", "]"):
            return -1
        if tokens[i].text == "]":
            return i + 1
        i += 1


def _strings_end(tokens: list[Token], i: int) -> int:
    """The index after adjacent string literals (one value) at ``i``; -1 if none."""
    end = i
    while end < len(tokens) and tokens[end].kind == "string":
        end += 1
    return end if end > i else -1
