"""The alias graph and the plan's dependents, against simple reference walks.

``AliasGraph`` measures every address in one pass (Tarjan's components,
successors first) and the plan finds the aliases a change can reach by walking
back from the changed domains. Here both are compared, on random alias files
over three domains (loops, self-loops, chains of depth 10 and 11, catch-alls,
cross-domain targets, ``*`` targets, pipes), with walks that take the
definitions literally: every path from every address.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_mail.core.checks.graph import LOOPING, AliasGraph
from gitops_mail.core.formats.aliases.parse import (
    RECURSION_LIMIT,
    DomainAliases,
    Resolver,
    parse_aliases,
)
from gitops_mail.core.plan.mail import format_resolution
from gitops_mail.core.plan.make import make_plan
from gitops_mail.core.snapshot import Entry, Snapshot
from gitops_mail.core.state import State, load_state

DOMAINS = ["d.test", "e.test", "f.test"]
USERS = {"d.test": {"u", "a"}, "e.test": {"u"}, "f.test": set[str]()}
NAMES = ["a", "b", "c", "n", "m", "*", "a.b", "a+b"]
TARGETS = [
    *NAMES[:5],
    "u",
    "u+x",
    "nobody",
    "a@e.test",
    "b@e.test",
    "c@f.test",
    "n@d.test",
    "*@e.test",
    "x@remote.test",
    "| /bin/true",
]
VERSIONS = [(1, 11), (1, 14), (1, 16)]


def _chain(length: int, end: str) -> str:
    """``k0 -> k1 -> ... -> k{length-1} -> end``: ``k0`` is ``length`` levels deep."""
    lines = [f"k{i}: k{i + 1}\n" for i in range(length - 1)]
    return "".join(lines) + f"k{length - 1}: {end}\n"


LINE = st.tuples(st.sampled_from(NAMES), st.lists(st.sampled_from(TARGETS), max_size=3))
CHAIN = st.tuples(st.sampled_from([9, 10, 11]), st.sampled_from(["u", "a", "k0", "x@remote.test"]))
FILE = st.tuples(st.lists(LINE, max_size=8), st.none() | CHAIN).map(
    lambda parts: (
        "".join(f"{name}: {', '.join(t)}\n" for name, t in parts[0])
        + (_chain(*parts[1]) if parts[1] else "")
    )
)
FILES = st.fixed_dictionaries({d: FILE for d in DOMAINS})


def _resolver(files: dict[str, str], version: tuple[int, int]) -> Resolver:
    domains = {
        d: DomainAliases(frozenset(USERS[d]), parse_aliases(text.encode(), d, d).effective())
        for d, text in files.items()
    }
    return Resolver(domains, chasquid_version=version)


def _beyond(edges: Callable[[str], tuple[str, ...]], node: str) -> set[str]:
    """Every address one step or more from ``node``."""
    found: set[str] = set()
    todo = list(edges(node))
    while todo:
        child = todo.pop()
        if child not in found:
            found.add(child)
            todo.extend(edges(child))
    return found


class Reference:
    """Heights and loops by their definitions, one walk per address."""

    def __init__(self, resolver: Resolver, starts: list[str]) -> None:
        self.edges = lambda node: resolver.step(node).emails
        self.nodes = set(starts).union(*(_beyond(self.edges, s) for s in starts))
        self.beyond = {node: _beyond(self.edges, node) for node in self.nodes}
        self.cyclic = {node for node in self.nodes if node in self.beyond[node]}

    def looping(self, node: str) -> bool:
        return node in self.cyclic or bool(self.beyond[node] & self.cyclic)

    def height(self, node: str) -> int:
        if self.looping(node):
            return LOOPING
        return max((self.height(child) + 1 for child in self.edges(node)), default=0)

    def cycle(self, node: str) -> frozenset[str]:
        """The loop ``node`` is in, else the first one its first looping children lead to."""
        while node not in self.cyclic:
            node = next(c for c in self.edges(node) if self.looping(c))
        return frozenset(
            m
            for m in self.cyclic
            if m == node or (node in self.beyond[m] and m in self.beyond[node])
        )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FILES, st.sampled_from(VERSIONS))
def test_graph_measures_what_the_reference_walk_finds(
    files: dict[str, str], version: tuple[int, int]
) -> None:
    resolver = _resolver(files, version)
    graph = AliasGraph(resolver, {d: d for d in DOMAINS})
    graph.measure()
    ref = Reference(resolver, graph.starts())
    assert graph.height == {node: ref.height(node) for node in ref.nodes}
    loops = {frozenset(members) for members in graph.cycles}
    assert loops == {ref.cycle(node) for node in ref.cyclic}
    for node in ref.nodes:
        if ref.looping(node):
            assert frozenset(graph.cycles[graph.cycle_of[node]]) == ref.cycle(node)
    below = graph.below()
    for start in graph.starts():
        height = graph.height[start]
        if height >= RECURSION_LIMIT:  # the chain shown is one of the deepest
            chain = [start]
            while chain[-1] in below:
                chain.append(below[chain[-1]])
            assert [graph.height[n] for n in chain] == list(range(height, -1, -1))
            assert all(b in ref.edges(a) for a, b in itertools.pairwise(chain))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FILES, FILES, st.lists(st.booleans(), min_size=3, max_size=3), st.sampled_from(VERSIONS))
def test_plan_lists_exactly_the_aliases_whose_resolution_changed(
    before: dict[str, str], after: dict[str, str], same: list[bool], version: tuple[int, int]
) -> None:
    after = {d: before[d] if keep else after[d] for d, keep in zip(DOMAINS, same, strict=True)}
    base, new = _state(before, version, "a"), _state(after, version, "b")
    changes = make_plan(base, new).changes
    listed = [c for c in changes if c.op == "resolution changed"]
    changed = {c.subject for c in changes if c.op != "resolution changed"}
    expected = []
    for domain in DOMAINS:
        old = base.domains[domain].aliases
        cur = new.domains[domain].aliases
        assert old is not None and cur is not None
        for key in sorted(old.effective().keys() & cur.effective().keys()):
            address = f"{key}@{domain}"
            was, now = _resolution(base, address), _resolution(new, address)
            if address not in changed and was != now:
                expected.append((address, was, now))
    assert [(c.subject, c.before, c.after) for c in listed] == expected


def _state(files: dict[str, str], version: tuple[int, int], name: str) -> State:
    shown = ".".join(map(str, version))
    entries = {"gitops-mail.yaml": Entry(f'version: 1\nchasquid:\n  version: "{shown}"\n'.encode())}
    for domain, text in files.items():
        entries[f"chasquid/domains/{domain}/aliases"] = Entry(text.encode())
    return load_state(Snapshot(entries, name, revision=name * 40))


def _resolution(state: State, address: str) -> str | None:
    """What the plan shows for ``address``: None where chasquid refuses it."""
    found = state.resolver.resolve(address)
    if not found.exists and found.error is None:
        return None
    return format_resolution(found, mark_catch_all=not address.startswith("*@"))
