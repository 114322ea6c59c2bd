"""chasquid's aliases files (``domains/<d>/aliases``): parsing and problems.

Format, as chasquid reads it: lines split on ``\\n``, each trimmed; blank lines
and lines starting with ``#`` are skipped; the rest is ``name: addr, addr`` or
``name: | command args`` (split at the first ``:``). ``*`` as the name is the
domain's catch-all. Names are normalised like user names (lower case) and
cannot hold ``@``; a target without ``@`` gets the file's domain. A pipe
command is split on white space, no quoting. The last line for a name wins.

Where versions differ: malformed lines (no ``:``, ``a@b: c``, an empty side,
a pipe without a command) are skipped silently up to 1.15 and refused from
1.16. A line of 65536 bytes or more makes every version refuse the file; a
refused file is left out by 1.11 to 1.14 and stops 1.15 and newer at
start-up. Resolution and its version differences: ``resolution``, whose
names this module re-exports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from gitops_mail.core.formats.addresses import (
    GO_SPACE,
    HAS_SPACE,
    address_problem,
    normalize_address,
    normalize_domain,
    user_or_raw,
)
from gitops_mail.core.formats.aliases.resolution import (
    CATCH_ALL,
    RECURSION_LIMIT,
    Alias,
    DomainAliases,
    How,
    Kind,
    Recipient,
    Resolution,
    Resolver,
    Step,
)
from gitops_mail.core.formats.users.names import InvalidUserName, normalize_user
from gitops_mail.core.problems import Problem, Severity

__all__ = [
    "CATCH_ALL",
    "RECURSION_LIMIT",
    "Alias",
    "AliasFile",
    "DomainAliases",
    "How",
    "Kind",
    "Recipient",
    "Resolution",
    "Resolver",
    "Step",
    "parse_aliases",
    "parse_targets",
]

MAX_LINE_BYTES = 65535  # Go's bufio.Scanner fails on longer lines


@dataclass(frozen=True)
class AliasFile:
    aliases: tuple[Alias, ...]  # file order, duplicates kept; empty if chasquid refuses the file
    problems: tuple[Problem, ...]

    def effective(self) -> dict[str, Alias]:
        """By name, the last definition of each."""
        return {alias.name: alias for alias in self.aliases}


# ------------------------------------------------------------------ parsing


def parse_aliases(data: bytes, path: str, domain: str) -> AliasFile:
    """Parse one aliases file; report every problem, never raise.

    ``aliases`` holds what chasquid 1.11 loads: a line it skips is left out
    (with an error), a line it loads in spite of a problem is kept. The usual
    lines (``_SIMPLE``) are found by one scan of the file and need no checks;
    every other line goes through the general rules of ``_Reader.line``.
    """
    text = data.decode("utf-8", "surrogateescape")  # as each line would decode: \n is ASCII
    reader = _Reader(path, domain)
    aliases, suffix, punycode = reader.aliases, reader.suffix, "xn--" in text
    number = 0
    end = 0  # where the lines not read yet start
    for found in _SIMPLE.finditer(text):
        start, stop = found.span()
        if start > end:  # the lines in between, without the line break before ``found``
            number = reader.lines(text[end : start - 1].split("\n"), number)
        number += 1
        end = stop + 1
        name, rhs = found.groups()
        if stop - start > MAX_LINE_BYTES or (punycode and "xn--" in rhs):  # see ``_SIMPLE``
            reader.line(number, text[start:stop])
            continue
        targets = _TARGETS.findall(rhs)
        recipients = tuple([Recipient(t if "@" in t else t + suffix) for t in targets])
        aliases.append(Alias(name, name, recipients, number))
    rest = text[end:].split("\n")
    if rest[-1] == "":  # the file's last line break ends a line, it does not start one
        rest.pop()
    reader.lines(rest, number)
    return reader.result()


def parse_each_line(data: bytes, path: str, domain: str) -> AliasFile:
    """``parse_aliases`` without its scan: every line by the general rules. The
    reference the scan is tested against."""
    reader = _Reader(path, domain)
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, 1):
        reader.line(number, raw.decode("utf-8", "surrogateescape"))
    return reader.result()


# A line whose name and targets are plain lower-case ASCII: no problem to report, and
# normalising changes none of them, as ``addresses`` and ``users.names`` take such text
# as it is (unless it holds "xn--", or is too long: ``parse_aliases`` checks both).
# What may follow a name or a target is never part of one: possessive, no backtracking.
_PLAIN = r"[a-z0-9_.+=*-]++"
_TARGET = rf"{_PLAIN}(?:@[a-z0-9-]++(?:\.[a-z0-9-]++)*+)?+"
_LINE = rf"^[ \t]*({_PLAIN})[ \t]*:[ \t]*({_TARGET}(?:[ \t]*+,[ \t]*+{_TARGET})*+)[ \t\r]*$"
_SIMPLE = re.compile(_LINE, re.MULTILINE)  # ``$``: before "\n" only, as chasquid splits
_TARGETS = re.compile(_TARGET)


class _Reader:
    """What one file's lines add up to, line by line."""

    def __init__(self, path: str, domain: str) -> None:
        self.path, self.domain = path, domain
        normal = normalize_domain(domain)
        self.local = normal is not None  # names are normalised only then
        self.suffix = "@" + (domain if normal is None else normal)  # of a target without one
        self.aliases: list[Alias] = []
        self.problems: list[Problem] = []

    def result(self) -> AliasFile:
        refused = any(problem.code == "aliases.line-too-long" for problem in self.problems)
        return AliasFile(() if refused else tuple(self.aliases), tuple(self.problems))

    def lines(self, lines: list[str], number: int) -> int:
        """Read ``lines``, the first of which has number ``number + 1``; the last number."""
        for text in lines:
            number += 1
            self.line(number, text)
        return number

    def line(self, number: int, text: str) -> None:
        """One line, as decoded with ``surrogateescape``."""
        at = _At(self.path, number)
        raw = text.encode("utf-8", "surrogateescape")
        if len(raw) > MAX_LINE_BYTES:
            self.problems.append(at.error("line-too-long", *_too_long(len(raw), self.domain)))
        if not text.isascii() and not _is_utf8(raw):
            self.problems.append(
                at.error("encoding", "line is not valid UTF-8", "save it as UTF-8")
            )
        line = text.strip(GO_SPACE)
        if line and not line.startswith("#"):
            alias = _parse_line(line, at, self.domain, self.local, self.problems)
            if alias is not None:
                self.aliases.append(alias)


