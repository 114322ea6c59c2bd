"""The users database as data, and the text layer under ``formats.users``.

Three pieces that work on the text itself: a fast reader for the layout that
chasquid-util and ``render_users`` write, checked against the protobuf library
by property tests; a scanner that finds each entry's line in any text the
library accepted (and the whitespace Go refuses but the library takes); and
Go's way of quoting bytes.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass
from typing import NamedTuple


# Frozen dataclasses, not tuples: ``logs`` redacts their reprs (``salt=b'...'``), and would
# take a tuple apart item by item instead, where a salt is just some bytes.
@dataclass(frozen=True)
class Scrypt:
    log_n: int
    r: int
    p: int
    key_len: int
    salt: bytes
    encrypted: bytes


@dataclass(frozen=True)
class Plain:
    password: bytes


@dataclass(frozen=True)
class Denied:
    pass


Scheme = Scrypt | Plain | Denied | None


class User(NamedTuple):
    """One entry; ``line`` is where its ``key:`` is (0 when not read from a file).

    A tuple, as files hold thousands of entries and a tuple is built several times
    faster than a frozen dataclass."""

    name: str
    scheme: Scheme
    line: int


@dataclass(frozen=True)
class UserDB:
    users: tuple[User, ...] = ()

    def by_name(self) -> dict[str, User]:
        """Name to entry; of duplicates the last wins, as in chasquid."""
        return {user.name: user for user in self.users}

    def names(self) -> frozenset[str]:
        return frozenset(user.name for user in self.users)


# Go's text format takes only these four as whitespace; so does the fast reader. What
# follows whitespace never starts with it, so giving some back cannot help: possessive.
# An optional part is written ``(?:part|)``, not ``(?:part)?``: the same match, and ``re``
# runs a branch faster than its general repeat.
_W = r"[ \t\r\n]*+"
# The escapes Go and the protobuf library write; any other form goes to the library.
# Octal stops at \377: ``codecs.escape_decode`` would warn on more, the library refuses it.
_ESCAPE = r"""\\(?:["'\\nrt]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[0-3][0-7]{2})"""
_END_OF_NUMBER = r"(?![0-9A-Za-z_.+-])"  # the library reads all of these into one token


def _str(group: str) -> str:
    # Runs of plain characters between escapes ("unrolled"): one step per run, not per character.
    plain = r'[^"\\\n\x00]*+'
    return rf'"(?P<{group}>{plain}(?:{_ESCAPE}{plain})*+)"{_W}'


def _num(name: str, group: str, signed: bool) -> str:
    sign = "-?" if signed else ""
    return rf"(?:{name}{_W}:{_W}(?P<{group}>{sign}(?:0|[1-9][0-9]*)){_END_OF_NUMBER}{_W}|)"


def _msg(name: str, body: str, group: str | None = None) -> str:
    opening = f"(?P<{group}>{name})" if group else name
    return rf"{opening}{_W}:?{_W}\{{{_W}{body}\}}{_W}"


@functools.cache
def _entry() -> re.Pattern[str]:
    """One top-level entry, compiled on first use (a few ms). Its groups, in the order
    ``fast_parse`` unpacks them: k key scrypt logn r p keylen salt enc plain pw denied."""
    scrypt_body = (
        _num("logN", "logn", signed=False)
        + _num("r", "r", signed=True)
        + _num("p", "p", signed=True)
        + _num("keyLen", "keylen", signed=True)
        + rf"(?:salt{_W}:{_W}{_str('salt')}|)"
        + rf"(?:encrypted{_W}:{_W}{_str('enc')}|)"
    )
    plain_body = rf"(?:password{_W}:{_W}{_str('pw')}|)"
    scheme = "|".join(
        (
            _msg("scrypt", scrypt_body, "scrypt"),
            _msg("plain", plain_body, "plain"),
            _msg("denied", "", "denied"),
        )
    )
    body = rf"(?:(?P<k>key){_W}:{_W}{_str('key')}|)(?:value{_W}:?{_W}\{{{_W}(?:{scheme}|)\}}{_W}|)"
    return re.compile(_msg("users", body))


_SPACE = re.compile(_W)
_ESCAPE_DECODE = codecs.escape_decode  # Python's bytes-literal escapes: those above alike
_UINT64_MAX = 2**64 - 1
_INT32 = range(-(2**31), 2**31)
# Builds a ``User`` without the argument handling of its generated ``__new__``.
_new_tuple = tuple.__new__


def fast_parse(text: str) -> UserDB | None:
    """Read ``text`` if it is in the canonical layout, else ``None``.

    Whatever this accepts, ``text_format`` reads to the same entries: it takes
    only the escapes that Python's bytes literals read alike (``\\u`` goes to the
    library's own unescaping), and numbers must be in range.
    """
    pos = _SPACE.match(text).end()  # type: ignore[union-attr]  # `*` always matches
    users: list[User] = []
    line, counted = 1, 0
    for found in _entry().finditer(text, pos):
        if found.start() != pos:  # something between two entries
            return None
        k, key, scrypt, logn, r, p, keylen, salt, enc, plain, pw, denied = found.groups()
        where = found.start(1) if k else pos
        line += text.count("\n", counted, where)
        counted = where
        try:
            name = key if key and "\\" not in key else _decode(key).decode("utf-8")
            if scrypt:
                numbers = _NUMBERS.get((logn, r, p, keylen)) or _numbers(logn, r, p, keylen)
                scheme: Scheme = Scrypt(*numbers, _decode(salt), _decode(enc))
            elif plain:
                scheme = Plain(_decode(pw))
            else:
                scheme = Denied() if denied else None
        except ValueError:  # bad UTF-8, bad escape, number out of range
            return None
        users.append(_new_tuple(User, (name, scheme, line)))
        pos = found.end()
    return UserDB(tuple(users)) if pos == len(text) else None


# The scrypt parameters as written to their values: a file repeats the same few on every entry.
_NUMBERS: dict[tuple[str | None, ...], tuple[int, int, int, int]] = {}


def _numbers(
    log_n: str | None, r: str | None, p: str | None, key_len: str | None
) -> tuple[int, int, int, int]:
    n = int(log_n or 0)
    if n > _UINT64_MAX:
        raise ValueError("logN out of range")
    numbers = n, _int32(r), _int32(p), _int32(key_len)
    if len(_NUMBERS) < 256:
        _NUMBERS[log_n, r, p, key_len] = numbers
    return numbers


def _int32(digits: str | None) -> int:
    value = int(digits or 0)
    if value not in _INT32:
        raise ValueError("int32 out of range")
    return value


def _decode(escaped: str | None) -> bytes:
    if not escaped:
        return b""
    if "\\u" not in escaped:  # the escapes left mean the same in Python's bytes literals
        return _ESCAPE_DECODE(escaped)[0]
    from google.protobuf import text_encoding  # noqa: PLC0415 - rare; protobuf is slow to import

    return bytes(text_encoding.CUnescape(escaped))


class Refusal(NamedTuple):
    """Something the protobuf library reads but Go's reader (chasquid) refuses."""

    line: int
    column: int
    why: str


@functools.cache
def _scanner() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Tokens, and what is in a string: for text the fast reader did not take only."""
    tokens = re.compile(
        r"""(?P<str>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)
          |(?P<comment>\#[^\n]*)
          |(?P<number>(?:[0-9+-]|\.[0-9])[0-9A-Za-z_.+-]*)
          |(?P<name>[A-Za-z_][0-9A-Za-z_+-]*)
          |(?P<open>[{<])
          |(?P<close>[}>])
          |(?P<newline>\n)
          |(?P<stray>[^\S \t\r\n])
          |.""",
        re.VERBOSE,
    )
    # Escapes both readers decode alike; anything else in a string is refused.
    in_string = re.compile(
        r"""\\(?:["'\\abfnrtv]|[0-7]{1,3}|x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})"""
        r"|(?P<escape>\\)|(?P<nul>\x00)"
    )
    return tokens, in_string


_STRAY = "unexpected {} between fields (chasquid accepts only spaces, tabs and line breaks there)"
_ESCAPE_WHY = "a string has an escape sequence chasquid does not accept"
_NUL_WHY = "a string contains a raw NUL character (write it as \\000)"


def scan_entries(text: str) -> tuple[list[int], Refusal | None]:
    """Line of each top-level entry's ``key`` (else of its brace), and the first
    spot Go's reader refuses. The lines are right for text the library read."""
    lines: list[int] = []
    depth, line, line_start = 0, 1, 0
    refusal: Refusal | None = None
    for token in _scanner()[0].finditer(text):
        kind = token.lastgroup
        if kind == "newline":
            line, line_start = line + 1, token.end()
        elif kind == "open":
            if depth == 0:
                lines.append(line)
            depth += 1
        elif kind == "close":
            depth = max(depth - 1, 0)
        elif kind == "name" and depth == 1 and token.group() == "key":
            lines[-1] = line
        elif refusal is None and kind in ("stray", "str"):
            refusal = _refusal(token, line, token.start() - line_start + 1)
    return lines, refusal


def _refusal(token: re.Match[str], line: int, column: int) -> Refusal | None:
    if token.lastgroup == "stray":  # said by its kind: the character itself is the file's
        from gitops_mail.core.formats.prototext.words import (  # noqa: PLC0415 - rare
            character_kind,
        )

        return Refusal(line, column, _STRAY.format(character_kind(token.group())))
    for part in _scanner()[1].finditer(token.group()):
        if part.lastgroup == "escape":
            return Refusal(line, column + part.start(), _ESCAPE_WHY)
        if part.lastgroup == "nul":
            return Refusal(line, column + part.start(), _NUL_WHY)
    return None


def _quote_table() -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}
    table.update({c: f"\\u{c:04x}" for c in range(0x80, 0xA0)})
    table.update({0xDC00 + b: f"\\x{b:02x}" for b in range(0x80, 0x100)})  # surrogateescape
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
    table.update({ord('"'): '\\"', ord("\\"): "\\\\"})
    return table


_QUOTE = _quote_table()


def quote(data: bytes) -> str:
    """Go's quoting: valid UTF-8 runs as they are, other bytes as ``\\xNN``."""
    return '"' + data.decode("utf-8", "surrogateescape").translate(_QUOTE) + '"'
