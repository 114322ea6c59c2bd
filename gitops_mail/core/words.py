"""Counted nouns, one way everywhere: ``1 alias``, ``4 aliases``, ``0 errors``.

Plan, apply, history, status and the push feedback all count things in the
same words; the nouns they count are the plan's areas (``alias``, ``user``,
``manifest``...) and the findings' severities (``error``, ``warning``).
"""

from __future__ import annotations

# A plan area names a kind of change; some read better counted as what they are.
_COUNTED_AS = {
    "manifest": "manifest setting",
    "config": "config setting",
    "listen": "listen address",
}
_SIBILANT = ("s", "x", "z", "sh", "ch")


def plural(noun: str) -> str:
    """English plural of one of our nouns: ``alias`` -> ``aliases``, ``entry`` ->
    ``entries``, ``catch-all`` -> ``catch-alls``; the last word of a phrase."""
    if noun.endswith(_SIBILANT):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u", ""):
        return noun[:-1] + "ies"
    return noun + "s"


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``1 alias``, ``2 aliases``."""
    noun = _COUNTED_AS.get(noun, noun)
    return f"{n} {noun if n == 1 else plural(noun)}"
