"""Reading, writing, hashing and normalising chasquid's users database."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_mail.core.formats.users.db import (
    Denied,
    InvalidUserName,
    Plain,
    Scheme,
    Scrypt,
    User,
    UserDB,
    describe_scheme,
    fast_parse,
    hash_password,
    library_parse,
    normalize_user,
    parse_users,
    remove_user,
    render_users,
    set_user,
    verify_password,
)
from gitops_mail.core.problems import Severity

PATH = "chasquid/domains/example.com/users"

# Written by `chasquid-util user-add` (1.11): "Ñandú" / "contraseña-ü", "admin" / "hunter2".
# Raw UTF-8 runs inside the hashes, \xNN, \r and \\ escapes, as Go writes them.
CHASQUID_UTIL_FILE = (
    b'users: {\n  key: "admin"\n  value: {\n    scrypt: {\n      logN: 14\n      r: 8\n'
    b"      p: 1\n      keyLen: 32\n"
    b'      salt: "n\\x95}1\\xe4\\x1c\\x8d\\xa2\\xf1T1\\x1a\\xdfm\xde\x94"\n'
    b'      encrypted: "X\\xc4k\\r\\xcf}j<\\x9d7\\xf5\\x84^\\xb3\\xe1H\\x04w\\xee\\xb2h\\\\\\xae>+>'
    b'\\xfc.\\xc4(#\\x8f"\n    }\n  }\n}\n'
    b'users: {\n  key: "\xc3\xb1and\xc3\xba"\n  value: {\n    scrypt: {\n      logN: 14\n'
    b"      r: 8\n      p: 1\n      keyLen: 32\n"
    b'      salt: "\\xa5\\xbdw\\x7f\\x9c\\xd2R\\x99>\\xcde\\x9a\\xe8\\x94\\x01\\xd2"\n'
    b'      encrypted: "\\x1dK\\x8d\\x90\\x87eD\\xfes\\xfc\\xa6b)K\\xf7\\xe3\\x0c\\xa7d\xde\xb7'
    b'\xd5\x96\\xd8\\xc0\\x8c\\xe4\\xf6D\\x1b!H"\n    }\n  }\n}\n'
)
HINT = (
    "fix the file at this position, or re-create its users with `gitops-mail user add USER@DOMAIN`"
)


def parsed(data: bytes) -> UserDB:
    db, problems = parse_users(data, PATH)
    assert problems == []
    assert db is not None
    return db


def syntax_problem(data: bytes) -> tuple[int | None, int | None, str]:
    db, problems = parse_users(data, PATH)
    assert db is None
    [problem] = problems
    assert (problem.code, problem.severity, problem.hint) == ("users.syntax", Severity.ERROR, HINT)
    assert problem.path == PATH
    return problem.line, problem.column, problem.message


# --- reading --------------------------------------------------------------------------


def test_reads_a_file_written_by_chasquid_util() -> None:
    db = parsed(CHASQUID_UTIL_FILE)
    assert [(u.name, u.line, describe_scheme(u.scheme)) for u in db.users] == [
        ("admin", 2, "scrypt"),
        ("ñandú", 15, "scrypt"),
    ]
    admin, nandu = db.users
    assert isinstance(admin.scheme, Scrypt)
    assert (admin.scheme.log_n, admin.scheme.r, admin.scheme.p, admin.scheme.key_len) == (
        14,
        8,
        1,
        32,
    )
    assert admin.scheme.salt == b"n\x95}1\xe4\x1c\x8d\xa2\xf1T1\x1a\xdfm\xde\x94"
    assert len(admin.scheme.encrypted) == 32
    assert verify_password(admin.scheme, "hunter2")
    assert not verify_password(admin.scheme, "hunter3")
    assert verify_password(nandu.scheme, "contraseña-ü")
    assert not verify_password(nandu.scheme, "contrasena-u")


def test_the_fast_reader_takes_chasquid_util_files() -> None:
    text = CHASQUID_UTIL_FILE.decode()
    assert fast_parse(text) == library_parse(text, PATH)[0] == parsed(CHASQUID_UTIL_FILE)


@pytest.mark.parametrize("data", [b"", b"\n\n", b"  \t\r\n", b"# nothing yet\n"])
def test_an_empty_file_is_an_empty_database(data: bytes) -> None:
    assert parsed(data) == UserDB(())


def test_layouts_other_than_chasquid_utils_read_the_same() -> None:
    compact = b'users {key: "a" value {plain {password: "x"}}} users: {key: "b" value: {denied {}}}'
    commented = (
        b'# team\nusers: {\n  # first\n  key: "a"\n  value: {plain: {password: "x"}}\n}\n'
        b"users: [{\n  key: 'b'\n  value: {denied: {}}\n}]\n"
    )
    expected = (User("a", Plain(b"x"), 1), User("b", Denied(), 1))
    assert parsed(compact).users == expected
    assert fast_parse(compact.decode()) is not None
    assert parsed(commented).users == (User("a", Plain(b"x"), 4), User("b", Denied(), 8))
    assert fast_parse(commented.decode()) is None


def test_entry_without_scheme_or_key() -> None:
    db = parsed(b'users: {key: "a" value: {}}\nusers: {key: "b"}\nusers: {}\n')
    assert db.users == (User("a", None, 1), User("b", None, 2), User("", None, 3))


def test_duplicates_are_kept_in_order_and_the_last_wins() -> None:
    db = parsed(
        b'users: {key: "a" value: {plain: {password: "one"}}}\n'
        b'users: {key: "b" value: {denied: {}}}\n'
        b'users: {key: "a" value: {plain: {password: "two"}}}\n'
    )
    assert [(u.name, u.line) for u in db.users] == [("a", 1), ("b", 2), ("a", 3)]
    assert db.by_name()["a"] == User("a", Plain(b"two"), 3)
    assert db.names() == frozenset({"a", "b"})


def test_zero_values_may_be_written_or_left_out() -> None:
    explicit = b'users: {key: "a" value: {scrypt: {logN: 0 r: 0 p: 0 keyLen: 0 salt: ""}}}'
    omitted = b'users: {key: "a" value: {scrypt: {}}}'
    assert (
        parsed(explicit) == parsed(omitted) == UserDB((User("a", Scrypt(0, 0, 0, 0, b"", b""), 1),))
    )


def test_string_escapes_octal_hex_unicode_and_quotes() -> None:
    db = parsed(
        b'users: {key: "a" value: {plain: {password: "\\101\\x42\\u00e9\\"\\\\\\t\xc3\xa9"}}}'
    )
    assert db.users[0].scheme == Plain(b'AB\xc3\xa9"\\\t\xc3\xa9')


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'users: {\n  key: "a"\n  valu: {}\n}\n', (3, 3)),
        (b'users: {\n  key: "a"\n', (2, 8)),
        (b'users: {key: "a" key: "b"}', (1, 23)),
    ],
)
def test_syntax_errors_carry_the_parsers_words_and_position(
    data: bytes, where: tuple[int, int]
) -> None:
    line, column, message = syntax_problem(data)
    assert (line, column) == where
    assert (
        message
        == {
            (3, 3): "cannot parse users file: unknown field (here: key, value)",
            (2, 8): 'cannot parse users file: expected "}"',
            (1, 23): 'cannot parse users file: field "key" is set twice',
        }[where]
    )


def test_two_schemes_in_one_entry() -> None:
    assert syntax_problem(b'users: {key: "a" value: {scrypt: {} plain: {}}}\n') == (
        1,
        37,
        'cannot parse users file: "plain" and "scrypt" cannot both be set (only one of them)',
    )


def test_numbers_out_of_range() -> None:
    assert syntax_problem(b'users: {key: "a" value: {scrypt: {r: 3000000000}}}\n') == (
        1,
        38,
        "cannot parse users file: number out of range for r",
    )
    assert syntax_problem(b'users: {key: "a" value: {scrypt: {logN: -1}}}\n') == (
        1,
        41,
        "cannot parse users file: number out of range for logN",
    )


def test_parse_errors_never_quote_a_secret() -> None:
    unquoted = b'users: {key: "a" value: {plain: {password: hunter2}}}'
    unterminated = b'users: {key: "a" value: {plain: {password: "hunter2}}}'
    assert syntax_problem(unquoted) == (
        1,
        44,
        "cannot parse users file: expected a quoted string for password",
    )
    assert syntax_problem(unterminated) == (
        1,
        44,
        "cannot parse users file: a string has no closing quote",
    )
    message = syntax_problem(b'users: {key: "a" value: {plain: {password: "\\x"}}}')[2]
    assert "users:" not in message  # the library copies the line; we drop it


def test_non_utf8_bytes_are_a_problem_not_a_traceback() -> None:
    assert syntax_problem(b'users: {\n  key: "a\xff"\n}\n') == (
        2,
        10,
        "cannot parse users file: not valid UTF-8",  # not the byte: it may be a secret's
    )
    assert syntax_problem(b"\xfe") == (1, 1, "cannot parse users file: not valid UTF-8")


def test_a_key_that_is_not_utf8_after_unescaping() -> None:
    line, column, message = syntax_problem(b'users: {key: "\\xff"}\n')
    assert (line, column) == (1, 20)
    assert (
        message == "cannot parse users file: a string is not valid UTF-8 once its escapes are read"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'users:\xc2\xa0{key: "a"}\n',
            (1, 7, "unexpected special space (such as a no-break space) between fields"),
        ),
        (b'users {key: "a"}\x0b\n', (1, 17, "unexpected control character between fields")),
    ],
)
def test_whitespace_that_go_refuses(data: bytes, expected: tuple[int, int, str]) -> None:
    line, column, why = expected
    assert syntax_problem(data) == (
        line,
        column,
        f"cannot parse users file: {why}"
        " (chasquid accepts only spaces, tabs and line breaks there)",
    )


def test_string_contents_that_go_refuses() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        escape = syntax_problem(b'users: {key: "a" value: {plain: {password: "x\\yz"}}}\n')
        nul = syntax_problem(b'users: {key: "a" value: {plain: {password: "x\x00"}}}\n')
    assert escape == (
        1,
        46,
        "cannot parse users file: a string has an escape sequence chasquid does not accept",
    )
    assert nul == (
        1,
        46,
        "cannot parse users file: a string contains a raw NUL character (write it as \\000)",
    )


def test_the_first_of_a_refusal_and_a_parse_error_is_reported() -> None:
    data = b'users: {key: "a" valu: {}}\nusers:\xc2\xa0{}\n'
    assert syntax_problem(data)[:2] == (1, 18)
    data = b'users:\xc2\xa0{key: "a"}\nusers: {valu: {}}\n'
    assert syntax_problem(data)[:2] == (1, 7)


# --- writing ---------------------------------------------------------------------------


def test_render_is_byte_identical_to_chasquid_util() -> None:
    assert render_users(parsed(CHASQUID_UTIL_FILE)) == CHASQUID_UTIL_FILE


def test_render_every_scheme() -> None:
    db = UserDB(
        (
            User("a", Scrypt(10, 8, 1, 4, b'\x00\x85\xc2\x85\xe9"\\\n', b"\xc3\xa9\x7f\t"), 0),
            User("b", Plain(b"pw"), 0),
            User("c", Plain(b""), 0),
            User("d", Denied(), 0),
            User("e", None, 0),
            User("f", Scrypt(0, 0, 0, 0, b"", b""), 0),
        )
    )
    assert render_users(db).decode() == (
        'users: {\n  key: "a"\n  value: {\n    scrypt: {\n      logN: 10\n      r: 8\n'
        '      p: 1\n      keyLen: 4\n      salt: "\\x00\\x85\\u0085\\xe9\\"\\\\\\n"\n'
        '      encrypted: "é\\x7f\\t"\n    }\n  }\n}\n'
        'users: {\n  key: "b"\n  value: {\n    plain: {\n      password: "pw"\n    }\n  }\n}\n'
        'users: {\n  key: "c"\n  value: {\n    plain: {}\n  }\n}\n'
        'users: {\n  key: "d"\n  value: {\n    denied: {}\n  }\n}\n'
        'users: {\n  key: "e"\n  value: {}\n}\n'
        'users: {\n  key: "f"\n  value: {\n    scrypt: {}\n  }\n}\n'
    )
    again = parsed(render_users(db))
    assert [(u.name, u.scheme) for u in again.users] == [(u.name, u.scheme) for u in db.users]
    assert [u.line for u in again.users] == [2, 15, 23, 29, 35, 39]


def test_set_user_replaces_in_place_and_appends() -> None:
    db = parsed(
        b'users: {key: "a" value: {denied: {}}}\nusers: {key: "b" value: {}}\n'
        b'users: {key: "a" value: {plain: {password: "x"}}}\nusers: {key: "c" value: {}}\n'
    )
    replaced = set_user(db, "a", Plain(b"new"))
    assert replaced.users == (
        User("a", Plain(b"new"), 1),
        User("b", None, 2),
        User("c", None, 4),
    )
    appended = set_user(db, "z", Denied())
    assert appended.users == (*db.users, User("z", Denied(), 0))


def test_remove_user_drops_every_entry_of_the_name() -> None:
    db = parsed(b'users: {key: "a"}\nusers: {key: "b"}\nusers: {key: "a"}\n')
    assert remove_user(db, "a").users == (User("b", None, 2),)
    assert remove_user(db, "nobody") == db


# --- passwords ---------------------------------------------------------------------------


def test_hash_password_uses_chasquids_parameters() -> None:
    scheme = hash_password("secret")
    assert (scheme.log_n, scheme.r, scheme.p, scheme.key_len) == (14, 8, 1, 32)
    assert len(scheme.salt) == 16
    assert len(scheme.encrypted) == 32
    assert hash_password("secret").salt != scheme.salt
    assert verify_password(scheme, "secret")
    assert not verify_password(scheme, "Secret")


def test_hash_password_matches_the_rfc_7914_vector() -> None:
    scheme = hash_password("password", log_n=10, r=8, p=16, key_len=64, salt=b"NaCl")
    assert scheme.encrypted.hex() == (
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
    )


def test_verify_password_per_scheme() -> None:
    assert verify_password(Plain("pässword".encode()), "pässword")
    assert not verify_password(Plain(b"x"), "y")
    assert not verify_password(Denied(), "")
    assert not verify_password(None, "")
    # Parameters Go's scrypt refuses: chasquid panics, nobody logs in.
    for log_n, r, p, key_len in [(0, 8, 1, 32), (64, 8, 1, 32), (10, 0, 1, 32), (10, 8, 0, 32)]:
        assert not verify_password(Scrypt(log_n, r, p, key_len, b"salt", b""), "x")
    assert not verify_password(Scrypt(10, 8, 1, -1, b"salt", b""), "x")


def test_key_length_zero_accepts_any_password_as_in_chasquid() -> None:
    assert verify_password(Scrypt(14, 8, 1, 0, b"", b""), "anything at all")


def test_describe_scheme_never_shows_secrets() -> None:
    schemes: list[Scheme] = [hash_password("x", log_n=10), Plain(b"x"), Denied(), None]
    assert [describe_scheme(s) for s in schemes] == ["scrypt", "plain", "receive-only", "none"]


def test_receive_only_entries_are_alike_and_true() -> None:
    assert Denied() == Denied()
    assert hash(Denied()) == hash(Denied())
    assert Denied() not in (Plain(b""), None, ())
    assert bool(Denied())


def test_octal_escapes_past_377_are_left_to_the_library() -> None:
    text = 'users: {\n  key: "a"\n  value: {\n    plain: {\n      password: "\\400"\n'
    text += "    }\n  }\n}\n"
    assert fast_parse(text) is None
    assert fast_parse(text.replace("400", "377")) == parsed(text.replace("400", "377").encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db, problems = parse_users(text.encode(), PATH)
    assert db is None
    assert [(p.line, p.column, p.message) for p in problems] == [
        (
            5,
            17,
            "cannot parse users file: a string has an octal escape past \\377, which chasquid "
            "refuses (octal escapes are \\000 to \\377)",
        )
    ]


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("admin", "admin"),
        ("John.Doe+tag", "john.doe+tag"),
        ("Ñandú", "ñandú"),
        ("\uff46\uff55\uff4c\uff4c", "full"),
        ("\u03a3\u0391\u03a3", "\u03c3\u03b1\u03c3"),  # Go lower-cases without the final-sigma rule
        ("İ", "i̇"),
        ("ß", "ß"),
        ("a@b", "a@b"),
    ],
)
def test_normalize_user_as_chasquid(name: str, normal: str) -> None:
    assert normalize_user(name) == normal


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "it is empty"),
        ("a b", "it contains a space"),
        ("tab\t", "it contains a control character"),
        ("ǅ", "it contains a compatibility character"),
        ("Ⅻ", "it contains a compatibility character"),
        ("אa", "it mixes text directions against the Bidi rule"),
        ("a\u200db", "PRECIS refuses it (zero width joiner)"),
    ],
)
def test_normalize_user_refuses_what_chasquid_refuses(name: str, reason: str) -> None:
    with pytest.raises(InvalidUserName) as caught:
        normalize_user(name)
    assert caught.value.reason == reason
    assert str(caught.value) == f"user name {name!r} is not valid for chasquid: {reason}"


# --- properties: the fast reader and the library agree ---------------------------------------

_WS = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", " \n  "])
_SEP = st.sampled_from([" ", "\n", "\t", "\r\n", "\n    "])  # where a separator is needed


@st.composite
def escaped(draw: st.DrawFn, data: bytes) -> str:
    """``data`` quoted with a random mix of the escapes Go and protobuf write."""
    out = []
    for char in data.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            raw = code - 0xDC00
            out.append(draw(st.sampled_from([f"\\x{raw:02x}", f"\\x{raw:02X}", f"\\{raw:03o}"])))
            continue
        forms = [f"\\{code:03o}", f"\\x{code:02x}"] if code < 0x80 else []
        if char in "\"\\\n\r\t'":
            forms.append(
                {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, "\\'")
            )
        elif code >= 0x20 and code != 0x7F:
            forms.append(char)
        if 0x80 <= code <= 0xFFFF:
            forms.append(f"\\u{code:04x}")
        if code >= 0x80:
            forms.append("".join(f"\\x{b:02x}" for b in char.encode()))
        out.append(draw(st.sampled_from(forms)))
    return '"' + "".join(out) + '"'


_NAMES = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
_BYTES = st.one_of(
    st.binary(max_size=24),
    st.text(max_size=8).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\xc2\x85\xc2\x9f", b"\xe2\x80\xa8", b"\xed\xa0\x80", b'"\\\n\x00']),
)
_SCHEMES = st.one_of(
    st.none(),
    st.just(Denied()),
    st.builds(Plain, _BYTES),
    st.builds(
        Scrypt,
        st.integers(0, 2**64 - 1),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(-(2**31), 2**31 - 1),
        _BYTES,
        _BYTES,
    ),
)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[str, list[tuple[str, Scheme]]]:
    """A random database in a random canonical-layout text."""
    entries = draw(st.lists(st.tuples(_NAMES, _SCHEMES), max_size=5))
    parts = [draw(_WS)]
    for name, scheme in entries:
        parts += ["users", draw(st.sampled_from([":", ""])), draw(_WS), "{", draw(_WS)]
        parts += ["key", draw(_WS), ":", draw(_WS), draw(escaped(name.encode())), draw(_WS)]
        parts += ["value", draw(st.sampled_from([":", " :", ""])), draw(_WS), "{", draw(_WS)]
        parts += [draw(_scheme_text(scheme)), "}", draw(_WS), "}", draw(_WS)]
    return "".join(parts), entries


@st.composite
def _scheme_text(draw: st.DrawFn, scheme: Scheme) -> str:
    if scheme is None:
        return ""
    if isinstance(scheme, Denied):
        return "denied" + draw(st.sampled_from([": {", "{", " :{ "])) + draw(_WS) + "}" + draw(_WS)
    if isinstance(scheme, Plain):
        body = draw(_string_field("password", scheme.password))
        return "plain" + draw(st.sampled_from([": {", "{"])) + draw(_WS) + body + "}" + draw(_WS)
    numbers = [("logN", scheme.log_n), ("r", scheme.r), ("p", scheme.p), ("keyLen", scheme.key_len)]
    body = ""
    for field, value in numbers:
        if value or draw(st.booleans()):
            body += f"{field}{draw(_WS)}:{draw(_WS)}{value}{draw(_SEP)}"
    body += draw(_string_field("salt", scheme.salt))
    body += draw(_string_field("encrypted", scheme.encrypted))
    return "scrypt" + draw(st.sampled_from([": {", "{"])) + draw(_WS) + body + "}" + draw(_WS)


@st.composite
def _string_field(draw: st.DrawFn, field: str, value: bytes) -> str:
    if not value and draw(st.booleans()):
        return ""
    return f"{field}{draw(_WS)}:{draw(_WS)}{draw(escaped(value))}{draw(_WS)}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_fast_reader_equals_the_library(case: tuple[str, list[tuple[str, Scheme]]]) -> None:
    text, entries = case
    fast = fast_parse(text)
    library, problems = library_parse(text, PATH)
    assert fast is not None, text
    assert problems == []
    assert fast == library
    assert [(u.name, u.scheme) for u in fast.users] == entries


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_NAMES, _SCHEMES), max_size=5))
def test_render_then_parse_is_the_identity(entries: list[tuple[str, Scheme]]) -> None:
    db = UserDB(tuple(User(name, scheme, 0) for name, scheme in entries))
    data = render_users(db)
    assert fast_parse(data.decode()) is not None
    again = parsed(data)
    assert [(u.name, u.scheme) for u in again.users] == entries
    assert render_users(again) == data


# --- fuzzing: never a traceback ----------------------------------------------------------------


def _check_outcome(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db, problems = parse_users(data, PATH)
    if db is None:
        assert [p.code for p in problems] == ["users.syntax"]
    else:
        assert problems == []
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return
    fast = fast_parse(text)
    if fast is not None:
        assert fast == library_parse(text, PATH)[0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    _check_outcome(data)


_MUTATION_BYTES = st.sampled_from(
    [
        b"{",
        b"}",
        b":",
        b'"',
        b"\\",
        b"\n",
        b" ",
        b"#",
        b"0",
        b"-",
        b"9",
        b"x",
        b"key",
        b"users",
        b"\xff",
        b"\xc2\xa0",
        b"\x00",
        b"'",
        b"<",
        b"[",
        b",",
        b"\\u",
        b"\\x",
        b"\\?",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_files_never_raise(data: st.DataObject) -> None:
    text = bytearray(CHASQUID_UTIL_FILE)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(_MUTATION_BYTES)
        end = at + (0 if action == "insert" else data.draw(st.integers(1, 8)))
        text[at:end] = b"" if action == "delete" else piece
    _check_outcome(bytes(text))
