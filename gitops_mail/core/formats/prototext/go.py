r"""Text protobuf as Go's ``prototext`` reads it, checked with Python's ``text_format``.

Python's ``text_format`` checks structure, types and field names, but Go's
``prototext`` (what chasquid parses with) differs in the details. This module
lexes the text as Go does and hands Python the same text with each string
literal replaced by a same-length placeholder, so columns still match; string
values come from here, decoded with Go's escape rules.

Go accepts, Python does not:

- a bool written as the integer 0 or 1 in any Go spelling (``0x1``, ``00``);
- a UTF-16 surrogate pair written as two escapes (``"\ud83d\ude00"``).

Python accepts, Go does not:

- the number spellings ``+5``, ``1_0``, ``0o17`` and ``0b1``;
- whitespace other than space, tab, CR and LF (form feed, U+00A0, ...);
- an unknown escape such as ``\z`` (kept as written), a NUL inside a string.

Both reject, but Python words or places it differently, so the error here is
Go's: an escape out of range (``\400``) or making invalid UTF-8, a second
value for a singular field (Go points at its name), a missing ``:`` (at the
field name), a ``[`` where a field name should be. Escapes Python decodes
differently (Go reads ``\?`` as ``?``) do not matter: values come from here.

No error repeats the file: not the token, not the escape, not the character
(``words``); a field is named only when the caller's schema knows it.

Nothing here knows a message type: callers say which fields are bools and
which are singular.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Container
from dataclasses import dataclass, field
from typing import NamedTuple

from gitops_mail.core.formats.prototext import words
from gitops_mail.core.formats.prototext.library import TextParseError

LocatedError = tuple[int | None, int | None, str, str]  # line, column, message, hint

_TOKEN = re.compile(
    r"(?P<space>[ \t\r\n]+)|(?P<comment>#[^\n]*)"
    r"|(?P<string>\"(?:[^\"\\\n\x00]|\\[^\n\x00])*\"|'(?:[^'\\\n\x00]|\\[^\n\x00])*')"
    r"|(?P<word>[A-Za-z0-9_.+-]+)|(?P<punct>[:;,\[\]{}<>/])"
)
_NOT_GO_NUMBER = re.compile(r"\+|-?[0-9.].*_|-?0[oObB]")  # Python's int() takes these, Go not
# Patterns only some texts need are compiled on first use (re keeps them).
_GO_BOOL_NUMBER = r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*"  # Go takes 0/1 for bools
_ESCAPE = r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))"
_LOW_SURROGATE = r"\\u([dD][c-fC-F][0-9a-fA-F]{2})"
_SIMPLE_ESCAPES = {
    c: e.encode() for c, e in zip("abfnrtv\\'\"?", "\a\b\f\n\r\t\v\\'\"?", strict=True)
}
_STRING_HINT = 'a string is in quotes on one line; escapes: \\n \\t \\\\ \\" \\xNN \\NNN \\uNNNN'
_UNKNOWN = r'Message type "[\w.]+" has no field named "(.*)"\.$'


class Token(NamedTuple):
    kind: str  # "string", "word" or "punct"
    text: str
    offset: int
    data: bytes = b""  # a string's decoded bytes


@dataclass
class Field:
    """One top-level ``name: value`` (or ``name: [...]``), filled in while walking."""

    name: str
    line: int
    column: int
    runs: list[tuple[int, int, bytes]] = field(default_factory=list)  # line, column, bytes
    value: Token | None = None  # the value when it is a word (number, bool, identifier)


class Lexed:
    """Tokens of one text, the first lexical errors, and the text to hand to Python."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.tokens: list[Token] = []
        self.errors: list[LocatedError] = []
        self.subs: dict[int, str] = {}  # offset -> same-length replacement for Python
        self.py_text = text

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def fail(self, offset: int, message: str, hint: str) -> None:
        self.errors.append((*self.position(offset), f"syntax error: {message}", hint))

    def python_text(self, found: list[Field], bool_fields: Container[str]) -> str:
        """The text for ``text_format``: placeholders, and Go's 0/1 bools as Python reads them."""
        subs = dict(self.subs)
        for one in found:
            if one.name in bool_fields and one.value is not None:
                number = _go_bool_number(one.value.text)
                if number is not None:
                    subs[one.value.offset] = number.ljust(len(one.value.text))
        parts, pos = [], 0
        for offset in sorted(subs):
            parts += [self.text[pos:offset], subs[offset]]
            pos = offset + len(subs[offset])
        self.py_text = "".join([*parts, self.text[pos:]])
        return self.py_text

    def offset(self, line: int | None, column: int | None) -> int | None:
        """Where ``line:column`` is in the text, if it is in it."""
        if line is None or column is None or not 0 < line <= len(self.starts):
            return None
        return self.starts[line - 1] + column - 1


