"""Checks of a users database: names, duplicates, schemes, scrypt parameters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mail.core.checks.users import _each_user, check_users
from gitops_mail.core.formats.users.db import (
    Denied,
    Plain,
    Scheme,
    Scrypt,
    User,
    UserDB,
    parse_users,
)
from gitops_mail.core.problems import Problem, Severity

PATH = "chasquid/domains/example.com/users"
DOMAIN = "example.com"
V111 = (1, 11)
GOOD = Scrypt(14, 8, 1, 32, b"s" * 16, b"k" * 32)


def check(*users: tuple[str, Scheme], version: tuple[int, int] = V111) -> list[Problem]:
    db = UserDB(tuple(User(name, scheme, 10 + i) for i, (name, scheme) in enumerate(users)))
    return check_users(db, PATH, DOMAIN, chasquid_version=version)


def only(problems: list[Problem]) -> Problem:
    [problem] = problems
    assert problem.path == PATH
    return problem


def test_a_good_database_has_no_problems() -> None:
    assert check(("admin", GOOD), ("ñandú", GOOD), ("john.doe+tag", GOOD)) == []


def test_an_empty_database_warns_that_every_user_goes() -> None:
    db, _ = parse_users(b"", PATH)
    assert db is not None
    problem = only(check_users(db, PATH, DOMAIN, chasquid_version=V111))
    assert (problem.code, problem.severity, problem.line) == ("users.empty", Severity.WARNING, None)
    assert problem.message == "users file has no users: chasquid drops every user of example.com"
    assert problem.hint == (
        "add one with `gitops-mail user add USER@example.com`,"
        " or delete the file if example.com should have no users"
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "it is empty"),
        ("a@b", "it contains '@' (the file holds only the part before the domain)"),
        ("a b", "it contains whitespace or a control character"),
        ("a\u00a0b", "it contains whitespace or a control character"),
        ("a\x85", "it contains whitespace or a control character"),
        ("ǅ", "it contains a compatibility character"),
        ("אa", "it mixes text directions against the Bidi rule"),
    ],
)
def test_invalid_names(name: str, why: str) -> None:
    problem = only(check((name, GOOD)))
    assert (problem.code, problem.line, problem.severity) == (
        "users.name_invalid",
        10,
        Severity.ERROR,
    )
    assert problem.message == f"user name {name!r} is not valid for chasquid: {why}"
    assert problem.hint == "remove the entry and add the user again with `gitops-mail user add`"


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("Admin", "admin"),
        ("Ñandú", "ñandú"),
        ("\uff46\uff55\uff4c\uff4c", "full"),
        ("\u03a3\u0391\u03a3", "\u03c3\u03b1\u03c3"),
    ],
)
def test_names_not_in_normal_form(name: str, normal: str) -> None:
    problem = only(check(("ok", GOOD), (name, GOOD)))
    assert (problem.code, problem.line) == ("users.name_not_normalized", 11)
    assert problem.message == (
        f"user name {name!r} is not in chasquid's normalised form: nobody can log in as it"
    )
    assert problem.hint == f"rename it to {normal!r}: chasquid looks up {normal}@example.com"


def test_duplicates_are_reported_at_the_later_line() -> None:
    problem = only(check(("a", GOOD), ("b", GOOD), ("a", GOOD)))
    assert (problem.code, problem.line, problem.severity) == ("users.duplicate", 12, Severity.ERROR)
    assert problem.message == (
        "user 'a' is listed again (first at line 10); chasquid keeps only the last entry"
    )
    assert problem.hint == "remove one of the two entries"


def test_duplicates_from_a_parsed_file() -> None:
    data = (
        b'users: {key: "a" value: {denied: {}}}\n\nusers: {\n  key: "a"\n  value: {denied: {}}\n}\n'
    )
    db, _ = parse_users(data, PATH)
    assert db is not None
    problems = check_users(db, PATH, DOMAIN, chasquid_version=(1, 14))
    assert [(p.code, p.line) for p in problems] == [("users.duplicate", 4)]
    assert "first at line 1" in problems[0].message


PASSWD_HINT = "set a new password with `gitops-mail user passwd a@example.com`"


@pytest.mark.parametrize(
    ("scheme", "message"),
    [
        (
            Scrypt(9, 8, 1, 32, b"s" * 16, b"k" * 32),
            "user 'a': scrypt logN is 9, outside the safe range 10..20",
        ),
        (
            Scrypt(21, 8, 1, 32, b"s" * 16, b"k" * 32),
            "user 'a': scrypt logN is 21, outside the safe range 10..20",
        ),
        (
            Scrypt(0, 8, 1, 32, b"s" * 16, b"k" * 32),
            "user 'a': scrypt logN is 0, outside the safe range 10..20"
            " (chasquid crashes when anyone tries to log in as this user)",
        ),
        (
            Scrypt(14, 0, 0, 32, b"s" * 16, b"k" * 32),
            "user 'a': scrypt r is 0, must be at least 1; scrypt p is 0, must be at least 1"
            " (chasquid crashes when anyone tries to log in as this user)",
        ),
        (
            Scrypt(14, 8, 1, 8, b"s" * 16, b"k" * 8),
            "user 'a': scrypt keyLen is 8, must be at least 16",
        ),
        (
            Scrypt(14, 8, 1, 0, b"", b""),
            "user 'a': scrypt keyLen is 0, must be at least 16 (chasquid accepts any password);"
            " scrypt salt is 0 bytes, must be at least 8",
        ),
        (
            Scrypt(14, 8, 1, 32, b"s" * 7, b"k" * 32),
            "user 'a': scrypt salt is 7 bytes, must be at least 8",
        ),
        (
            Scrypt(14, 8, 1, 32, b"s" * 16, b"k" * 31),
            "user 'a': scrypt hash is 31 bytes but keyLen is 32: no password can match",
        ),
        (
            Scrypt(20, 16, 1, 32, b"s" * 16, b"k" * 32),
            "user 'a': scrypt needs 2048 MiB per login (logN 20, r 16), more than 1024",
        ),
    ],
)
def test_scrypt_parameters(scheme: Scrypt, message: str) -> None:
    problem = only(check(("a", scheme)))
    assert (problem.code, problem.line, problem.severity) == (
        "users.scrypt_params",
        10,
        Severity.ERROR,
    )
    assert problem.message == message
    assert problem.hint == PASSWD_HINT


def test_scrypt_bounds_are_inclusive() -> None:
    assert check(("a", Scrypt(10, 1, 1, 16, b"s" * 8, b"k" * 16))) == []
    assert check(("a", Scrypt(20, 8, 1, 32, b"s" * 16, b"k" * 32))) == []


def test_plain_password_is_a_warning() -> None:
    problem = only(check(("a", Plain(b"secret"))))
    assert (problem.code, problem.line, problem.severity) == ("users.plain", 10, Severity.WARNING)
    assert problem.message == "user 'a' has its password stored in clear (plain scheme)"
    assert problem.hint == PASSWD_HINT
    assert "secret" not in problem.format()


def test_no_scheme_is_an_error() -> None:
    problem = only(check(("a", None)))
    assert (problem.code, problem.line, problem.severity) == ("users.no_scheme", 10, Severity.ERROR)
    assert problem.message == "user 'a' has no password scheme: nobody can log in as it"
    assert problem.hint == PASSWD_HINT


def test_receive_only_needs_chasquid_1_13() -> None:
    problem = only(check(("a", Denied())))
    assert (problem.code, problem.line, problem.severity) == (
        "users.denied_unsupported",
        10,
        Severity.ERROR,
    )
    assert problem.message == (
        "user 'a' is receive-only (denied), which chasquid 1.11 does not know:"
        " it refuses the whole users file (receive-only users need 1.13)"
    )
    assert problem.hint == (
        "if the server runs chasquid 1.13 or later, set `chasquid.version` in gitops-mail.yaml;"
        " otherwise give the user a password with `gitops-mail user passwd a@example.com`"
    )
    assert check(("a", Denied()), version=(1, 13)) == []
    assert check(("a", Denied()), version=(1, 18)) == []


def test_no_problem_shows_a_secret() -> None:
    salt, key = b"SALTSALTSALT", b"HASHHASHHASH"
    problems = check(
        ("A", Scrypt(0, 0, 0, 12, salt, key)),
        ("b", Plain(b"hunter2")),
        ("A", Scrypt(30, 8, 1, 12, salt, key)),
    )
    text = "\n".join(p.format() for p in problems)
    for secret in ("SALT", "HASH", "hunter2"):
        assert secret not in text


NAMES = st.sampled_from(["a", "b", "john.doe+x", "Admin", "a@b", "ñandú", "x y", "", "\x7f", "~!"])
SCHEMES = st.sampled_from(
    [
        GOOD,
        Scrypt(9, 8, 1, 32, b"s" * 16, b"k" * 32),
        Scrypt(14, 8, 1, 16, b"s" * 4, b"k" * 32),
        Scrypt(14, 8, 1, 0, b"", b""),
        Plain(b"x"),
        Denied(),
        None,
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(NAMES, SCHEMES), min_size=1, max_size=6), st.sampled_from([V111, (1, 13)])
)
def test_fuzz_the_usual_case_shortcut_finds_what_checking_each_user_finds(
    users: list[tuple[str, Scheme]], version: tuple[int, int]
) -> None:
    db = UserDB(tuple(User(name, scheme, 10 + i) for i, (name, scheme) in enumerate(users)))
    slow = _each_user(db, PATH, DOMAIN, version)  # every check on every user, in file order
    assert check_users(db, PATH, DOMAIN, chasquid_version=version) == slow
