"""How deep and how large a YAML document is, measured from its events before composing.

Composing builds a node (with two marks) for every value; a document made
to be large or deep (a 1 MiB flow list is half a million nodes, an alias of
an alias of ... is a billion values once expanded) would cost hundreds of
megabytes before ``document``'s walk could stop it. The parser's events
cost nothing to drop, so this reads them once, counts values and depth the
way the walk does (aliases expanded: each anchor remembers its size and
height), and stops at the first value past ``MAX_DEPTH`` or ``MAX_VALUES``.
Mapping keys that are plain scalars are not values; anything else counts.
"""

from __future__ import annotations

from typing import Any

from gitops_mail.core.problems import Problem, error


class _Open:
    """A mapping or a list being read. (A plain class: a dataclass costs a millisecond to
    define, at every start of a command that reads YAML.)"""

    __slots__ = ("anchor", "deepest", "depth", "key_next", "mapping", "values_before")

    def __init__(self, mapping: bool, anchor: str | None, values_before: int, depth: int) -> None:
        self.mapping, self.anchor = mapping, anchor
        self.values_before = values_before  # the count before this collection's own value
        self.depth = self.deepest = depth  # deepest: the deepest value inside, aliases expanded
        self.key_next = True  # a mapping alternates key, value


Excess = tuple[int, str, str]  # where a document goes past a bound: line, code, message


class Measure:
    """Counts values and depth event by event; ``see`` says when a bound is passed."""

    def __init__(self, yaml: Any, max_depth: int, max_values: int) -> None:
        self.yaml, self.max_depth, self.max_values = yaml, max_depth, max_values
        self.values = 0
        self.open: list[_Open] = []
        self.anchors: dict[str, tuple[int, int]] = {}  # name -> (values, height)

    def see(self, event: Any) -> Excess | None:
        yaml = self.yaml
        if isinstance(event, yaml.CollectionEndEvent):
            self._close()
            return None
        if not isinstance(event, yaml.NodeEvent):
            return None  # stream and document start and end
        key = self._is_key()
        if isinstance(event, yaml.AliasEvent):
            values, height = self.anchors.get(event.anchor, (1, 0))
        elif isinstance(event, yaml.ScalarEvent):
            if key:
                return None
            values, height = 1, 0
            if event.anchor is not None:
                self.anchors[event.anchor] = (1, 0)
        else:
            return self._start(event)
        return self._value(event, values, height)

    def _is_key(self) -> bool:
        top = self.open[-1] if self.open else None
        if top is None or not top.mapping:
            return False
        top.key_next = not top.key_next
        return not top.key_next

    def _start(self, event: Any) -> Excess | None:
        anchor = event.anchor
        if anchor is not None:
            self.anchors.pop(anchor, None)  # an alias inside refers to this one: not expanded
        mapping = isinstance(event, self.yaml.MappingStartEvent)
        depth = len(self.open)
        self.open.append(_Open(mapping, anchor, self.values, depth))
        return self._value(event, 1, 0)

    def _value(self, event: Any, values: int, height: int) -> Excess | None:
        self.values += values
        depth = len(self.open) - (1 if isinstance(event, self.yaml.CollectionStartEvent) else 0)
        deepest = depth + height
        if self.open:
            self.open[-1].deepest = max(self.open[-1].deepest, deepest)
        line = event.start_mark.line + 1
        if deepest > self.max_depth:
            return line, "yaml.too-deep", f"nested more than {self.max_depth} levels deep"
        if self.values > self.max_values:
            return line, "yaml.too-large", f"more than {self.max_values} values after aliases"
        return None

    def _close(self) -> None:
        done = self.open.pop()
        if done.anchor is not None:
            self.anchors[done.anchor] = (
                self.values - done.values_before,
                done.deepest - done.depth,
            )
        if self.open:
            self.open[-1].deepest = max(self.open[-1].deepest, done.deepest)


def excess(yaml: Any, loader: Any, path: str, max_depth: int, max_values: int) -> Problem | None:
    """Where the document ``loader`` parses first goes past a bound; None if nowhere.

    A syntax error ends the measure with None too: composing reports it."""
    counter = Measure(yaml, max_depth, max_values)
    try:
        while (event := loader.get_event()) is not None:
            found = counter.see(event)
            if found is not None:
                line, code, message = found
                return error(path, line, code, f"the document is {message}")
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None
