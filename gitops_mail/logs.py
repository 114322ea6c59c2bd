"""Structured logs for ``apply`` and the daemon: events, not sentences.

    log = logs.get_logger(__name__)
    log.info("reconcile", revision=rev, result="applied", duration_ms=312.5)

``configure()`` renders JSON lines on stderr when it is not a terminal (the
journal, a pipe) and coloured key/values on a terminal; under systemd, when
stderr is the journal (``JOURNAL_STREAM`` names it), each line starts with its
syslog priority (``<3>`` for an error, sd-daemon(3)), so ``journalctl -p err``
finds errors; every event gets an
ISO 8601 UTC ``timestamp``, its ``level`` and the ``logger`` name. Records from
libraries that use the standard ``logging`` module go through the same chain.

``redact`` runs on every event just before it is rendered and removes secrets
wherever they are: under secret-looking keys, and inside any text (PEM private
keys, scrypt ``salt``/``encrypted`` fields of users files, ``AUTH PLAIN`` and
``Authorization:`` lines, passwords in URLs), recursing into containers and
exception text.

Importing this module is cheap: structlog is imported only by ``configure()``
and ``get_logger()``, so ``gitops-mail validate`` never pays for it.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from gitops_mail.errors import UsageError

if TYPE_CHECKING:
    import logging

    from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

REDACTED = "[redacted]"
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
# syslog priorities, as sd-daemon(3) prefixes read by journald: <7> debug ... <2> critical
_PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3, "exception": 3}
_PRIORITIES["critical"] = 2
_FIRST_KEYS = ("timestamp", "level", "logger", "event")
_MAX_DEPTH = 12

# Key names: a key is secret when one of its words is one of these...
_SECRET_WORDS = frozenset(
    {
        *("password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets"),
        *("token", "tokens", "key", "keys", "privkey", "apikey", "private", "cookie"),
        *("hash", "hashes", "salt", "encrypted", "credential", "credentials", "authorization"),
    }
)
# ...or contains one of these (``dbpassword``, ``authtoken``)...
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "credential")
# ...unless its last word says it only names or measures the secret (``key_path``, ``keyLen``).
_HARMLESS_LAST = frozenset(
    {"path", "file", "dir", "len", "length", "bits", "count", "id", "name", "type", "size"}
)
_WORD = r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])"

# Patterns stay strings: ``re`` compiles and caches them on first use, not at import.
_TEXT_NAME = (
    r"[\w-]*?(?:password|passwd|passphrase|secret|token|salt|encrypted|private_?key|api_?key)"
)
# Every rule below needs one of these words in the text: one scan spares the others.
_TRIGGER = r"(?i)pass|secret|token|salt|encrypted|private|api_?key|auth|://"
_DONE = re.escape(REDACTED)
_PREFIX = r"[bru]{0,2}"  # of a Python string or bytes literal in a repr: b'...'
_SASL = r"PLAIN|LOGIN|XOAUTH2?|OAUTHBEARER|SCRAM-[\w-]+"
_TEXT_RULES: tuple[tuple[str, str], ...] = (
    # A PEM private key (RSA, EC, PKCS#8, OpenSSH, encrypted), even cut off.
    (
        r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?"
        r"(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\Z)",
        REDACTED,
    ),
    # Quoted fields: users files (salt: "..." encrypted: "..."), JSON, YAML, reprs (salt=b'...').
    (
        rf"""(?i)(?<![\w-])({_TEXT_NAME}["']?\s*[:=]\s*{_PREFIX})(["'])(?:(?!\2)[^\\\n]|\\.)*\2?""",
        rf"\1\2{REDACTED}\2",
    ),
    # Unquoted key=value pairs: query strings, command lines, repr of keyword arguments.
    (
        rf"""(?i)(?<![\w-])({_TEXT_NAME}=)(?!{_PREFIX}["']|{_DONE})[^\s"',;&)}}\]]+""",
        rf"\1{REDACTED}",
    ),
    # SMTP AUTH with its initial response; HTTP Authorization headers (the scheme stays).
    (rf"(?i)\b(AUTH\s+(?:{_SASL})\s+)[^\s\"',]+", rf"\1{REDACTED}"),
    (
        r"(?i)\b((?:proxy-)?authorization\s*:\s*(?:[a-z][\w-]*\s+)?)[^\s\"',;]+",
        rf"\1{REDACTED}",
    ),
    # The password of a URL's userinfo: https://user:pass@host.
    (r"""(\b[a-zA-Z][\w+.-]*://[^/\s:@'"]*):[^/\s'"]*@""", rf"\1:{REDACTED}@"),
)


