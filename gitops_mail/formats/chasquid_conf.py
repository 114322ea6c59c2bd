"""chasquid's ``chasquid.conf``: parse it the way chasquid does, render it, diff it.

The file is text protobuf for upstream's ``internal/config/config.proto``.
chasquid applies a value from the file only when it is "set": non-zero, or
for the two ``optional`` fields, present. So ``max_data_size_mb: 0`` and
``hostname: ""`` leave the default in place. ``ChasquidConfig`` holds the
values chasquid ends up with; the values it skips are kept in ``ignored``.

``protobuf``'s ``text_format`` checks structure, types, unknown and repeated
fields. chasquid parses with Go's ``prototext``, which differs in a few
places; the lexer here covers them (string escapes and UTF-8, number
spellings, whitespace) and finds where each field is.
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from google.protobuf import descriptor_pb2, text_format

from gitops_mail.formats import textproto
from gitops_mail.problems import Problem

_F = descriptor_pb2.FieldDescriptorProto
_TYPES = {"str": _F.TYPE_STRING, "opt": _F.TYPE_STRING, "list": _F.TYPE_STRING}
_TYPES |= {"bool": _F.TYPE_BOOL, "int64": _F.TYPE_INT64, "uint32": _F.TYPE_UINT32}

# name: (field number, kind, first chasquid release whose config.proto has it)
_FIELDS: dict[str, tuple[int, str, tuple[int, int]]] = {
    "hostname": (1, "str", (0, 1)),
    "max_data_size_mb": (2, "int64", (0, 1)),
    "smtp_address": (3, "list", (0, 1)),
    "submission_address": (4, "list", (0, 1)),
    "submission_over_tls_address": (5, "list", (0, 3)),
    "monitoring_address": (6, "str", (0, 1)),
    "mail_delivery_agent_bin": (7, "str", (0, 1)),
    "mail_delivery_agent_args": (8, "list", (0, 1)),
    "data_dir": (9, "str", (0, 1)),
    "suffix_separators": (10, "opt", (0, 1)),
    "drop_characters": (11, "opt", (0, 1)),
    "mail_log_path": (12, "str", (0, 1)),
    "dovecot_auth": (13, "bool", (0, 4)),
    "dovecot_userdb_path": (14, "str", (0, 4)),
    "dovecot_client_path": (15, "str", (0, 4)),
    "haproxy_incoming": (16, "bool", (1, 6)),
    "max_queue_items": (17, "uint32", (1, 16)),
    "give_up_send_after": (18, "str", (1, 16)),
}
FIELD_MIN_VERSION: Mapping[str, tuple[int, int]] = MappingProxyType(
    {name: since for name, (_, _, since) in _FIELDS.items()}
)
LISTEN_FIELDS: tuple[str, ...] = (
    "smtp_address",
    "submission_address",
    "submission_over_tls_address",
)
_INT_MAX = {"int64": 2**63 - 1, "uint32": 2**32 - 1}


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ChasquidConfig:
    """The settings chasquid runs with: the file's values over chasquid's defaults.

    ``hostname`` is ``None`` when unset (chasquid then uses the machine's name).
    ``explicit``: fields set to a value chasquid takes; any non-default value
    makes its field explicit. ``ignored``: fields present with a value chasquid
    skips (``0``, ``""``, ``[]``, ``false``), mapped to that value. ``lines``: the
    first line of each field present; ``item_lines``: the line of each element
    of a repeated field. Those three are about the text and not compared.
    """

    hostname: str | None = None
    max_data_size_mb: int = 50
    smtp_address: tuple[str, ...] = ("systemd",)
    submission_address: tuple[str, ...] = ("systemd",)
    submission_over_tls_address: tuple[str, ...] = ("systemd",)
    monitoring_address: str = ""
    mail_delivery_agent_bin: str = "maildrop"
    mail_delivery_agent_args: tuple[str, ...] = ("-f", "%from%", "-d", "%to_user%")
    data_dir: str = "/var/lib/chasquid"
    suffix_separators: str = "+"
    drop_characters: str = "."
    mail_log_path: str = "<syslog>"
    dovecot_auth: bool = False
    dovecot_userdb_path: str = ""
    dovecot_client_path: str = ""
    haproxy_incoming: bool = False
    max_queue_items: int = 200
    give_up_send_after: str = "20h"
    explicit: frozenset[str] = frozenset()
    lines: Mapping[str, int] = field(default_factory=_empty, compare=False)
    item_lines: Mapping[str, tuple[int, ...]] = field(default_factory=_empty, compare=False)
    ignored: Mapping[str, object] = field(default_factory=_empty, compare=False)

    def __post_init__(self) -> None:
        changed = {name for name in _FIELDS if getattr(self, name) != DEFAULTS[name]}
        object.__setattr__(self, "explicit", frozenset(self.explicit) | changed)
        for name in self.explicit:
            if name not in _FIELDS or not _acceptable(_FIELDS[name][1], getattr(self, name)):
                raise ValueError(f"{name}={getattr(self, name)!r} is not a value chasquid takes")


DEFAULTS: Mapping[str, object] = MappingProxyType(
    {f.name: f.default for f in fields(ChasquidConfig) if f.name in _FIELDS}
)


def _takes(kind: str, value: object) -> bool:
    """Whether chasquid's ``override`` uses this value from the file."""
    if kind == "opt":
        return True
    if kind in ("int64", "uint32"):
        return isinstance(value, int) and value > 0
    return bool(value)


def _acceptable(kind: str, value: object) -> bool:
    """Well-typed, and a value chasquid takes (so rendering keeps it)."""
    if kind in ("int64", "uint32"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value <= _INT_MAX[kind]
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "list":
        ok = isinstance(value, tuple) and all(_is_text(v) for v in value)
    else:
        ok = _is_text(value)
    return ok and _takes(kind, value)


def _is_text(value: object) -> bool:
    """A ``str`` that can be written as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _descriptor() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="gitops_mail/chasquid_config.proto", package="chasquid", syntax="proto3"
    )
    msg = proto.message_type.add(name="Config")
    for name, (number, kind, _) in _FIELDS.items():
        one = msg.field.add(name=name, number=number, type=_TYPES[kind])
        one.label = _F.LABEL_REPEATED if kind == "list" else _F.LABEL_OPTIONAL
        if kind == "opt":  # proto3 `optional`: presence through a synthetic oneof
            one.proto3_optional = True
            one.oneof_index = len(msg.oneof_decl)
            msg.oneof_decl.add(name=f"_{name}")
    return proto


_CONFIG = textproto.message_class(_descriptor(), "chasquid.Config")


# Lexing as Go's prototext does. Python's parser then sees the same text with
# every string literal replaced by a same-length placeholder, so columns match
# and string values come from here, decoded with Go's escape rules.

_TOKEN = re.compile(
    r"(?P<space>[ \t\r\n]+)|(?P<comment>#[^\n]*)"
    r"|(?P<string>\"(?:[^\"\\\n\x00]|\\[^\n\x00])*\"|'(?:[^'\\\n\x00]|\\[^\n\x00])*')"
    r"|(?P<word>[A-Za-z0-9_.+-]+)|(?P<punct>[:;,\[\]{}<>/])"
)
_NOT_GO_NUMBER = re.compile(r"\+|-?[0-9.].*_|-?0[oObB]")  # Python's int() takes these, Go not
_GO_BOOL_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")  # Go takes 0/1 for bools
_ESCAPE = re.compile(
    r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))", re.DOTALL
)
_LOW_SURROGATE = re.compile(r"\\u([dD][c-fC-F][0-9a-fA-F]{2})")
_SIMPLE_ESCAPES = {
    c: e.encode() for c, e in zip("abfnrtv\\'\"?", "\a\b\f\n\r\t\v\\'\"?", strict=True)
}
_STRING_HINT = 'a string is in quotes on one line; escapes: \\n \\t \\\\ \\" \\xNN \\NNN \\uNNNN'


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "word" or "punct"
    text: str
    offset: int
    data: bytes = b""  # a string's decoded bytes


@dataclass
class _Field:
    name: str
    line: int
    column: int
    runs: list[tuple[int, int, bytes]] = field(default_factory=list)  # line, column, bytes
    value: _Token | None = None


_Error = tuple[int | None, int | None, str, str]  # line, column, message, hint


class _Lexed:
    """Tokens of one text, the first lexical errors, and the text to hand to Python."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.tokens: list[_Token] = []
        self.errors: list[_Error] = []
        self.subs: dict[int, str] = {}  # offset -> same-length replacement for Python
        self.py_text = text

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def fail(self, offset: int, message: str, hint: str) -> None:
        self.errors.append((*self.position(offset), f"syntax error: {message}", hint))

    def python_text(self, found: list[_Field]) -> str:
        subs = dict(self.subs)
        for one in found:
            if _FIELDS.get(one.name, (0, ""))[1] == "bool" and one.value is not None:
                number = _go_bool_number(one.value.text)
                if number is not None:
                    subs[one.value.offset] = number.ljust(len(one.value.text))
        parts, pos = [], 0
        for offset in sorted(subs):
            parts += [self.text[pos:offset], subs[offset]]
            pos = offset + len(subs[offset])
        self.py_text = "".join([*parts, self.text[pos:]])
        return self.py_text

    def python_message(self, message: str, line: int | None, column: int | None) -> str:
        """Python's message without its ``'<line>': `` prefix, placeholders undone."""
        for text in sorted({"", *self.py_text.split("\n")}, key=len, reverse=True):
            if message.startswith(f"'{text}': "):
                message = message[len(text) + 4 :]
                break
        if line is not None and column is not None and line <= len(self.starts):
            offset = self.starts[line - 1] + column - 1
            for tok in self.tokens:
                if tok.offset == offset and tok.offset in self.subs:
                    message = message.replace(self.subs[tok.offset], tok.text, 1)
        return message


def _go_bool_number(text: str) -> str | None:
    if not _GO_BOOL_NUMBER.fullmatch(text):
        return None
    base = 16 if text[:2] in ("0x", "0X") else 8 if text.startswith("0") else 10
    number = int(text, base)
    return str(number) if number in (0, 1) else None


def _lex(text: str) -> _Lexed:
    lexed, pos = _Lexed(text), 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        pos = _take(lexed, match) if match else _skip_bad(lexed, pos)
    return lexed


def _take(lexed: _Lexed, match: re.Match[str]) -> int:
    kind, text, start = match.lastgroup or "", match.group(), match.start()
    if kind == "string":
        data = _unescape(text[1:-1])
        if isinstance(data, str):
            lexed.fail(start, data, _STRING_HINT)
        lexed.tokens.append(_Token(kind, text, start, data if isinstance(data, bytes) else b""))
        lexed.subs[start] = text[0] + "x" * (len(text) - 2) + text[0]
    elif kind == "word" and _NOT_GO_NUMBER.match(text):
        lexed.fail(start, f"invalid scalar value: {text}", "write numbers in decimal or 0x hex")
        lexed.tokens.append(_Token(kind, "0", start))
        lexed.subs[start] = "0".ljust(len(text))
    elif kind in ("word", "punct"):
        lexed.tokens.append(_Token(kind, text, start))
    return match.end()


def _skip_bad(lexed: _Lexed, pos: int) -> int:
    text, char = lexed.text, lexed.text[pos]
    if char not in "\"'":
        hint = "remove it: only spaces, tabs and line breaks may separate settings"
        lexed.fail(pos, f"unexpected character {char!r} (U+{ord(char):04X})", hint)
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
    out, pos = bytearray(), 0
    while (match := _ESCAPE.search(body, pos)) is not None:
        out += body[pos : match.start()].encode("utf-8")
        piece, pos = _escape(body, match)
        if isinstance(piece, str):
            return piece
        out += piece
    return bytes(out + body[pos:].encode("utf-8"))


def _escape(body: str, match: re.Match[str]) -> tuple[bytes | str, int]:
    octal, hexa, short, long, other = match.groups()
    bad = f'invalid escape code "{match.group()}" in string'
    if octal:
        return (bytes([int(octal, 8)]) if int(octal, 8) < 256 else bad), match.end()
    if hexa:
        return bytes([int(hexa, 16)]), match.end()
    if other is not None:
        return _SIMPLE_ESCAPES.get(other, bad), match.end()
    code, end = int(short or long, 16), match.end()
    low = _LOW_SURROGATE.match(body, end)
    if 0xD800 <= code < 0xDC00 and low:  # a UTF-16 surrogate pair, as Go accepts
        code, end = 0x10000 + ((code - 0xD800) << 10) + int(low.group(1), 16) - 0xDC00, low.end()
    if 0xD800 <= code < 0xE000 or code > 0x10FFFF:
        return bad, end
    return chr(code).encode("utf-8"), end


def _walk(lexed: _Lexed) -> list[_Field]:
    """Each ``name: value`` at the top level, with where it starts and its strings."""
    tokens, found, i = lexed.tokens, [], 0
    while i < len(tokens):
        name = tokens[i]
        i += 1
        if name.kind != "word":
            continue
        one = _Field(name.text, *lexed.position(name.offset))
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


def _value(lexed: _Lexed, i: int, one: _Field) -> int:
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


def parse_config(data: bytes, path: str) -> tuple[ChasquidConfig | None, list[Problem]]:
    """Read ``chasquid.conf`` bytes; a config, or ``None`` and the first error (as chasquid)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [_encoding_problem(data, exc.start, path)]
    lexed = _lex(text)
    found = _walk(lexed)
    msg, err = textproto.parse(lexed.python_text(found), _CONFIG)
    errors = lexed.errors + _utf8_errors(found) + _repeated_errors(found)
    if err is not None:
        errors.append(_python_error(err, lexed, found))
    if errors:
        line, column, message, hint = min(errors, key=lambda e: (e[0] or 1 << 62, e[1] or 0))
        return None, [Problem(path, line, "conf.syntax", message, hint, column=column)]
    return _build(msg, found), []


def _encoding_problem(data: bytes, start: int, path: str) -> Problem:
    line_start = data.rfind(b"\n", 0, start) + 1
    column = len(data[line_start:start].decode("utf-8", "replace")) + 1
    message = f"not valid UTF-8 (byte 0x{data[start]:02x})"
    hint = "save chasquid.conf as UTF-8 (chasquid rejects invalid UTF-8 in values)"
    return Problem(
        path, data.count(b"\n", 0, start) + 1, "conf.encoding", message, hint, column=column
    )


def _repeated_errors(found: list[_Field]) -> list[_Error]:
    """A second ``name:`` of a singular field; Go stops at the name, before the value."""
    first: dict[str, int] = {}
    errors: list[_Error] = []
    for one in found:
        if _FIELDS.get(one.name, (0, "list"))[1] == "list":
            continue
        if one.name in first:
            hint = f"keep one {one.name} line (it is first set on line {first[one.name]})"
            message = f'non-repeated field "{one.name}" is repeated'
            errors.append((one.line, one.column, message, hint))
        first.setdefault(one.name, one.line)
    return errors


def _utf8_errors(found: list[_Field]) -> list[_Error]:
    errors: list[_Error] = []
    for one in found:
        for line, column, data in one.runs:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                hint = "an escape such as \\xNN or \\NNN made bytes that are not UTF-8"
                errors.append((line, column, f'field "{one.name}" contains invalid UTF-8', hint))
    return errors


_UNKNOWN = re.compile(r'Message type "[\w.]+" has no field named "(.*)"\.$')
_SYNTAX_HINT = 'write one setting per line as name: value, e.g. hostname: "mail.example.com"'


def _python_error(err: textproto.TextParseError, lexed: _Lexed, found: list[_Field]) -> _Error:
    message = lexed.python_message(err.message, err.line, err.column)
    if unknown := _UNKNOWN.match(message):
        name = unknown.group(1)
        close = difflib.get_close_matches(name, list(_FIELDS), n=1)
        fix = f'did you mean "{close[0]}"?' if close else "remove it or fix its name;"
        hint = f"{fix} chasquid refuses to start with a field it does not know"
        return err.line, err.column, f'unknown field "{name}"', hint
    where = (err.line or 0, err.column or 0)
    if message == 'Expected ":".':  # Go points at the field name
        before = [(f.line, f.column) for f in found if (f.line, f.column) < where]
        line, column = before[-1] if before else where
        return line, column, 'syntax error: missing field separator ":"', _SYNTAX_HINT
    bracket = [t for t in lexed.tokens if lexed.position(t.offset) < where][-1:]
    if bracket and bracket[0].text == "[" and ("extensions" in message or "identifier." in message):
        line, column = lexed.position(bracket[0].offset)  # Go points at the "["
        return line, column, 'syntax error: "[" where a field name should be', _SYNTAX_HINT
    return err.line, err.column, f"syntax error: {message}", _SYNTAX_HINT


def _build(msg: Any, found: list[_Field]) -> ChasquidConfig:
    lines: dict[str, int] = {}
    item_lines: dict[str, list[int]] = {}
    texts: dict[str, list[str]] = {}
    for one in found:
        lines.setdefault(one.name, one.line)
        texts.setdefault(one.name, []).extend(d.decode("utf-8") for _, _, d in one.runs)
        item_lines.setdefault(one.name, []).extend(line for line, _, _ in one.runs)
    values = {n: _field_value(msg, n, texts.get(n, [])) for n in lines if n in _FIELDS}
    taken: dict[str, Any] = {n: v for n, v in values.items() if _takes(_FIELDS[n][1], v)}
    repeated = {n for n in values if _FIELDS[n][1] == "list"}
    return ChasquidConfig(
        **taken,
        explicit=frozenset(taken),
        lines=MappingProxyType(lines),
        item_lines=MappingProxyType({k: tuple(v) for k, v in item_lines.items() if k in repeated}),
        ignored=MappingProxyType({k: v for k, v in values.items() if k not in taken}),
    )


def _field_value(msg: Any, name: str, texts: list[str]) -> object:
    kind = _FIELDS[name][1]
    if kind == "list":
        return tuple(texts)
    if kind in ("str", "opt"):
        return texts[-1] if texts else ""
    value: object = getattr(msg, name)
    return value


def render_config(cfg: ChasquidConfig) -> bytes:
    """The explicit fields of ``cfg`` as text protobuf, in field order."""
    msg = _CONFIG()
    for name, (_, kind, _) in _FIELDS.items():
        if name not in cfg.explicit:
            continue
        if kind == "list":
            getattr(msg, name).extend(getattr(cfg, name))
        else:
            setattr(msg, name, getattr(cfg, name))
    return str(text_format.MessageToString(msg, as_utf8=True)).encode("utf-8")


def config_changes(old: ChasquidConfig, new: ChasquidConfig) -> list[tuple[str, object, object]]:
    """``(field, before, after)`` for every effective value that differs."""
    changes: list[tuple[str, object, object]] = []
    for name in _FIELDS:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append((name, before, after))
    return changes
