"""Our users files and chasquid-util's, read and written both ways."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.tools import needs

from gitops_mail.core.checks.users import check_users
from gitops_mail.core.formats.users.db import (
    Denied,
    InvalidUserName,
    Plain,
    Scrypt,
    User,
    UserDB,
    fast_parse,
    hash_password,
    normalize_user,
    parse_users,
    remove_user,
    render_users,
    set_user,
    verify_password,
)

UTIL = Path("/usr/bin/chasquid-util")
pytestmark = [
    pytest.mark.chasquid,
    needs(str(UTIL)),
]
DOMAIN = "example.com"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A chasquid config dir with one domain and no users file yet."""
    (tmp_path / "chasquid.conf").write_text('hostname: "mail.example.com"\n')
    (tmp_path / "domains" / DOMAIN).mkdir(parents=True)
    return tmp_path


def users_file(conf: Path) -> Path:
    return conf / "domains" / DOMAIN / "users"


def util(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(UTIL), f"-C={conf}", *args], capture_output=True, text=True, timeout=60, check=False
    )


def authenticates(conf: Path, user: str, password: str) -> bool:
    done = util(conf, "authenticate", f"{user}@{DOMAIN}", f"--password={password}")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode == 0


def user_add(conf: Path, user: str, password: str) -> None:
    done = util(conf, "user-add", f"{user}@{DOMAIN}", f"--password={password}")
    assert done.returncode == 0, done.stdout


def read(conf: Path) -> UserDB:
    db, problems = parse_users(users_file(conf).read_bytes(), "users")
    assert problems == []
    assert db is not None
    return db


def write(conf: Path, db: UserDB) -> None:
    users_file(conf).write_bytes(render_users(db))


def entry_text(data: bytes, name: str) -> bytes:
    """The bytes of one entry as it stands in the file."""
    found = re.search(rb'users: \{\n  key: "' + name.encode() + rb'"\n.*?\n\}\n', data, re.S)
    assert found is not None
    return found.group()


# Every byte value, and UTF-8 that Go writes raw or as \u (C1 controls, U+2028, an emoji).
TRICKY_SALT = bytes(range(256)) + '\x85\x9f\u2028😀"\\'.encode() + b"\xed\xa0\x80"


def test_chasquid_util_accepts_what_we_write(conf: Path) -> None:
    db = UserDB(
        (
            User("admin", hash_password("hunter2", log_n=10), 0),
            User("ñandú", hash_password("contraseña-ü", log_n=10, salt=TRICKY_SALT), 0),
            User("plain", Plain("clear ü".encode()), 0),
        )
    )
    write(conf, db)
    done = util(conf, "check-userdb", DOMAIN)
    assert (done.returncode, done.stdout) == (0, "Database loaded\n")
    assert authenticates(conf, "admin", "hunter2")
    assert not authenticates(conf, "admin", "hunter3")
    assert authenticates(conf, "Ñandú", "contraseña-ü")  # chasquid normalises the login name
    assert not authenticates(conf, "ñandú", "contrasena-u")
    assert authenticates(conf, "plain", "clear ü")
    assert not authenticates(conf, "plain", "clear")


def test_we_read_what_chasquid_util_writes(conf: Path) -> None:
    user_add(conf, "admin", "hunter2")
    user_add(conf, "Ñandú", "contraseña-ü")
    user_add(conf, "John.Doe+tag", "p@ss w0rd")
    data = users_file(conf).read_bytes()
    assert fast_parse(data.decode()) is not None  # chasquid-util's layout takes the fast path
    users = read(conf).by_name()
    assert sorted(users) == ["admin", "john.doe+tag", "ñandú"]
    assert verify_password(users["admin"].scheme, "hunter2")
    assert verify_password(users["ñandú"].scheme, "contraseña-ü")
    assert verify_password(users["john.doe+tag"].scheme, "p@ss w0rd")
    assert not verify_password(users["ñandú"].scheme, "contraseña-u")
    assert check_users(read(conf), "users", DOMAIN, chasquid_version=(1, 11)) == []
    assert render_users(read(conf)) == data  # we lay it out exactly as chasquid-util does


def test_editing_keeps_every_other_entry(conf: Path) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        user_add(conf, name, f"{name}-pw")
    before = users_file(conf).read_bytes()
    db = read(conf)
    db = set_user(db, "bob", hash_password("bob-new", log_n=10))
    db = remove_user(db, "carol")
    db = set_user(db, "erin", hash_password("erin-pw", log_n=10))
    write(conf, db)
    after = users_file(conf).read_bytes()
    assert entry_text(after, "alice") == entry_text(before, "alice")
    assert entry_text(after, "dave") == entry_text(before, "dave")
    assert [u.name for u in read(conf).users] == ["alice", "bob", "dave", "erin"]
    assert util(conf, "check-userdb", DOMAIN).returncode == 0
    assert authenticates(conf, "alice", "alice-pw")
    assert authenticates(conf, "dave", "dave-pw")
    assert authenticates(conf, "bob", "bob-new")
    assert not authenticates(conf, "bob", "bob-pw")
    assert not authenticates(conf, "carol", "carol-pw")
    assert authenticates(conf, "erin", "erin-pw")
    user_add(conf, "frank", "frank-pw")  # and chasquid-util still edits our file
    assert verify_password(read(conf).by_name()["erin"].scheme, "erin-pw")


@pytest.mark.parametrize(
    "name", ["\u03a3\u0391\u03a3", "Ñandú", "\uff46\uff55\uff4c\uff4c", "İ", "ß", "MiXeD.Case+tag"]
)
def test_normalize_user_agrees_with_chasquid_util(conf: Path, name: str) -> None:
    user_add(conf, name, "pw")
    assert list(read(conf).by_name()) == [normalize_user(name)]