def configure(*, json: bool | None = None, level: str = "info") -> None:
    """Set up structlog (and the ``logging`` root) to write events to stderr.

    ``json=None`` chooses JSON lines unless stderr is a terminal. ``level`` is
    one of ``LEVELS``; events below it are dropped before any processing.
    """
    import structlog  # noqa: PLC0415 - ~100 ms: only apply and the daemon pay for it

    number = _level_number(level)
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=use_colour(sys.stderr))
    )
    if on_journal():
        renderer = _with_priority(renderer)
    tail: list[Processor] = [structlog.processors.format_exc_info, redact]
    tail += [order_keys, renderer] if as_json else [renderer]
    structlog.configure(
        processors=[*_head(), add_logger_name, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=_LineWriterFactory(sys.stderr),
        # Off so that loggers made at import time follow later configure()/capture_logs().
        cache_logger_on_first_use=False,
    )
    _route_stdlib(number, tail)


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    import os  # noqa: PLC0415 - cheap, but only configure() needs it

    return stream.isatty() and not os.environ.get("NO_COLOR")


def on_journal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (stderr) is systemd's journal: ``JOURNAL_STREAM`` is its device:inode."""
    import os  # noqa: PLC0415 - cheap, but only configure() needs it

    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


def _with_priority(renderer: Processor) -> Processor:
    """``renderer`` with the event's syslog priority in front of every line: ``<3>...``."""

    def render(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
        level = str(event_dict.get("level", method_name)).lower()
        prefix = f"<{_PRIORITIES.get(level, 6)}>"
        rendered = renderer(logger, method_name, event_dict)
        return "\n".join(prefix + line for line in str(rendered).split("\n"))

    return render


def get_logger(name: str) -> FilteringBoundLogger:
    """A logger whose events carry ``logger=name``; usable before ``configure()``."""
    import structlog  # noqa: PLC0415 - see configure()

    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the event with every secret replaced by ``[redacted]``.

    Runs after ``format_exc_info`` so that tracebacks are text by then.
    """
    for key, value in list(event_dict.items()):
        event_dict[key] = REDACTED if is_secret_key(key) else redact_value(value)
    return event_dict


def add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``logger``, the name given to ``get_logger()``."""
    name = getattr(logger, "name", "")
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


def order_keys(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``timestamp``, ``level``, ``logger``, ``event`` first."""
    first = {key: event_dict.pop(key) for key in _FIRST_KEYS if key in event_dict}
    return {**first, **event_dict}


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a secret (``password``, ``dkim_private_key``, ``salt``...)."""
    if not isinstance(key, str):
        return False
    words = [word.lower() for word in re.findall(_WORD, key)]
    if not words or words[-1] in _HARMLESS_LAST:
        return False
    return any(word in _SECRET_WORDS or any(p in word for p in _SECRET_PARTS) for word in words)


def redact_text(text: str) -> str:
    """``text`` with every secret-looking run replaced by ``[redacted]``."""
    if not re.search(_TRIGGER, text):
        return text
    for pattern, replacement in _TEXT_RULES:
        text = re.sub(pattern, replacement, text)
    return text


def redact_value(value: object, depth: int = 0) -> object:
    """A copy of ``value`` without secrets; values with nothing to hide come back as they were."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if depth >= _MAX_DEPTH:
        return REDACTED
    for kind, scrub in _SCRUBBERS:
        if isinstance(value, kind):
            return scrub(value, depth + 1)
    text = repr(value)
    cleaned = redact_text(text)
    return value if cleaned == text else cleaned


def _scrub_mapping(value: Any, depth: int) -> object:
    return {k: REDACTED if is_secret_key(k) else redact_value(v, depth) for k, v in value.items()}


def _scrub_sequence(value: Any, depth: int) -> object:
    items = [redact_value(item, depth) for item in value]
    if hasattr(value, "_make"):  # a named tuple
        return value._make(items)
    return items if isinstance(value, list) else type(value)(items)


def _scrub_bytes(value: Any, depth: int) -> object:
    return redact_text(bytes(value).decode("utf-8", "backslashreplace"))


def _scrub_exception(value: Any, depth: int) -> object:
    return redact_text(f"{type(value).__name__}: {value}")


_SCRUBBERS: tuple[tuple[type | tuple[type, ...], Callable[[Any, int], object]], ...] = (
    (Mapping, _scrub_mapping),
    ((list, tuple, set, frozenset), _scrub_sequence),
    ((bytes, bytearray, memoryview), _scrub_bytes),
    (BaseException, _scrub_exception),
)


class _LineWriter:
    """What structlog writes rendered events to: one line each, and the logger's name."""

    _lock = threading.Lock()

    def __init__(self, stream: TextIO, name: str) -> None:
        self.stream = stream
        self.name = name

    def msg(self, message: str) -> None:
        with self._lock:
            self.stream.write(message + "\n")
            self.stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class _LineWriterFactory:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, *args: Any) -> _LineWriter:
        return _LineWriter(self.stream, str(args[0]) if args else "")


def _level_number(level: str) -> int:
    try:
        return LEVELS[level.lower()]
    except KeyError:
        raise UsageError(
            f"unknown log level {level!r}", f"use one of: {', '.join(LEVELS)}"
        ) from None


def _head() -> list[Processor]:
    """The processors every event goes through first, structlog's and logging's alike."""
    import structlog  # noqa: PLC0415 - see configure()

    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _route_stdlib(level: int, tail: list[Processor]) -> None:
    """Send ``logging`` records (GitPython, watchdog...) through the same chain to stderr."""
    import logging  # noqa: PLC0415 - see configure()

    from structlog.stdlib import (  # noqa: PLC0415 - see configure()
        ProcessorFormatter,
        add_logger_name,
    )

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        ProcessorFormatter(
            foreign_pre_chain=[add_logger_name, *_head()],
            processors=[ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    handler.set_name(__name__)
    root = logging.getLogger()
    for old in [h for h in root.handlers if _is_ours(h)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _is_ours(handler: logging.Handler) -> bool:
    return handler.get_name() == __name__
