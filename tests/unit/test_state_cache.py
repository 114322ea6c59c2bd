"""The parse cache of ``load_state``: shared files parse once, old revisions are let go."""

from __future__ import annotations

from support.repo import ALIASES, ALIASES_PATH, snapshot

from gitops_mail.core import state
from gitops_mail.core.snapshot import Snapshot
from gitops_mail.core.state import load_state


def revision(n: int) -> Snapshot:
    return snapshot({ALIASES_PATH: ALIASES + f"alias{n}: owner@gmail.com\n"})


def cached_aliases() -> set[bytes]:
    return {key[0] for key in state._parse_aliases_cached.entries}


def test_a_file_unchanged_between_two_reads_is_parsed_once() -> None:
    first = load_state(revision(1))
    again = load_state(revision(1))
    assert again.domains["example.com"].aliases is first.domains["example.com"].aliases


def test_only_what_the_last_three_reads_used_is_kept() -> None:
    for n in range(1000):
        load_state(revision(n))
    kept = {f"{ALIASES}alias{n}: owner@gmail.com\n".encode() for n in (997, 998, 999)}
    assert cached_aliases() == kept


def test_a_file_still_in_use_survives_however_many_reads_share_it() -> None:
    shared = load_state(revision(0)).domains["example.com"].aliases
    for n in range(1, 50):
        load_state(revision(n))
        assert load_state(revision(0)).domains["example.com"].aliases is shared