class _At(NamedTuple):
    path: str
    line: int

    def error(self, code: str, message: str, hint: str) -> Problem:
        return Problem(self.path, self.line, f"aliases.{code}", message, hint)

    def warning(self, code: str, message: str, hint: str) -> Problem:
        return Problem(self.path, self.line, f"aliases.{code}", message, hint, Severity.WARNING)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _too_long(size: int, domain: str) -> tuple[str, str]:
    return (
        f"line is {size} bytes long, chasquid reads lines of at most {MAX_LINE_BYTES} bytes "
        f"and refuses the whole file: 1.11 to 1.14 run without any alias of {domain}, "
        "1.15 and newer do not start",
        "split the list: point this alias at a few new aliases that each hold part of it",
    )


def _parse_line(
    line: str, at: _At, domain: str, local: bool, problems: list[Problem]
) -> Alias | None:
    name, colon, rhs = line.partition(":")
    name, rhs = name.strip(GO_SPACE), rhs.strip(GO_SPACE)
    skipped = _skipped(line, name, bool(colon), rhs, domain)
    if skipped is not None:
        message, hint = skipped
        why = "chasquid up to 1.15 skips this line silently, 1.16 and newer refuse the file"
        problems.append(at.error("syntax", message, f"{hint} ({why})"))
        return None
    problems += _name_problems(name, at)
    if rhs.startswith("|"):
        problems += _pipe_problems(name, rhs, at)
        recipients = _pipe(rhs)
    else:
        items = _items(rhs)
        problems += _list_problems(name, items, at)
        recipients = _addresses(items, domain)
    return Alias(user_or_raw(name) if local else name, name, recipients, at.line)


