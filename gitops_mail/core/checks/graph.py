"""Alias loops and over-deep chains, on the graph of addresses chasquid resolves.

A node is an address as chasquid passes it to its resolver; its edges are
the e-mail targets of the alias (or catch-all) it goes to. chasquid fails
with "recursion limit exceeded" (and answers 451) when resolving an address
needs its level 10: ``height`` (levels below a node) of 10 or more, or a
cycle. One pass of Tarjan's algorithm finds the strongly connected components
successors first, so each node's height is known from its children's when
its component closes: linear in the size of the graph.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gitops_mail.core.formats.addresses import split_address
from gitops_mail.core.formats.aliases.parse import RECURSION_LIMIT, How, Resolver, Step
from gitops_mail.core.problems import Problem

LOOPING = -1  # height of a node in, or leading into, a cycle
_SHOWN = 12  # addresses shown of a long chain


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
    cycles: list[list[str]] = field(default_factory=list)
    cycle_of: dict[str, int] = field(default_factory=dict)  # index into cycles
    _starts: list[str] | None = None
    _below: dict[str, str] | None = None

    def starts(self) -> list[str]:
        """The address of each alias in effect, where mail to it reaches that alias."""
        if self._starts is None:
            self._starts = [start for start, _ in self._find_starts()]
        return self._starts

    def _find_starts(self) -> Iterator[tuple[str, Step]]:
        step = self.resolver.step
        for domain in sorted(self.paths):
            aliases = self.resolver.aliases(domain)
            for key, alias in sorted(aliases.items(), key=lambda item: item[1].line):
                start = f"{key}@{domain}"
                found = step(start)
                if found.alias is alias:
                    yield start, found

    def edges(self, node: str) -> tuple[str, ...]:
        return self.resolver.step(node).emails

    def measure(self) -> None:
        """Heights and loops of every node reached from the starts, found on the way."""
        starts, height, step = [], self.height, self.resolver.step
        found = (
            self._find_starts() if self._starts is None else ((s, step(s)) for s in self._starts)
        )
        for root, root_step in found:
            starts.append(root)
            if root not in height and not self._settle(root, root_step.emails):
                self._tarjan(root)
        self._starts = starts

    def _settle(self, node: str, children: tuple[str, ...]) -> bool:
        """Give ``node`` its height if all its children have theirs (a final
        address has 0 at once): most aliases go to users and remote addresses only."""
        height, step = self.height, self.resolver.step
        if node in children:
            return False  # a loop of its own
        best, into = 0, None
        for child in children:
            below = height.get(child)
            if below is None:
                if step(child).emails:
                    return False  # not measured yet: needs the search
                below = height[child] = 0
            elif below == LOOPING and into is None:
                into = child  # node leads into a loop: the first on its way
            if below >= best:
                best = below + 1
        if into is None:
            height[node] = best
        else:
            height[node] = LOOPING
            self.cycle_of[node] = self.cycle_of[into]
        return True

    def _tarjan(self, root: str) -> None:
        """Tarjan's search from ``root``: components close successors first, so
        each node's children are measured when its own component closes."""
        height, edges = self.height, self.edges
        index = {root: 0}  # DFS order of the nodes entered; low links in ``low``
        low = {root: 0}
        stack = [root]  # Tarjan's stack: entered, component not closed yet
        work = [(root, iter(edges(root)))]  # the DFS path, each with its next edges
        while work:
            node, children = work[-1]
            for child in children:
                if child in height:  # closed: its component is done
                    continue
                if child in index:  # on the stack: in node's component
                    low[node] = min(low[node], index[child])
                    continue
                if not edges(child):
                    height[child] = 0
                    continue
                work.append((child, iter(edges(child))))
                index[child] = low[child] = len(index)
                stack.append(child)
                break
            else:
                work.pop()
                if low[node] != index[node]:
                    parent = work[-1][0]  # node is below the root of its component
                    low[parent] = min(low[parent], low[node])
                elif stack[-1] != node or not self._settle(node, edges(node)):  # a loop
                    self._close_loop(_pop_component(stack, node))
                else:
                    stack.pop()

    def _close_loop(self, component: list[str]) -> None:
        self.height.update(dict.fromkeys(component, LOOPING))
        self.cycle_of.update(dict.fromkeys(component, len(self.cycles)))
        self.cycles.append(component)

    def below(self) -> dict[str, str]:
        """The next node of each node's deepest chain, for the too-deep messages;
        built on first need. Among children of the same height it is the one
        Kahn's peeling (final addresses first, parents after all their children,
        last found first) reaches first: the chain these messages always showed."""
        if self._below is None:
            self._below = _peel(self.reachable(), self.edges)
        return self._below

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

    def site(self, node: str) -> tuple[str, int]:
        alias = self.resolver.step(node).alias
        return self.paths.get(split_address(node)[1], ""), alias.line if alias else 0

    def loop_problems(self) -> list[Problem]:
        found: list[Problem] = []
        starts = set(self.starts()) if self.cycles else set()
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
        below, chain = self.below(), [start]
        while chain[-1] in below:
            chain.append(below[chain[-1]])
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


def _peel(nodes: list[str], edges: Callable[[str], Sequence[str]]) -> dict[str, str]:
    """Kahn's algorithm over ``nodes`` (none in a loop is peeled): each parent's
    deepest child, the first peeled on a tie."""
    waiting: dict[str, int] = {}  # children not peeled yet
    parents: dict[str, list[str]] = {}
    ready = []
    for node in nodes:
        children = edges(node)
        if not children:
            ready.append(node)
            continue
        waiting[node] = len(children)
        for child in children:
            parents.setdefault(child, []).append(node)
    height, below = dict.fromkeys(ready, 0), {}
    while ready:
        node = ready.pop()
        up = height[node] + 1
        for parent in parents.get(node, ()):
            if up > height.get(parent, 0):
                height[parent], below[parent] = up, node
            waiting[parent] -= 1
            if not waiting[parent]:
                ready.append(parent)
    return below


def _pop_component(stack: list[str], root: str) -> list[str]:
    component = []
    while True:
        node = stack.pop()
        component.append(node)
        if node == root:
            return component