@pytest.mark.parametrize("name", ["ǅ", "Ⅻ", "½", "a b", "אa"])
def test_names_chasquid_util_refuses_we_refuse(conf: Path, name: str) -> None:
    done = util(conf, "user-add", f"{name}@{DOMAIN}", "--password=pw")
    assert done.returncode == 1
    assert "Error normalizing user: " in done.stdout
    with pytest.raises(InvalidUserName):
        normalize_user(name)


def test_key_length_zero_lets_any_password_in_and_we_flag_it(conf: Path) -> None:
    write(conf, UserDB((User("a", Scrypt(14, 8, 1, 0, b"", b""), 0),)))
    assert authenticates(conf, "a", "whatever")
    assert verify_password(read(conf).users[0].scheme, "whatever")
    [problem] = check_users(read(conf), "users", DOMAIN, chasquid_version=(1, 11))
    assert "(chasquid accepts any password)" in problem.message


def test_bad_scrypt_parameters_crash_chasquid_and_we_flag_them(conf: Path) -> None:
    write(conf, UserDB((User("a", Scrypt(0, 8, 1, 32, b"s" * 16, b"k" * 32), 0),)))
    assert util(conf, "check-userdb", DOMAIN).returncode == 0  # it loads...
    done = util(conf, "authenticate", f"a@{DOMAIN}", "--password=x")
    assert done.returncode == 2  # ...and panics at the first login attempt
    assert "panic: scrypt failed" in done.stderr
    assert not verify_password(read(conf).users[0].scheme, "x")
    [problem] = check_users(read(conf), "users", DOMAIN, chasquid_version=(1, 11))
    assert problem.message.endswith("(chasquid crashes when anyone tries to log in as this user)")


def installed_version() -> tuple[int, int]:
    out = subprocess.run(
        ["/usr/bin/chasquid", "-version"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"(\d+)\.(\d+)", out)
    assert found is not None, out
    return int(found.group(1)), int(found.group(2))


def test_receive_only_users_against_the_installed_chasquid(conf: Path) -> None:
    write(conf, UserDB((User("a", hash_password("pw", log_n=10), 0), User("b", Denied(), 0))))
    version = installed_version()
    loaded = util(conf, "check-userdb", DOMAIN).returncode == 0
    problems = check_users(read(conf), "users", DOMAIN, chasquid_version=version)
    assert loaded == (version >= (1, 13))
    assert [p.code for p in problems] == ([] if loaded else ["users.denied_unsupported"])


@pytest.mark.parametrize(
    "data",
    [
        b'users: {\n  key: "a"\n  valu: {}\n}\n',
        b'users: {key: "a" value: {plain: {password: "o\xffne"}}}\n',
        b'users: {key: "a"}\n\nusers:\xc2\xa0{key: "b"}\n',
        b'users: {key: "a" value: {plain: {password: "x"}}}\x0b\n',
        b'users: {key: "a" value: {plain: {password: "x\\yz"}}}\n',
        b'users: {key: "a" value: {plain: {password: "x\x00"}}}\n',
        b'users: {key: "a" value: {scrypt: {} plain: {}}}\n',
    ],
)
def test_files_chasquid_refuses_we_refuse_at_the_same_line(conf: Path, data: bytes) -> None:
    users_file(conf).write_bytes(data)
    done = util(conf, "check-userdb", DOMAIN)
    assert done.returncode == 1
    db, [problem] = parse_users(data, "users")
    assert db is None
    where = re.search(r"line (\d+):(\d+)", done.stdout)
    assert where is not None, done.stdout
    assert problem.line == int(where.group(1))


def test_a_truncated_file(conf: Path) -> None:
    data = b'users: {\n  key: "a"\n'
    users_file(conf).write_bytes(data)
    done = util(conf, "check-userdb", DOMAIN)
    assert (done.returncode, done.stdout) == (1, "Error loading database: proto: unexpected EOF\n")
    db, [problem] = parse_users(data, "users")
    assert (db, problem.line, problem.message) == (
        None,
        2,
        'cannot parse users file: Expected "}".',
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"# only a comment\n",
        b'users {key: "a" value {plain {password: "\\?x"}}}',
        b"users: [{key: 'a' value: {plain: {password: 'x'}}}, {key: \"b\"}]",
        b'users: {key: "a" value: {plain: {password: "x" "y"}}}\r\n',
    ],
)
def test_files_chasquid_accepts_we_accept_or_refuse_knowingly(conf: Path, data: bytes) -> None:
    users_file(conf).write_bytes(data)
    assert util(conf, "check-userdb", DOMAIN).returncode == 0
    db, problems = parse_users(data, "users")
    if b"\\?" in data:  # Go reads \? as "?"; protobuf's Python reader does not: we refuse it
        assert db is None
        assert problems[0].message.endswith("an escape sequence chasquid does not accept")
    else:
        assert problems == []


@settings(max_examples=15, deadline=None)
@given(salt=st.binary(min_size=1, max_size=40), password=st.text(min_size=1, max_size=12))
def test_random_salts_and_passwords_round_trip(salt: bytes, password: str) -> None:
    password = password.replace("\x00", "")  # argv cannot carry NUL
    if not password:
        return
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp)
        (conf / "domains" / DOMAIN).mkdir(parents=True)
        write(conf, UserDB((User("u", hash_password(password, log_n=10, salt=salt), 0),)))
        assert authenticates(conf, "u", password)
