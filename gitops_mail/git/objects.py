"""git's commit and tree objects, as ``git cat-file --batch`` gives them: pure parsing.

``git.read`` asks git for the objects; this module reads them. A tree object
is a run of ``<octal mode> <name>\\0<binary object id>`` entries, already in
git's order; walking the trees depth first in that order lists the files the
way ``git ls-tree -r`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

MODE_TREE = 0o40000

TreeEntry = tuple[bytes, int, str]  # name, mode, object id (hex)


def commit_fields(data: bytes) -> tuple[str, list[str]]:
    """The tree id and the parent ids of a commit object."""
    header = data.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    tree, parents = "", []
    for line in header.split("\n"):
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
    return tree, parents


def tree_entries(data: bytes, id_bytes: int) -> list[TreeEntry]:
    """The entries of a tree object whose ids take ``id_bytes`` bytes (20, or 32 for SHA-256)."""
    entries: list[TreeEntry] = []
    pos, end = 0, len(data)
    while pos < end:
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        oid = data[nul + 1 : nul + 1 + id_bytes].hex()
        entries.append((data[space + 1 : nul], int(data[pos:space], 8), oid))
        pos = nul + 1 + id_bytes
    return entries


def subtrees(entries: list[TreeEntry]) -> Iterator[str]:
    return (oid for _, mode, oid in entries if mode == MODE_TREE)


def walk(
    root: str, trees: Mapping[str, list[TreeEntry]], decode: Callable[[bytes], str]
) -> list[tuple[str, int, str]]:
    """``(path, mode, id)`` of every entry that is not a tree, in ``ls-tree -r`` order."""
    listing: list[tuple[str, int, str]] = []
    stack: list[tuple[bytes, Iterator[TreeEntry]]] = [(b"", iter(trees[root]))]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        name, mode, oid = entry
        if mode == MODE_TREE:
            stack.append((prefix + name + b"/", iter(trees[oid])))
        else:
            listing.append((decode(prefix + name), mode, oid))
    return listing


# One level of a revision's directories, for counting paths before listing them:
# tree id -> (how many paths lead to it, the longest of them, with a trailing "/").
# A tree may appear under many names (and the trees it holds under many more),
# so a few small trees can stand for millions of paths; counting level by level
# reads each tree once and never lists those paths.
Level = dict[str, tuple[int, bytes]]


def next_level(level: Level, trees: Mapping[str, list[TreeEntry]]) -> Level:
    """The trees one level below ``level``, each with its paths counted."""
    below: Level = {}
    for oid, (times, prefix) in level.items():
        for name, mode, sub in trees[oid]:
            if mode != MODE_TREE:
                continue
            path = prefix + name + b"/"
            seen = below.get(sub)
            if seen is None:
                below[sub] = (times, path)
            else:
                below[sub] = (seen[0] + times, path if len(path) > len(seen[1]) else seen[1])
    return below


def longest_entry(prefix: bytes, entries: list[TreeEntry]) -> bytes:
    """The longest path of an entry of a tree found at ``prefix``."""
    name = max((name for name, _, _ in entries), key=len, default=b"")
    return prefix + name
