"""Names from the repo, made safe to print: control characters shown as escapes.

A pusher chooses file names, alias names, addresses, user and domain names. Printed
raw, a newline in one forges a line of its own (``remote: applied ... probes ok``
in someone else's push feedback) and an ESC starts a terminal control sequence.
Every formatter that puts such a name in front of a person (``Problem.format``,
``report``, ``status``, the push hooks) passes it through ``shown``; ``json_text``
does the same for JSON documents.

Escaped: C0 controls (tab and newline included), DEL, C1 controls, and the
Unicode characters that move or reorder text without being seen (bidirectional
marks, embeddings, overrides and isolates, the line and paragraph separators).
They become ``\\n``, ``\\t``, ``\\r``, ``\\xNN`` or ``\\uNNNN``; every other character,
letters of any script included, stays as it is. Pure.
"""

from __future__ import annotations

import json
import re

_INVISIBLE = r"\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
CONTROLS = re.compile(rf"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")
_RAW_IN_JSON = re.compile(rf"[\x7f-\x9f{_INVISIBLE}]")  # json.dumps escapes C0 itself
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: str) -> str:
    """``text`` on one line, with every control character written as an escape."""
    return CONTROLS.sub(_escape, text)


def shown_lines(text: str) -> str:
    """Like ``shown``, but the line breaks of a text made of several lines stay."""
    return "\n".join(shown(line) for line in text.split("\n"))


def _json_escape(found: re.Match[str]) -> str:
    return f"\\u{ord(found.group()):04x}"


def json_text(doc: object) -> str:
    """``doc`` as indented JSON (UTF-8 kept readable), no control character left raw.

    ``json.dumps`` escapes C0 controls itself but, with ``ensure_ascii=False``,
    writes DEL, C1 and the invisible characters as they are; they only occur
    inside strings, where ``\\uNNNN`` means the same character.
    """
    return _RAW_IN_JSON.sub(_json_escape, json.dumps(doc, indent=2, ensure_ascii=False))
