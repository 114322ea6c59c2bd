"""Text protobuf through the ``protobuf`` package: message classes built from
descriptors written in code, and parse errors turned into line and column.

chasquid stores users and its config as text protobuf; ``text_format`` parses
exactly what Go writes, so we build the message types and let it do the work.
The library is imported by the functions that use it: it takes tens of
milliseconds to import, and the common files never need it.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2

_LOCATION = re.compile(r"^(\d+):(\d+) : (.*)$", re.DOTALL)


@functools.cache
def _pool() -> Any:
    """Our private descriptor pool, made on first use."""
    from google.protobuf import descriptor_pool  # noqa: PLC0415 - see the module docstring

    return descriptor_pool.DescriptorPool()


def message_class(file_proto: descriptor_pb2.FileDescriptorProto, full_name: str) -> Any:
    """Register ``file_proto`` once in our private pool; return the class ``full_name``."""
    from google.protobuf import message_factory  # noqa: PLC0415 - see the module docstring

    pool = _pool()
    try:
        pool.FindFileByName(file_proto.name)
    except KeyError:
        pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


class TextParseError(NamedTuple):
    """Where the library stopped, and its own message: it may quote the file (a token, a
    byte), so callers say it in ``words.describe``'s terms, never as it is."""

    line: int | None
    column: int | None
    message: str  # without the copy of the line the library puts in front


def parse(text: str, cls: Any) -> tuple[Any, TextParseError | None]:
    """Parse ``text`` into a new ``cls``; on failure return ``(None, error)``."""
    from google.protobuf import text_format  # noqa: PLC0415 - see the module docstring

    msg = cls()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        return None, _located(exc, text)
    return msg, None


def render(msg: Any) -> str:
    from google.protobuf import text_format  # noqa: PLC0415 - see the module docstring

    return str(text_format.MessageToString(msg))


def _located(exc: Any, source: str) -> TextParseError:
    line, column = exc.GetLine(), exc.GetColumn()
    text = str(exc)
    found = _LOCATION.match(text)
    if found:
        text = found.group(3)
        line = line or int(found.group(1))
        column = column or int(found.group(2))
    lines = source.split("\n")
    if line and line <= len(lines):
        text = text.removeprefix(f"'{lines[line - 1]}': ")
    return TextParseError(line, column, text)
