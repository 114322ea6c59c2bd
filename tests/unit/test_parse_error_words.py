"""Parse errors of the users file and chasquid.conf repeat nothing of the file.

A token where a field name or a number belongs may be a secret pasted on the
wrong line (a salt, a hash, a password). Every error says where (line, column)
and what kind of mistake, in words from a fixed list and names the schema
defines; the tests put secret-looking tokens at each kind of place, through the
fast readers and the protobuf library, and look for any piece of them.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mail.core.formats.chasquid_conf import parse_config
from gitops_mail.core.formats.prototext import words
from gitops_mail.core.formats.users.db import fast_parse, parse_users
from gitops_mail.core.problems import Problem

SALT = "Q2FsdFNlY3JldDk4NzY1NDMy"  # base64-looking, as a salt would be
HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # sha256 hex
NUMERIC = "98765432109876543210"  # a number out of any range
USERS_PATH = "chasquid/domains/example.com/users"
CONF_PATH = "chasquid/chasquid.conf"
GOOD_USER = (
    b'users: {\n  key: "ana"\n  value: {\n    scrypt: {\n      logN: 14\n      r: 8\n'
    b'      p: 1\n      keyLen: 32\n      salt: "\\x01\\x02"\n      encrypted: "\\x03"\n'
    b"    }\n  }\n}\n"
)


def pieces(secret: str, size: int = 5) -> set[str]:
    """Every run of ``size`` characters of ``secret``: none may be in a message."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def assert_says_nothing_of(problem: Problem, secret: str) -> None:
    said = f"{problem.path} {problem.message} {problem.hint} {problem.format()}"
    leaked = sorted(piece for piece in pieces(secret) if piece in said)
    assert leaked == [], f"{problem.format()!r} repeats {leaked}"
    assert problem.line is not None and problem.column is not None


USERS_CASES = [
    # where a field name belongs: top level, in an entry, in a scheme, in scrypt
    (b"%s: {}\n", SALT, (1, 1), "unknown field (here: users)"),
    (b'users: {key: "a" %s: {}}', SALT, (1, 18), "unknown field (here: key, value)"),
    (
        b'users: {key: "a" value: {%s {}}}',
        HASH,
        (1, 26),
        "unknown field (here: scrypt, plain, denied)",
    ),
    (b'users: {key: "a" value: {scrypt: {%s: 1}}}', SALT, (1, 35), "unknown field"),
    (b'users: {key: "a" value: {plain: {password: "x" %s: 1}}}', SALT, (1, 48), "unknown field"),
    (b"users: {[%s]: 1}", SALT, (1, 10), '"[" where a field name should be'),
    # where a number belongs
    (b'users: {key: "a" value: {scrypt: {logN: %s}}}', HASH, (1, 41), "expected a number for logN"),
    (b'users: {key: "a" value: {scrypt: {r: %s}}}', NUMERIC, (1, 38), "number out of range for r"),
    (b'users: {key: "a" value: {scrypt: {keyLen: -%s}}}', SALT, (1, 43), "expected a number"),
    # where a string belongs, or inside one
    (b'users: {key: "a" value: {scrypt: {salt: %s}}}', SALT, (1, 41), "expected a quoted string"),
    (b'users: {key: "a" value: {scrypt: {salt: "%s}}}', SALT, (1, 41), "a string has no closing"),
    (
        b'users: {key: "a" value: {scrypt: {salt: "\\777%s"}}}',
        SALT,
        (1, 41),
        "a string has an octal escape past",
    ),
    (b'users: {key: "\\xff%s"}', SALT, (1, 44), "a string is not valid UTF-8"),
    (
        b'users: {key: "a" value: {plain: {password: "\\z%s"}}}',
        SALT,
        (1, 45),
        "a string has an escape sequence",
    ),
    (b'users: {key: "%s\xff"}', SALT, (1, 39), "not valid UTF-8"),
    # between fields
    (b'users:\xc2\xa0{key: "%s"}', SALT, (1, 7), "unexpected special space"),
    (b'users: {key: "a"} %s', SALT, (1, 19), "unknown field (here: users)"),
]


@pytest.mark.parametrize(("template", "secret", "where", "words_"), USERS_CASES)
def test_users_file_errors_never_repeat_a_token(
    template: bytes, secret: str, where: tuple[int, int], words_: str
) -> None:
    data = template % secret.encode()
    if not data.endswith(b'\xff"}'):  # bytes that are not UTF-8 never reach a reader
        assert fast_parse(data.decode()) is None  # the library judges it
    db, [problem] = parse_users(data, USERS_PATH)
    assert db is None
    assert_says_nothing_of(problem, secret)
    assert (problem.line, problem.column) == where
    assert problem.message.startswith(f"cannot parse users file: {words_}")


