"""YAML documents that remember the line of every key, read safely.

``load_yaml`` composes the document into nodes (libyaml's C parser when
available) and builds plain data from them, recording the 1-based line of each
key path, so later checks can point at the offending line. Mapping keys are
always strings, the text as written (``on:`` stays ``"on"``, ``1:`` stays
``"1"``), as JSON Schema expects. Duplicate keys, which YAML would silently
collapse, are errors. Anchors, aliases and ``<<`` merges work.

``yaml`` is imported inside the functions to keep start-up fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from gitops_mail.core.problems import Problem, Severity, error

KeyPath = tuple[str | int, ...]

MAX_BYTES = 1 << 20  # 1 MiB: a manifest needs a few kB (1,000 domains fit in ~300 kB)
MAX_DEPTH = 100  # nesting levels; a manifest needs about 6
MAX_VALUES = 100_000  # values after expanding aliases ("billion laughs")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_SYNTAX_HINTS = (
    ("tab", "indent with spaces: YAML does not allow tabs in indentation"),
    ("mapping values are not allowed", "quote a value that contains ': '"),
    ("another document", "keep a single document: remove the second '---'"),
    ("undefined alias", "define the anchor (&name) before using it (*name)"),
    ("expected ',' or ']'", "close the list with ']'"),
    ("expected ',' or '}'", "close the mapping with '}'"),
    ("quoted scalar", "close the quoted string"),
    ("block end", "check the indentation of this line and the ones before it"),
)


@dataclass(frozen=True)
class YamlDoc:
    """Plain data (dicts, lists, scalars) and the line of every key path.

    A path is the keys and list indices from the top: ``("domains",
    "example.com", "dkim")``, ``("certificates", 0, "name")``.
    """

    data: object
    lines: Mapping[KeyPath, int]

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of its nearest ancestor that exists."""
        key = tuple(path)
        while True:
            line = self.lines.get(key)
            if line is not None or not key:
                return line
            key = key[:-1]


def format_path(path: Sequence[str | int]) -> str:
    """``domains.example.com.dkim``, ``certificates[0].name``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def where(path: Sequence[str | int]) -> str:
    return f"At '{format_path(path)}'" if path else "At the top level"


def problem_at(
    doc: YamlDoc,
    file: str,
    path: Sequence[str | int],
    code: str,
    message: str,
    *,
    hint: str = "",
    severity: Severity = Severity.ERROR,
) -> Problem:
    """A problem about the value at ``path``: message prefixed with the path, at its line."""
    return Problem(file, doc.line_of(path), code, f"{where(path)}: {message}", hint, severity)


def load_yaml(
    data: bytes, path: str, *, max_bytes: int = MAX_BYTES
) -> tuple[YamlDoc | None, list[Problem]]:
    """Read one YAML document whose top level is a mapping.

    Returns ``(None, problems)`` when nothing usable could be read; otherwise a
    document, possibly with problems (duplicate keys, unknown tags) to report.
    A document over ``max_bytes``, ``MAX_DEPTH`` or ``MAX_VALUES`` is refused
    before any of it is composed.
    """
    text, problem = _decode(data, path, max_bytes)
    if problem is not None:
        return None, [problem]
    import yaml  # noqa: PLC0415 - imported on first use: start-up time matters

    from gitops_mail.core.yamldoc.measure import excess  # noqa: PLC0415 - with yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    problem = excess(yaml, loader_class(text), path, MAX_DEPTH, MAX_VALUES)
    if problem is not None:
        return None, [problem]
    loader = loader_class(text)
    try:
        node, problem = _compose(yaml, loader, text, path)
        if problem is not None:
            return None, [problem]
        walker = _Walker(yaml, loader, path)
        root = walker.value(node, (), 0)
    except _Abort as abort:
        return None, [abort.problem]
    finally:
        loader.dispose()
    found = sorted(dict.fromkeys(walker.problems), key=lambda p: p.line or 0)
    return YamlDoc(root, walker.lines), found


def _compose(yaml: Any, loader: Any, text: str, path: str) -> tuple[Any, Problem | None]:
    """The document's root mapping node, or the problem that prevents reading it."""
    try:
        node = loader.get_single_node()
    except (yaml.YAMLError, RecursionError) as exc:
        return None, _read_problem(yaml, exc, text, path)
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG):
        return None, error(path, None, "yaml.empty", "the file is empty", "write the settings")
    if not isinstance(node, yaml.MappingNode):
        found = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        message = f"the top level must be a mapping of 'key: value' lines, found {found}"
        return None, error(path, node.start_mark.line + 1, "yaml.not-mapping", message)
    return node, None


def _decode(data: bytes, path: str, max_bytes: int) -> tuple[str, Problem | None]:
    if len(data) > max_bytes:
        line = data.count(b"\n", 0, max_bytes) + 1
        message = (
            f"the file is larger than {max_bytes:,} bytes, the limit for a YAML file; "
            "it passes the limit on this line"
        )
        hint = "a file like this one needs a few kB: remove what does not belong in it"
        return "", error(path, line, "yaml.file-size", message, hint)
    try:
        return data.decode("utf-8").removeprefix("\ufeff"), None
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8", "replace")) + 1
        message = f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})"
        hint = "save the file as UTF-8"
        return "", Problem(path, line, "yaml.encoding", message, hint, Severity.ERROR, column)


