"""chasquid's ``chasquid.conf``: parse it the way chasquid does, render it, diff it.

The file is text protobuf for upstream's ``internal/config/config.proto``.
chasquid applies a value from the file only when it is "set": non-zero, or
for the two ``optional`` fields, present. So ``max_data_size_mb: 0`` and
``hostname: ""`` leave the default in place. ``ChasquidConfig`` holds the
values chasquid ends up with; the values it skips are kept in ``ignored``.

``protobuf``'s ``text_format`` checks structure, types, unknown and repeated
fields. chasquid parses with Go's ``prototext``, which differs in a few
places; ``prototext.go`` covers them (string escapes and UTF-8, number
spellings, whitespace) and finds where each field is. A plain file (known
fields, ``name: value`` with quoted strings, decimal numbers, ``true`` or
``false``) is read from ``prototext.go``'s tokens alone (``prototext.plain``):
both parsers accept it and agree on every value, and the protobuf library
(slow to import) is only loaded for anything else.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gitops_mail.core.formats.prototext import go as prototext_go
from gitops_mail.core.formats.prototext import library as textproto
from gitops_mail.core.formats.prototext import plain as prototext_plain
from gitops_mail.core.problems import Problem

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2

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
_SCALAR_KINDS = frozenset({"bool", "int64", "uint32"})


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
        ok = (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value <= prototext_plain.INT_MAX[kind]
        )
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
    from google.protobuf import descriptor_pb2  # noqa: PLC0415 - see the module docstring

    f = descriptor_pb2.FieldDescriptorProto
    types = {"str": f.TYPE_STRING, "opt": f.TYPE_STRING, "list": f.TYPE_STRING}
    types |= {"bool": f.TYPE_BOOL, "int64": f.TYPE_INT64, "uint32": f.TYPE_UINT32}
    proto = descriptor_pb2.FileDescriptorProto(
        name="gitops_mail/chasquid_config.proto", package="chasquid", syntax="proto3"
    )
    msg = proto.message_type.add(name="Config")
    for name, (number, kind, _) in _FIELDS.items():
        one = msg.field.add(name=name, number=number, type=types[kind])
        one.label = f.LABEL_REPEATED if kind == "list" else f.LABEL_OPTIONAL
        if kind == "opt":  # proto3 `optional`: presence through a synthetic oneof
            one.proto3_optional = True
            one.oneof_index = len(msg.oneof_decl)
            msg.oneof_decl.add(name=f"_{name}")
    return proto


@functools.cache
def _config_class() -> Any:
    return textproto.message_class(_descriptor(), "chasquid.Config")


_KINDS = {name: kind for name, (_, kind, _) in _FIELDS.items()}
_SCHEMA = {"chasquid.Config": tuple(_FIELDS)}  # the names an error may say
_BOOLS = frozenset(name for name, (_, kind, _) in _FIELDS.items() if kind == "bool")
_SINGULAR = frozenset(name for name, (_, kind, _) in _FIELDS.items() if kind != "list")


def parse_config(data: bytes, path: str) -> tuple[ChasquidConfig | None, list[Problem]]:
    """Read ``chasquid.conf`` bytes; a config, or ``None`` and the first error (as chasquid)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [_encoding_problem(data, exc.start, path)]
    lexed = prototext_go.lex(text)
    found = prototext_go.walk(lexed)
    errors = lexed.errors + prototext_go.utf8_errors(found, _FIELDS)
    errors += prototext_go.repeated_errors(found, _SINGULAR)
    if not errors and prototext_plain.is_plain(lexed.tokens, _KINDS):
        return _build(prototext_plain.scalars(found, _KINDS), found), []
    msg, err = textproto.parse(lexed.python_text(found, _BOOLS), _config_class())
    if err is not None:
        errors.append(_python_error(err, lexed, found))
    if errors:
        line, column, message, hint = min(errors, key=lambda e: (e[0] or 1 << 62, e[1] or 0))
        return None, [Problem(path, line, "conf.syntax", message, hint, column=column)]
    return _build(_library_scalars(msg, found), found), []


def _library_scalars(msg: Any, found: list[prototext_go.Field]) -> dict[str, object]:
    names = {one.name for one in found if one.name in _FIELDS}
    return {n: getattr(msg, n) for n in names if _FIELDS[n][1] in _SCALAR_KINDS}


def _encoding_problem(data: bytes, start: int, path: str) -> Problem:
    line_start = data.rfind(b"\n", 0, start) + 1
    column = len(data[line_start:start].decode("utf-8", "replace")) + 1
    message = "not valid UTF-8"  # not the byte: the file's own, whatever it holds
    hint = "save chasquid.conf as UTF-8 (chasquid rejects invalid UTF-8 in values)"
    return Problem(
        path, data.count(b"\n", 0, start) + 1, "conf.encoding", message, hint, column=column
    )


_SYNTAX_HINT = 'write one setting per line as name: value, e.g. hostname: "mail.example.com"'


def _python_error(
    err: textproto.TextParseError, lexed: prototext_go.Lexed, found: list[prototext_go.Field]
) -> prototext_go.LocatedError:
    name = prototext_go.unknown_field(err)
    if name is None:
        return prototext_go.go_error(err, lexed, found, _SYNTAX_HINT, _SCHEMA)
    import difflib  # noqa: PLC0415 - only a misspelt field needs it

    # The name is the file's (it may be anything, a secret pasted on the wrong line):
    # the message never repeats it; the hint only names a field chasquid knows.
    close = difflib.get_close_matches(name, list(_FIELDS), n=1)
    fix = f'did you mean "{close[0]}"?' if close else "remove it or fix its name;"
    hint = f"{fix} chasquid refuses to start with a field it does not know"
    return err.line, err.column, "unknown field", hint


def _build(scalars: Mapping[str, object], found: list[prototext_go.Field]) -> ChasquidConfig:
    lines: dict[str, int] = {}
    item_lines: dict[str, list[int]] = {}
    texts: dict[str, list[str]] = {}
    for one in found:
        lines.setdefault(one.name, one.line)
        texts.setdefault(one.name, []).extend(d.decode("utf-8") for _, _, d in one.runs)
        item_lines.setdefault(one.name, []).extend(line for line, _, _ in one.runs)
    values = {n: _field_value(scalars, n, texts.get(n, [])) for n in lines if n in _FIELDS}
    taken: dict[str, Any] = {n: v for n, v in values.items() if _takes(_FIELDS[n][1], v)}
    repeated = {n for n in values if _FIELDS[n][1] == "list"}
    return ChasquidConfig(
        **taken,
        explicit=frozenset(taken),
        lines=MappingProxyType(lines),
        item_lines=MappingProxyType({k: tuple(v) for k, v in item_lines.items() if k in repeated}),
        ignored=MappingProxyType({k: v for k, v in values.items() if k not in taken}),
    )


def _field_value(scalars: Mapping[str, object], name: str, texts: list[str]) -> object:
    kind = _FIELDS[name][1]
    if kind == "list":
        return tuple(texts)
    if kind in ("str", "opt"):
        return texts[-1] if texts else ""
    return scalars[name]


def render_config(cfg: ChasquidConfig) -> bytes:
    """The explicit fields of ``cfg`` as text protobuf, in field order."""
    from google.protobuf import text_format  # noqa: PLC0415 - see the module docstring

    msg = _config_class()()
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
