"""Alias loops and over-deep chains, on the graph of addresses chasquid resolves.

A node is an address as chasquid passes it to its resolver; its edges are
the e-mail targets of the alias (or catch-all) it goes to. chasquid fails
with "recursion limit exceeded" (and answers 451) when resolving an address
needs its level 10: ``height`` (levels below a node) of 10 or more, or a
cycle. Heights come from peeling final addresses off, parents after all
their children (Kahn's algorithm); the nodes that never peel are in a cycle
or lead into one, and Tarjan's components of those few tell which.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from gitops_mail.formats.addresses import split_address
from gitops_mail.formats.aliases import RECURSION_LIMIT, How, Kind, Resolver
from gitops_mail.problems import Problem

LOOPING = -1  # height of a node in, or leading into, a cycle
_SHOWN = 12  # addresses shown of a long chain
_EMAIL = Kind.EMAIL


def graph_problems(resolver: Resolver, paths: Mapping[str, str]) -> list[Problem]:
    """Loops and too-deep chains reached from the aliases of ``paths`` (domain -> file)."""
    graph = AliasGraph(resolver, paths)
    graph.measure()
    return graph.loop_problems() + graph.start_problems()


@dataclass
class AliasGraph:
    """The addresses reached from every alias in effect, measured by ``measure``."""

    resolver: Resolver
    paths: Mapping[str, str]
    height: dict[str, int] = field(default_factory=dict)
    below: dict[str, str] = field(default_factory=dict)  # next node of the deepest chain
    cycles: list[list[str]] = field(default_factory=list)
    cycle_of: dict[str, int] = field(default_factory=dict)  # index into cycles
    _edges: dict[str, list[str]] = field(default_factory=dict)
    _starts: list[str] | None = None

    def starts(self) -> list[str]:
        """The address of each alias in effect, where mail to it reaches that alias."""
        if self._starts is None:
            self._starts = self._find_starts()
        return self._starts

    def _find_starts(self) -> list[str]:
        found = []
        for domain in sorted(self.paths):
            aliases = self.resolver.aliases(domain)
            for key, alias in sorted(aliases.items(), key=lambda item: item[1].line):
                start = f"{key}@{domain}"
                if self.resolver.step(start).alias is alias:
                    found.append(start)
        return found

    def edges(self, node: str) -> list[str]:
        found = self._edges.get(node)
        if found is None:
            targets = self.resolver.step(node).targets
            found = self._edges[node] = [t.address for t in targets if t.kind is _EMAIL]
        return found

    def reachable(self) -> list[str]:
        found = list(self.starts())
        seen, todo = set(found), list(found)
        while todo:
            for child in self.edges(todo.pop()):
                if child not in seen:
                    seen.add(child)
                    found.append(child)
                    todo.append(child)
        return found

    def measure(self) -> None:
        """Heights by peeling final addresses off (Kahn); what never peels loops."""
        nodes = self.reachable()
        waiting: dict[str, int] = {}  # children not peeled yet
        parents: dict[str, list[str]] = {}
        ready = []
        for node in nodes:
            children = self._edges[node]  # all computed by reachable()
            if not children:
                ready.append(node)
                continue
            waiting[node] = len(children)
            for child in children:
                parents.setdefault(child, []).append(node)
        height, below = self.height, self.below
        height.update(dict.fromkeys(ready, 0))
        while ready:
            node = ready.pop()
            up = height[node] + 1
            for parent in parents.get(node, ()):
                if up > height.get(parent, 0):
                    height[parent], below[parent] = up, node
                waiting[parent] -= 1
                if not waiting[parent]:
                    ready.append(parent)
        self._measure_loops([node for node, count in waiting.items() if count])

    def _measure_loops(self, looping: list[str]) -> None:
        inside = set(looping)
        self.height.update(dict.fromkeys(looping, LOOPING))

        def edges(node: str) -> list[str]:
            return [child for child in self.edges(node) if child in inside]

        for component in strongly_connected(looping, edges):
            node = component[0]
            if len(component) > 1 or node in edges(node):
                self.cycle_of.update(dict.fromkeys(component, len(self.cycles)))
                self.cycles.append(component)
            else:  # leads into a loop, found before (successors first)
                self.cycle_of[node] = self.cycle_of[edges(node)[0]]

    def site(self, node: str) -> tuple[str, int]:
        alias = self.resolver.step(node).alias
        return self.paths.get(split_address(node)[1], ""), alias.line if alias else 0

    def loop_problems(self) -> list[Problem]:
        found = []
        starts = set(self.starts())
        for members in self.cycles:
            first = min(members, key=lambda node: (node not in starts, self.site(node), node))
            path, line = self.site(first)
            cycle = self.cycle_path(first, set(members))
            found.append(
                Problem(
                    path,
                    line,
                    "aliases.loop",
                    f"alias loop: {_show(self.resolver, cycle)}: chasquid answers 451 to mail "
                    f"for {'this address' if len(members) == 1 else 'these addresses'} "
                    "(recursion limit exceeded)",
                    _loop_hint(self.resolver, cycle),
                )
            )
        return found

    def cycle_path(self, first: str, members: set[str]) -> list[str]:
        parent: dict[str, str] = {}
        queue = deque([first])
        while queue:
            node = queue.popleft()
            for child in self.edges(node):
                if child == first:
                    path = [node]
                    while path[-1] != first:
                        path.append(parent[path[-1]])
                    return [*reversed(path), first]
                if child in members and child not in parent:
                    parent[child] = node
                    queue.append(child)
        return [first, first]  # not reached: a component holds a cycle through first

    def start_problems(self) -> list[Problem]:
        found = []
        for start in self.starts():
            height = self.height[start]
            if height == LOOPING and start not in self.cycles[self.cycle_of[start]]:
                found.append(self.into_loop(start))
            elif height >= RECURSION_LIMIT:
                found.append(self.too_deep(start))
        return found

    def into_loop(self, start: str) -> Problem:
        cycle = ", ".join(sorted(self.cycles[self.cycle_of[start]]))
        return Problem(
            *self.site(start),
            "aliases.loop",
            f"mail to {start} runs into the alias loop of {cycle}: chasquid answers 451 to it "
            "(recursion limit exceeded)",
            "break that loop (reported on its own line)",
        )

    def too_deep(self, start: str) -> Problem:
        chain = [start]
        while chain[-1] in self.below:
            chain.append(self.below[chain[-1]])
        return Problem(
            *self.site(start),
            "aliases.too-deep",
            f"mail to {start} passes {len(chain)} addresses ({_show(self.resolver, chain)}); "
            f"chasquid follows at most {RECURSION_LIMIT} and answers 451 "
            "(recursion limit exceeded)",
            f"shorten the chain: point {start} or an alias on the way nearer the end",
        )


def _show(resolver: Resolver, chain: list[str]) -> str:
    shown = [
        f"{node} (catch-all)" if resolver.step(node).how is How.CATCH_ALL else node
        for node in chain
    ]
    if len(shown) > _SHOWN:
        shown = [*shown[: _SHOWN // 2], "...", *shown[-_SHOWN // 2 :]]
    return " -> ".join(shown)


def _loop_hint(resolver: Resolver, cycle: list[str]) -> str:
    if len(cycle) == 2 and resolver.step(cycle[0]).how is How.ALIAS:
        return f"an alias cannot send to its own address ({cycle[0]}); remove it from the targets"
    return "break the loop: one of these addresses must lead to a user, a pipe or a remote address"


def strongly_connected(roots: Iterable[str], edges: Callable[[str], list[str]]) -> list[list[str]]:
    """Tarjan's components reachable from ``roots``, successors' components first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    work: list[tuple[str, Iterator[str]]] = []  # the DFS path, with each node's next edges

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        work.append((node, iter(edges(node))))

    for root in roots:
        if root in index:
            continue
        enter(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    found.append(_pop_component(stack, on_stack, node))
            elif child not in index:
                enter(child)
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    component = []
    while True:
        node = stack.pop()
        on_stack.discard(node)
        component.append(node)
        if node == root:
            return component
