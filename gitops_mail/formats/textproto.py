"""Text protobuf through the ``protobuf`` package: message classes built from
descriptors written in code, and parse errors turned into line and column.

chasquid stores users and its config as text protobuf; ``text_format`` parses
exactly what Go writes, so we build the message types and let it do the work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_POOL = descriptor_pool.DescriptorPool()
_LOCATION = re.compile(r"^(\d+):(\d+) : (.*)$", re.DOTALL)


def message_class(file_proto: descriptor_pb2.FileDescriptorProto, full_name: str) -> Any:
    """Register ``file_proto`` once in our private pool; return the class ``full_name``."""
    try:
        _POOL.FindFileByName(file_proto.name)
    except KeyError:
        _POOL.Add(file_proto)
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


@dataclass(frozen=True)
class TextParseError:
    line: int | None
    column: int | None
    message: str


def parse(text: str, cls: Any) -> tuple[Any, TextParseError | None]:
    """Parse ``text`` into a new ``cls``; on failure return ``(None, error)``."""
    msg = cls()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        return None, _located(exc)
    return msg, None


def render(msg: Any) -> str:
    return str(text_format.MessageToString(msg))


def _located(exc: Any) -> TextParseError:
    line, column = exc.GetLine(), exc.GetColumn()
    text = str(exc)
    found = _LOCATION.match(text)
    if found:
        text = found.group(3)
        line = line or int(found.group(1))
        column = column or int(found.group(2))
    return TextParseError(line, column, text)