def _read_problem(yaml: Any, exc: Exception, text: str, path: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        return _syntax_problem(exc, text, path)
    if isinstance(exc, yaml.reader.ReaderError):
        return _reader_problem(exc, text, path)
    if isinstance(exc, RecursionError):
        return error(path, None, "yaml.too-deep", "the document is nested too deeply")
    return error(path, None, "yaml.syntax", f"invalid YAML: {exc}")


def _syntax_problem(exc: Any, text: str, path: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context:
        message += f" ({exc.context})"
    lines = text.splitlines()
    source = lines[line - 1] if line and line <= len(lines) else ""
    lowered = message.lower() + (" tab" if "\t" in source else "")
    hint = next((h for key, h in _SYNTAX_HINTS if key in lowered), "")
    return Problem(path, line, "yaml.syntax", message, hint, column=column)


def _reader_problem(exc: Any, text: str, path: str) -> Problem:
    code = exc.character if isinstance(exc.character, int) else 0
    index = max(text.find(chr(code)), 0)
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    message = f"the file contains the control character U+{code:04X}, which YAML does not allow"
    hint = "remove it (often an invisible character pasted with the text)"
    return Problem(path, line, "yaml.character", message, hint, column=column)


class _Abort(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Walker:
    """Builds plain data from composed nodes, recording the line of each path."""

    def __init__(self, yaml: Any, loader: Any, path: str) -> None:
        self.yaml = yaml
        self.loader = loader
        self.path = path
        self.lines: dict[KeyPath, int] = {}
        self.problems: list[Problem] = []
        self.count = 0
        self.open: set[int] = set()  # mappings and lists being walked: a cycle is an error
        self.checked: set[int] = set()  # mappings already checked for duplicate keys

    def value(self, node: Any, path: KeyPath, depth: int) -> object:
        yaml = self.yaml
        self.lines[path] = self.lines.get(path) or node.start_mark.line + 1
        self.count += 1
        if self.count > MAX_VALUES:
            self._abort(node, "yaml.too-large", f"more than {MAX_VALUES} values after aliases")
        if depth > MAX_DEPTH:
            self._abort(node, "yaml.too-deep", f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if id(node) in self.open:
            self._abort(node, "yaml.recursive", "an alias refers to a value that contains it")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.value(n, (*path, i), depth + 1) for i, n in enumerate(node.value)]
            return self._mapping(node, path, depth)
        finally:
            self.open.discard(id(node))

    def _abort(self, node: Any, code: str, message: str) -> NoReturn:
        raise _Abort(error(self.path, node.start_mark.line + 1, code, f"the document is {message}"))

    def _scalar(self, node: Any) -> object:
        yaml = self.yaml
        try:
            return self.loader.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            detail = getattr(exc, "problem", None) or str(exc)
            message = f"cannot read the value {node.value!r} ({node.tag}): {detail}"
            hint = "quote the value if it is meant as text"
            self._add(node, "yaml.value", message, hint)
            return node.value

    def _mapping(self, node: Any, path: KeyPath, depth: int) -> dict[str, object]:
        if id(node) not in self.checked:  # an alias walks the same node again
            self.checked.add(id(node))
            self._check_duplicates(node, path)
            self._flatten(node)
        entries = [(self._key(k), k, v) for k, v in node.value]
        last = {key: index for index, (key, _, _) in enumerate(entries)}
        result: dict[str, object] = {}
        for index, (key, key_node, value_node) in enumerate(entries):
            if key is None or last[key] != index:
                continue
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.value(value_node, (*path, key), depth + 1)
        return result

    def _check_duplicates(self, node: Any, path: KeyPath) -> None:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            key = self._key(key_node, report=False)
            if key is None or key_node.tag == _MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                message = (
                    f"{where((*path, key))}: duplicate key '{key}' (lines {seen[key]} and {line})"
                )
                hint = "remove one of them: YAML would silently keep only the last"
                self.problems.append(error(self.path, line, "yaml.duplicate-key", message, hint))
            seen.setdefault(key, line)

    def _flatten(self, node: Any) -> None:
        yaml = self.yaml
        try:
            self.loader.flatten_mapping(node)
        except (yaml.YAMLError, RecursionError) as exc:
            detail = getattr(exc, "problem", None) or "it refers to itself"
            self._add(node, "yaml.merge", f"cannot merge with '<<': {detail}", "")
            node.value = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]

    def _key(self, node: Any, report: bool = True) -> str | None:
        yaml = self.yaml
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        if report:
            self._add(node, "yaml.complex-key", "a list or mapping cannot be a key", "")
        return None

    def _add(self, node: Any, code: str, message: str, hint: str) -> None:
        line = node.start_mark.line + 1
        self.problems.append(error(self.path, line, code, message, hint))
