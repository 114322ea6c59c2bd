"""What DNS answered and how an answer is judged: plain values (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gitops_mail.core.dns.want import Question

Verdict = tuple[str, str, str]  # status, message, hint


@dataclass(frozen=True)
class Answer:
    values: tuple[str, ...] = ()  # rdata as text (TXT: its strings joined), empty: no record
    ttl: int | None = None
    error: str = ""  # the query failed (timeout, SERVFAIL, ...): nothing is known


@dataclass(frozen=True)
class SpfEval:
    """pyspf's verdict on a domain's SPF record, through the resolver."""

    results: tuple[tuple[str, str, str], ...]  # (address, result, explanation) per server address
    lookups: int  # DNS-querying terms a receiver meets at most (an address matching nothing)
    error: str = ""  # that worst-case evaluation's permerror/temperror, if any


@dataclass(frozen=True)
class Expect:
    check: str
    subject: str
    question: Question
    judge: Callable[[Answer], Verdict]  # the resolver's answer
    again: Callable[[Answer], bool] | None = None  # is an authoritative answer right?