def _skipped(line: str, name: str, colon: bool, rhs: str, domain: str) -> tuple[str, str] | None:
    if not colon:
        shown = line if len(line) <= 60 else line[:57] + "..."
        return (
            f"missing ':' in {shown!r} (an alias is `name: address, address` or `name: | command`)",
            "add the ':' after the alias name, or start the line with '#' for a comment",
        )
    if not name:
        return "missing alias name before ':'", "write the name (or * for the catch-all) first"
    if not rhs:
        return f"alias {name!r} has no target after ':'", "list where its mail goes, or delete it"
    if "@" in name:
        user, _, where = name.partition("@")
        fix = f"write `{user}: ...`" + ("" if where == domain else f" in domains/{where}/aliases")
        return (
            f"alias name {name!r} contains '@': the domain comes from the directory "
            f"(domains/{domain}/)",
            fix,
        )
    return None


def _name_problems(name: str, at: _At) -> list[Problem]:
    if "," in name or HAS_SPACE.search(name):
        return [
            at.error(
                "syntax",
                f"alias name {name!r} contains a space or a comma",
                "an alias has one name; list several addresses after the ':'",
            )
        ]
    try:
        normalize_user(name)
    except InvalidUserName as exc:
        hint = "use letters, digits and ASCII punctuation: chasquid can never match this name"
        if name.startswith("\ufeff"):
            hint = "remove the byte order mark at the start of the file"
        return [at.error("invalid-name", f"alias name {name!r} is not valid: {exc.reason}", hint)]
    return []


def _pipe_problems(name: str, rhs: str, at: _At) -> list[Problem]:
    if rhs[1:].strip(GO_SPACE):
        return []
    return [
        at.error(
            "syntax",
            f"pipe alias {name!r} has no command after '|'",
            f"write the command after '|': `{name}: | /usr/bin/program args`",
        )
    ]


def _list_problems(name: str, items: list[str], at: _At) -> list[Problem]:
    problems = [_target_problem(name, item, at) for item in items if item]
    found = [problem for problem in problems if problem is not None]
    if not any(items):
        found.append(
            at.error(
                "syntax",
                f"alias {name!r} has only commas, no target",
                "list where its mail goes, or delete the line",
            )
        )
    elif not all(items):
        found.append(
            at.warning(
                "syntax",
                f"empty target in the list of {name!r} (an extra comma)",
                "remove the extra comma (chasquid skips the empty target)",
            )
        )
    return found


def _target_problem(name: str, target: str, at: _At) -> Problem | None:
    found = address_problem(target)
    if found is None:
        return None
    reason, hint = found
    return at.error(
        "invalid-target",
        f"target {target!r} of {name!r} is not a valid address: {reason}",
        hint or "fix the address: chasquid would try to deliver to it as written, and fail",
    )


def parse_targets(rhs: str, domain: str) -> tuple[Recipient, ...]:
    """chasquid's right side: one pipe, or addresses (empty items skipped)."""
    return _pipe(rhs) if rhs.startswith("|") else _addresses(_items(rhs), domain)


def _pipe(rhs: str) -> tuple[Recipient, ...]:
    command = rhs[1:].strip(GO_SPACE)
    return (Recipient(command, Kind.PIPE),) if command else ()


def _items(rhs: str) -> list[str]:
    """The comma-separated items of an address list, trimmed; empty ones kept."""
    return [item.strip(GO_SPACE) for item in rhs.split(",")]


def _addresses(items: list[str], domain: str) -> tuple[Recipient, ...]:
    found = []
    for item in items:
        if item:
            target = item if "@" in item else f"{item}@{domain}"
            found.append(Recipient(normalize_address(target) or target))
    return tuple(found)