def _go_bool_number(text: str) -> str | None:
    if not re.fullmatch(_GO_BOOL_NUMBER, text):
        return None
    base = 16 if text[:2] in ("0x", "0X") else 8 if text.startswith("0") else 10
    number = int(text, base)
    return str(number) if number in (0, 1) else None


def lex(text: str) -> Lexed:
    """Tokenize ``text`` as Go does, recording what Go rejects in ``errors``."""
    lexed, pos = Lexed(text), 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        pos = _take(lexed, match) if match else _skip_bad(lexed, pos)
    return lexed


def _take(lexed: Lexed, match: re.Match[str]) -> int:
    kind, text, start = match.lastgroup or "", match.group(), match.start()
    if kind == "string":
        data = _unescape(text[1:-1])
        if isinstance(data, str):
            lexed.fail(start, data, _STRING_HINT)
        lexed.tokens.append(Token(kind, text, start, data if isinstance(data, bytes) else b""))
        lexed.subs[start] = text[0] + "x" * (len(text) - 2) + text[0]
    elif kind == "word" and _NOT_GO_NUMBER.match(text):
        lexed.fail(start, "invalid scalar value", "write numbers in decimal or 0x hex")
        lexed.tokens.append(Token(kind, "0", start))
        lexed.subs[start] = "0".ljust(len(text))
    elif kind in ("word", "punct"):
        lexed.tokens.append(Token(kind, text, start))
    return match.end()


def _skip_bad(lexed: Lexed, pos: int) -> int:
    text, char = lexed.text, lexed.text[pos]
    if char not in "\"'":
        hint = "remove it: only spaces, tabs and line breaks may separate settings"
        lexed.fail(pos, f"unexpected {words.character_kind(char)}", hint)
        lexed.subs[pos] = " "
        return pos + 1
    end = text.find("\n", pos) % (len(text) + 1)  # -1 (no newline) becomes len(text)
    nul = "\x00" in text[pos:end]
    lexed.fail(
        pos, "invalid character '\\x00' in string" if nul else "unterminated string", _STRING_HINT
    )
    lexed.subs[pos] = " " * (end - pos)
    return end


def _unescape(body: str) -> bytes | str:
    """Go's decoding of a string literal's body: its bytes, or an error message."""
    if "\\" not in body:
        return body.encode("utf-8")
    out, pos, escape = bytearray(), 0, re.compile(_ESCAPE, re.DOTALL)
    while (match := escape.search(body, pos)) is not None:
        out += body[pos : match.start()].encode("utf-8")
        piece, pos = _escape(body, match)
        if isinstance(piece, str):
            return piece
        out += piece
    return bytes(out + body[pos:].encode("utf-8"))


def _escape(body: str, match: re.Match[str]) -> tuple[bytes | str, int]:
    octal, hexa, short, long, other = match.groups()
    bad = "invalid escape code in string"
    if octal:
        return (bytes([int(octal, 8)]) if int(octal, 8) < 256 else bad), match.end()
    if hexa:
        return bytes([int(hexa, 16)]), match.end()
    if other is not None:
        return _SIMPLE_ESCAPES.get(other, bad), match.end()
    code, end = int(short or long, 16), match.end()
    low = re.compile(_LOW_SURROGATE).match(body, end)
    if 0xD800 <= code < 0xDC00 and low:  # a UTF-16 surrogate pair, as Go accepts
        code, end = 0x10000 + ((code - 0xD800) << 10) + int(low.group(1), 16) - 0xDC00, low.end()
    if 0xD800 <= code < 0xE000 or code > 0x10FFFF:
        return bad, end
    return chr(code).encode("utf-8"), end


