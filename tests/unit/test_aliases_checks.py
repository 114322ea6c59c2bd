"""Aliases checks: exact problems, by chasquid's resolution rules."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_mail.core.checks.aliases import check_aliases
from gitops_mail.core.checks.graph import LOOPING, AliasGraph, graph_problems
from gitops_mail.core.formats.aliases.parse import (
    RECURSION_LIMIT,
    AliasFile,
    DomainAliases,
    Resolver,
    parse_aliases,
)
from gitops_mail.core.problems import Problem, Severity


def path(domain: str) -> str:
    return f"chasquid/domains/{domain}/aliases"


def setup(
    files: dict[str, str],
    users: dict[str, set[str]] | None = None,
    version: tuple[int, int] = (1, 11),
) -> tuple[Resolver, dict[str, tuple[str, AliasFile]]]:
    users = users or {}
    parsed = {d: (path(d), parse_aliases(text.encode(), path(d), d)) for d, text in files.items()}
    domains = {
        d: DomainAliases(frozenset(users.get(d, ())), f.effective()) for d, (_, f) in parsed.items()
    }
    return Resolver(domains, chasquid_version=version), parsed


def check(
    files: dict[str, str],
    users: dict[str, set[str]] | None = None,
    version: tuple[int, int] = (1, 11),
    allow_pipes: bool = True,
) -> list[Problem]:
    resolver, parsed = setup(files, users, version)
    return check_aliases(resolver, parsed, allow_pipes=allow_pipes)


def error(domain: str, line: int, code: str, message: str, hint: str) -> Problem:
    return Problem(path(domain), line, code, message, hint)


def warning(domain: str, line: int, code: str, message: str, hint: str) -> Problem:
    return Problem(path(domain), line, code, message, hint, Severity.WARNING)


def test_a_sound_setup_has_no_problems() -> None:
    files = {
        "d.test": "# forward\nann: ann@gmail.test\nteam: bob, ann, x@remote.test\n"
        "postmaster: bob\nabuse: postmaster\n*: bob\nbobs: bob\n",
        "e.test": "info: team@d.test, Bob@D.Test\n",
    }
    assert check(files, {"d.test": {"bob"}}) == []


def test_parser_problems_are_passed_through() -> None:
    assert check({"d.test": "broken\n"}) == [
        error(
            "d.test",
            1,
            "aliases.syntax",
            "missing ':' in 'broken' (an alias is `name: address, address` or `name: | command`)",
            "add the ':' after the alias name, or start the line with '#' for a comment "
            "(chasquid up to 1.15 skips this line silently, 1.16 and newer refuse the file)",
        )
    ]


def test_duplicates_warn_at_each_overridden_line() -> None:
    text = "a: x@r.test\nb: y@r.test\nA: z@r.test\na: w@r.test\n"
    assert check({"d.test": text}) == [
        warning(
            "d.test",
            1,
            "aliases.duplicate",
            "alias 'a' is defined again on line 4: chasquid uses the last definition and "
            "ignores this one",
            "delete this line, or merge its targets into line 4",
        ),
        warning(
            "d.test",
            3,
            "aliases.duplicate",
            "alias 'A' is defined again on line 4 (as 'a'): chasquid uses the last definition "
            "and ignores this one",
            "delete this line, or merge its targets into line 4",
        ),
    ]


def test_duplicates_after_dropping_characters_only_from_1_12() -> None:
    text = "a.b: x@r.test\nab: y@r.test\n"
    old = check({"d.test": text})
    assert [p.code for p in old] == ["aliases.unreachable"]
    (new,) = check({"d.test": text}, version=(1, 14))
    assert new == warning(
        "d.test",
        1,
        "aliases.duplicate",
        "alias 'a.b' is defined again on line 2 (as 'ab'): chasquid uses the last definition "
        "and ignores this one",
        "delete this line, or merge its targets into line 2",
    )


def test_names_with_drop_characters_or_suffixes_never_match_in_1_11() -> None:
    text = "First.Last: x@r.test\nbox+news: y@r.test\n"
    assert check({"d.test": text}) == [
        warning(
            "d.test",
            2,
            "aliases.unreachable",
            "alias 'box+news' never matches in chasquid 1.11: it removes '.' and cuts at '+' "
            "before the lookup, so mail to box+news@d.test looks for 'box'",
            "name the alias 'box' (from 1.12, chasquid matches 'box+news' as written)",
        ),
        warning(
            "d.test",
            1,
            "aliases.unreachable",
            "alias 'First.Last' never matches in chasquid 1.11: it removes '.' and cuts at '+' "
            "before the lookup, so mail to first.last@d.test looks for 'firstlast'",
            "name the alias 'firstlast' (from 1.12, chasquid matches 'First.Last' as written)",
        ),
    ]
    assert check({"d.test": text}, version=(1, 14)) == []


def test_an_alias_hiding_a_user_is_a_warning() -> None:
    assert check({"d.test": "me: me@gmail.test\n"}, {"d.test": {"me"}}) == [
        warning(
            "d.test",
            1,
            "aliases.shadows-user",
            "alias 'me' has the name of the user me@d.test: chasquid delivers mail for "
            "me@d.test to the alias, never to the user's mailbox",
            "nothing to do if the user only sends mail; else delete the alias (it cannot list "
            "its own address: that is a loop)",
        )
    ]


def test_pipes_need_to_be_allowed() -> None:
    problems = check({"d.test": "run: | /usr/bin/handler --work\n"}, allow_pipes=False)
    assert problems == [
        error(
            "d.test",
            1,
            "aliases.pipe-not-allowed",
            "alias 'run' pipes mail to a command ('/usr/bin/handler --work'), and pipe "
            "aliases are not enabled",
            "set `chasquid.pipe_aliases: true` in gitops-mail.yaml to allow them (the command "
            "runs as chasquid's user); the host's policy must allow them too "
            "(policy.pipe_aliases)",
        )
    ]
    assert check({"d.test": "run: | /usr/bin/handler --work\n"}) == []


@pytest.mark.parametrize(
    ("command", "how", "example"),
    [
        ("cat", "looks it up in its PATH", "/usr/bin/cat"),
        ("hooks/handle -v", "starts it in its config dir", "/usr/bin/handle"),
        ("./x", "starts it in its config dir", "/usr/bin/x"),
    ],
)
def test_pipe_commands_must_be_absolute(command: str, how: str, example: str) -> None:
    program = command.split(maxsplit=1)[0]
    assert check({"d.test": f"run: | {command}\n"}) == [
        error(
            "d.test",
            1,
            "aliases.pipe-relative",
            f"pipe command {program!r} of 'run' is not an absolute path: chasquid {how}",
            f"write the full path, for example {example}",
        )
    ]


def test_local_targets_must_lead_somewhere() -> None:
    files = {"d.test": "a: ghost, e.test-user@e.test, us.er, bob@e.test\n", "e.test": ""}
    assert check(files, {"d.test": {"user"}, "e.test": {"bob"}}) == [
        error(
            "d.test",
            1,
            "aliases.unknown-target",
            "target ghost@d.test of 'a' does not exist: d.test has no user, alias or "
            "catch-all for 'ghost', so its delivery fails",
            "add the user (gitops-mail user add ghost@d.test) or an alias, or correct the address",
        ),
        error(
            "d.test",
            1,
            "aliases.unknown-target",
            "target e.test-user@e.test of 'a' does not exist: e.test has no user, alias or "
            "catch-all for 'etest-user', so its delivery fails",
            "add the user (gitops-mail user add etest-user@e.test) or an alias, or correct "
            "the address",
        ),
    ]


def test_invalid_targets_are_reported_once() -> None:
    problems = check({"d.test": "a: bob smith\n"})
    assert [p.code for p in problems] == ["aliases.invalid-target"]


def test_targets_covered_by_a_catch_all_remote_or_localhost_are_fine() -> None:
    files = {"d.test": "a: ghost@e.test, x@remote.test, root@localhost\n", "e.test": "*: b\n"}
    assert check(files, {"e.test": {"b"}}) == []


def test_a_target_that_reaches_the_catch_all_instead_of_its_user_warns() -> None:
    files = {"d.test": "a: bob+lists@e.test, b.ob@e.test\n", "e.test": "*: x@r.test\n"}
    message = (
        "target {t} of 'a' goes to the catch-all of e.test, not to the user bob@e.test: "
        "chasquid asks whether {u!r} is a user before it removes drop characters and suffixes"
    )
    assert check(files, {"e.test": {"bob"}}) == [
        warning(
            "d.test",
            1,
            "aliases.catch-all-captures",
            message.format(t="bob+lists@e.test", u="bob+lists"),
            "write the target as bob@e.test",
        ),
        warning(
            "d.test",
            1,
            "aliases.catch-all-captures",
            message.format(t="b.ob@e.test", u="b.ob"),
            "write the target as bob@e.test",
        ),
    ]


def test_star_targets_are_not_checked_from_1_16() -> None:
    files = {"d.test": "*: *@e.test\n", "e.test": ""}
    assert check(files, version=(1, 16)) == []
    assert [p.code for p in check(files, version=(1, 14))] == ["aliases.unknown-target"]


def test_an_alias_sending_to_itself_is_a_loop() -> None:
    problems = check({"d.test": "x: y@r.test\nme: me, me@gmail.test\n"}, {"d.test": {"me"}})
    assert problems[-1] == error(
        "d.test",
        2,
        "aliases.loop",
        "alias loop: me@d.test -> me@d.test: chasquid answers 451 to mail for this address "
        "(recursion limit exceeded)",
        "an alias cannot send to its own address (me@d.test); remove it from the targets",
    )


def test_a_loop_across_domains_is_reported_once_with_its_path() -> None:
    files = {"d.test": "a: b\nb: c@e.test\nin: a\n", "e.test": "c: A+x@d.test\n"}
    into = (
        "mail to {}@d.test runs into the alias loop of a+x@d.test, b@d.test, c@e.test: "
        "chasquid answers 451 to it (recursion limit exceeded)"
    )
    assert check(files) == [
        error(
            "d.test",
            2,
            "aliases.loop",
            "alias loop: b@d.test -> c@e.test -> a+x@d.test -> b@d.test: chasquid answers 451 "
            "to mail for these addresses (recursion limit exceeded)",
            "break the loop: one of these addresses must lead to a user, a pipe or a remote "
            "address",
        ),
        error(
            "d.test",
            1,
            "aliases.loop",
            into.format("a"),
            "break that loop (reported on its own line)",
        ),
        error(
            "d.test",
            3,
            "aliases.loop",
            into.format("in"),
            "break that loop (reported on its own line)",
        ),
    ]


def test_a_loop_through_the_catch_all() -> None:
    assert check({"d.test": "a: ghost\n*: a\n"}) == [
        error(
            "d.test",
            1,
            "aliases.loop",
            "alias loop: a@d.test -> ghost@d.test (catch-all) -> a@d.test: chasquid answers 451 "
            "to mail for these addresses (recursion limit exceeded)",
            "break the loop: one of these addresses must lead to a user, a pipe or a remote "
            "address",
        ),
        error(
            "d.test",
            2,
            "aliases.loop",
            "mail to *@d.test runs into the alias loop of a@d.test, ghost@d.test: chasquid "
            "answers 451 to it (recursion limit exceeded)",
            "break that loop (reported on its own line)",
        ),
    ]


def chain(length: int, end: str = "end@remote.test") -> str:
    names = [f"n{i}" for i in range(length)]
    lines = [f"{a}: {b}" for a, b in itertools.pairwise(names)]
    return "\n".join([*lines, f"{names[-1]}: {end}"]) + "\n"


def test_chains_of_ten_addresses_pass_and_longer_ones_fail() -> None:
    assert check({"d.test": chain(9)}) == []
    assert check({"d.test": chain(10)}) == [
        error(
            "d.test",
            1,
            "aliases.too-deep",
            "mail to n0@d.test passes 11 addresses (n0@d.test -> n1@d.test -> n2@d.test -> "
            "n3@d.test -> n4@d.test -> n5@d.test -> n6@d.test -> n7@d.test -> n8@d.test -> "
            "n9@d.test -> end@remote.test); chasquid follows at most 10 and answers 451 "
            "(recursion limit exceeded)",
            "shorten the chain: point n0@d.test or an alias on the way nearer the end",
        )
    ]
    assert [(p.line, p.code) for p in check({"d.test": chain(12)})] == [
        (1, "aliases.too-deep"),
        (2, "aliases.too-deep"),
        (3, "aliases.too-deep"),
    ]


def test_long_chains_are_shortened_in_the_message() -> None:
    problem = check({"d.test": chain(20)})[0]
    assert problem.message.startswith(
        "mail to n0@d.test passes 21 addresses (n0@d.test -> n1@d.test -> n2@d.test -> "
        "n3@d.test -> n4@d.test -> n5@d.test -> ... -> n15@d.test -> n16@d.test -> "
        "n17@d.test -> n18@d.test -> n19@d.test -> end@remote.test); "
    )


def test_the_deepest_branch_is_shown() -> None:
    text = chain(9) + "top: short@remote.test, n0\n"
    (problem,) = check({"d.test": text})
    assert problem.line == 10
    assert "passes 11 addresses (top@d.test -> n0@d.test -> " in problem.message


def test_a_long_chain_does_not_hit_pythons_recursion_limit() -> None:
    problems = check({"d.test": chain(3000)})
    assert len(problems) == 3000 - RECURSION_LIMIT + 1


NAMES = ["a", "b", "c", "*", "a.b", "a+b", "u"]
TARGETS = [*NAMES, "u+x", "a@e.test", "z@remote.test", "| /bin/x", "*@e.test", "b@localhost"]
ALIAS_LINE = st.tuples(st.sampled_from(NAMES), st.lists(st.sampled_from(TARGETS), max_size=3))
ALIAS_FILE = st.lists(ALIAS_LINE, max_size=10).map(
    lambda lines: "".join(f"{name}: {', '.join(t)}\n" for name, t in lines)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ALIAS_FILE, ALIAS_FILE, st.sampled_from([(1, 11), (1, 14), (1, 16)]))
def test_fuzz_graph_flags_exactly_what_fails_to_resolve(
    first: str, second: str, version: tuple[int, int]
) -> None:
    resolver, parsed = setup(
        {"d.test": first, "e.test": second}, {"d.test": {"u"}, "e.test": {"a"}}, version
    )
    check_aliases(resolver, parsed, allow_pipes=False)  # never raises
    graph = AliasGraph(resolver, {d: p for d, (p, _) in parsed.items()})
    graph.measure()
    for start in graph.starts():
        found = resolver.resolve(start)
        if found.error == "more than 10000 recipients":
            continue
        height = graph.height[start]
        assert (found.error is not None) == (height == LOOPING or height >= RECURSION_LIMIT)
    graph_problems(resolver, {})  # no files: nothing to walk