def test_a_bad_line_after_good_entries_repeats_none_of_them() -> None:
    data = GOOD_USER + f"users: {{key: {SALT}}}\n".encode()
    db, [problem] = parse_users(data, USERS_PATH)
    assert db is None
    assert problem.message == "cannot parse users file: expected a quoted string for key"
    assert_says_nothing_of(problem, SALT)
    assert "\\x01" not in problem.message


CONF_CASES = [
    # the lexer (Go's rules) finds these
    ("max_data_size_mb: +%s", "syntax error: invalid scalar value"),
    ('hostname: "\\q%s"', "syntax error: invalid escape code in string"),
    ('hostname: "\\400%s"', "syntax error: invalid escape code in string"),
    ('%s: "\\xff"', "unknown field"),
    ('hostname: "%s', "syntax error: unterminated string"),
    ('hostname:\u00a0"%s"', "syntax error: unexpected special space (such as a no-break space)"),
    # the protobuf library finds these
    ('hostname: "mail.example.com"\n%s: 1', "unknown field"),
    ("%s", "unknown field"),
    ("max_data_size_mb: %s", "syntax error: expected a number for max_data_size_mb"),
    ("max_queue_items: 9%s", "syntax error: expected a number for max_queue_items"),
    ("hostname: %s", "syntax error: expected a quoted string for hostname"),
    ("dovecot_auth: %s", "syntax error: expected true or false for dovecot_auth"),
    ('smtp_address: [":25", %s]', "syntax error: expected a quoted string"),
    ('hostname: "x" [%s]: 1', 'syntax error: "[" where a field name should be'),
]


@pytest.mark.parametrize("secret", [SALT, HASH])
@pytest.mark.parametrize(("template", "message"), CONF_CASES)
def test_chasquid_conf_errors_never_repeat_a_token(template: str, message: str, secret: str):
    cfg, [problem] = parse_config((template % secret).encode(), CONF_PATH)
    assert cfg is None
    assert_says_nothing_of(problem, secret)
    assert problem.message == message


def test_a_number_out_of_range_is_not_repeated() -> None:
    _, [problem] = parse_config(f"max_queue_items: {NUMERIC}".encode(), CONF_PATH)
    assert problem.message == "syntax error: number out of range for max_queue_items"
    assert_says_nothing_of(problem, NUMERIC)


def test_an_unknown_field_still_gets_a_did_you_mean_among_known_names() -> None:
    _, [problem] = parse_config(b'smtp_adress: ":25"', CONF_PATH)
    assert (problem.message, problem.hint) == (
        "unknown field",
        'did you mean "smtp_address"? chasquid refuses to start with a field it does not know',
    )


# --- any secret, anywhere ------------------------------------------------------------

# Upper case and digits: no run of five of them is in any of our words or field names.
SECRETS = st.text("ABCDEFGHJKMNPQRSTUVWXYZ23456789", min_size=12, max_size=40)
SEPARATORS = st.sampled_from(["", " ", "\n", ": ", '"', "{", "}", "[", "\\", "\xa0", "\\x"])


@settings(max_examples=300, deadline=None)
@given(SECRETS, st.integers(min_value=0, max_value=len(GOOD_USER)), SEPARATORS, SEPARATORS)
def test_a_secret_dropped_anywhere_in_a_users_file(secret, at, before, after) -> None:
    data = GOOD_USER[:at] + (before + secret + after).encode() + GOOD_USER[at:]
    _, problems = parse_users(data, USERS_PATH)
    for problem in problems:
        assert_says_nothing_of(problem, secret)


CONF = b'hostname: "mail.example.com"\nmax_data_size_mb: 50\nsmtp_address: [":25", ":2525"]\n'


@settings(max_examples=300, deadline=None)
@given(SECRETS, st.integers(min_value=0, max_value=len(CONF)), SEPARATORS, SEPARATORS)
def test_a_secret_dropped_anywhere_in_chasquid_conf(secret, at, before, after) -> None:
    data = CONF[:at] + (before + secret + after).encode() + CONF[at:]
    _, problems = parse_config(data, CONF_PATH)
    for problem in problems:
        assert_says_nothing_of(problem, secret)


def test_describe_says_only_its_own_words_for_a_message_it_does_not_know() -> None:
    assert words.describe(f"Something new about {SALT}", {}) == words.GENERIC
    assert words.describe(f'Expected "{SALT}".', {}) == words.GENERIC
    fields = {"t": ("known",)}
    assert words.describe(
        f'Message type "t" should not have multiple "{SALT}" fields.', fields
    ) == (words.GENERIC)
    assert words.describe("Couldn't parse integer: x", fields, field=SALT) == "expected a number"