def walk(lexed: Lexed) -> list[Field]:
    """Each ``name: value`` at the top level, with where it starts and its strings."""
    tokens, found, i = lexed.tokens, [], 0
    while i < len(tokens):
        name = tokens[i]
        i += 1
        if name.kind != "word":
            continue
        one = Field(name.text, *lexed.position(name.offset))
        found.append(one)
        i += 1 if i < len(tokens) and tokens[i].text == ":" else 0
        if i < len(tokens) and tokens[i].text == "[":
            i += 1
            while i < len(tokens) and tokens[i].text != "]":
                i = _value(lexed, i, one)
            i += 1
        elif i < len(tokens):
            i = _value(lexed, i, one)
        i += 1 if i < len(tokens) and tokens[i].text in (";", ",") else 0
    return found


def _value(lexed: Lexed, i: int, one: Field) -> int:
    tokens, first = lexed.tokens, lexed.tokens[i]
    if first.kind == "word":
        one.value = first
    if first.kind != "string":
        return i + 1
    data = b""
    while i < len(tokens) and tokens[i].kind == "string":  # "a" "b" is "ab"
        data += tokens[i].data
        i += 1
    one.runs.append((*lexed.position(first.offset), data))
    return i


def repeated_errors(found: list[Field], singular: Container[str]) -> list[LocatedError]:
    """A second ``name:`` of a singular field; Go stops at the name, before the value."""
    first: dict[str, int] = {}
    errors: list[LocatedError] = []
    for one in found:
        if one.name not in singular:
            continue
        if one.name in first:
            hint = f"keep one {one.name} line (it is first set on line {first[one.name]})"
            message = f'non-repeated field "{one.name}" is repeated'
            errors.append((one.line, one.column, message, hint))
        first.setdefault(one.name, one.line)
    return errors


def utf8_errors(found: list[Field], known: Container[str]) -> list[LocatedError]:
    """A string value whose escapes made bytes that are not UTF-8 (Go's proto3 refuses it).

    The field is named only when it is one of ``known``: any other name is the file's."""
    errors: list[LocatedError] = []
    for one in found:
        for line, column, data in one.runs:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                hint = "an escape such as \\xNN or \\NNN made bytes that are not UTF-8"
                what = f'field "{one.name}"' if one.name in known else "a string"
                errors.append((line, column, f"{what} contains invalid UTF-8", hint))
    return errors


def unknown_field(err: TextParseError) -> str | None:
    """The field name when a Python error is about an unknown field: the file's own
    text, for a did-you-mean among known names only, never to be shown."""
    unknown = re.match(_UNKNOWN, err.message)
    return unknown.group(1) if unknown else None


def go_error(
    err: TextParseError, lexed: Lexed, found: list[Field], hint: str, fields: words.Fields
) -> LocatedError:
    """A Python error with Go's wording and position where they differ, else in the
    allow-listed ``words`` (naming only fields of ``fields``)."""
    message, where = err.message, (err.line or 0, err.column or 0)
    if message == 'Expected ":".':  # Go points at the field name
        before = [(f.line, f.column) for f in found if (f.line, f.column) < where]
        line, column = before[-1] if before else where
        return line, column, 'syntax error: missing field separator ":"', hint
    bracket = [t for t in lexed.tokens if lexed.position(t.offset) < where][-1:]
    if bracket and bracket[0].text == "[" and ("extensions" in message or "identifier." in message):
        line, column = lexed.position(bracket[0].offset)  # Go points at the "["
        return line, column, 'syntax error: "[" where a field name should be', hint
    offset = lexed.offset(err.line, err.column)
    field = None if offset is None else words.field_before(lexed.py_text, offset, fields)
    return err.line, err.column, f"syntax error: {words.describe(message, fields, field)}", hint
