"""chasquid's users database (``domains/<d>/users``): read, write, hash, verify.

The file is a text protobuf of upstream's ``internal/userdb/userdb.proto``. We
declare ``users`` as a repeated entry message instead of a map (the text form
is the same), so duplicates and file order survive a parse. Files laid out as
chasquid-util and ``render_users`` write them go through a fast reader that is
equivalent to the protobuf library; anything else goes to the library itself.
Hashing modules are imported by the functions that hash, and the protobuf library
by the functions that use it: reading a file in that layout never needs either.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import TYPE_CHECKING, Any

from gitops_mail.core.formats.users.names import InvalidUserName, normalize_user
from gitops_mail.core.formats.users.text import (
    Denied,
    Plain,
    Refusal,
    Scheme,
    Scrypt,
    User,
    UserDB,
    fast_parse,
    quote,
    scan_entries,
)
from gitops_mail.core.problems import Problem, Severity

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2

    from gitops_mail.core.formats.prototext import library as textproto

__all__ = [
    "Denied",
    "InvalidUserName",
    "Plain",
    "Scheme",
    "Scrypt",
    "User",
    "UserDB",
    "describe_scheme",
    "fast_parse",
    "hash_password",
    "library_parse",
    "normalize_user",
    "parse_users",
    "remove_user",
    "render_users",
    "set_user",
    "verify_password",
]

_SYNTAX_HINT = (
    "fix the file at this position, or re-create its users with `gitops-mail user add USER@DOMAIN`"
)


def parse_users(data: bytes, path: str) -> tuple[UserDB | None, list[Problem]]:
    """Read a users file; ``(None, [problem])`` when chasquid could not load it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        return None, [_syntax(path, line, column, "not valid UTF-8")]  # the byte may be a secret
    db = fast_parse(text)
    if db is not None:
        return db, []
    return library_parse(text, path)


def library_parse(text: str, path: str) -> tuple[UserDB | None, list[Problem]]:
    """The protobuf library's reading of ``text``, held to what Go's reader refuses."""
    from gitops_mail.core.formats.prototext import library as textproto  # noqa: PLC0415 - see the module docstring

    lines, refusal = scan_entries(text)
    with warnings.catch_warnings():  # the library warns on escapes ``refusal`` reports
        warnings.simplefilter("ignore", DeprecationWarning)
        msg, err = textproto.parse(text, _db_class())
    if err is not None and (refusal is None or _before(err, refusal)):
        return None, [_syntax(path, err.line, err.column, _words(err, text))]
    if refusal is not None:
        return None, [_syntax(path, refusal.line, refusal.column, refusal.why)]
    users = (
        User(entry.key, _scheme_of(entry), line)
        for entry, line in zip(msg.users, lines, strict=True)
    )
    return UserDB(tuple(users)), []


def render_users(db: UserDB) -> bytes:
    """The file as chasquid-util lays it out, entries in ``db`` order."""
    return "".join(_render_user(user) for user in db.users).encode("utf-8")


def set_user(db: UserDB, name: str, scheme: Scheme) -> UserDB:
    """Give ``name`` this scheme: replace its first entry in place (dropping any
    duplicates of it) or append a new one; every other entry stays as it was."""
    users: list[User] = []
    placed = False
    for user in db.users:
        if user.name != name:
            users.append(user)
        elif not placed:
            users.append(User(name, scheme, user.line))
            placed = True
    if not placed:
        users.append(User(name, scheme, 0))
    return UserDB(tuple(users))


def remove_user(db: UserDB, name: str) -> UserDB:
    """Drop every entry of ``name``; unchanged when there is none."""
    return UserDB(tuple(user for user in db.users if user.name != name))


def hash_password(
    password: str,
    *,
    log_n: int = 14,
    r: int = 8,
    p: int = 1,
    key_len: int = 32,
    salt: bytes | None = None,
) -> Scrypt:
    """An scrypt entry as chasquid-util writes it (16 random bytes of salt)."""
    import secrets  # noqa: PLC0415 - only writing needs it; reading stays fast to start

    salt = secrets.token_bytes(16) if salt is None else salt
    unkeyed = Scrypt(log_n, r, p, key_len, salt, b"")
    return dataclasses.replace(unkeyed, encrypted=_scrypt(_password_bytes(password), unkeyed))


def verify_password(scheme: Scheme, password: str) -> bool:
    """Whether chasquid would accept ``password`` for an entry with this scheme."""
    import hmac  # noqa: PLC0415 - only logins need it; reading stays fast to start

    secret = _password_bytes(password)
    if isinstance(scheme, Plain):
        return hmac.compare_digest(secret, scheme.password)
    if not isinstance(scheme, Scrypt):
        return False
    try:
        key = _scrypt(secret, scheme)
    except (ValueError, OverflowError, MemoryError):
        return False  # chasquid panics on such parameters; nobody logs in
    return hmac.compare_digest(key, scheme.encrypted)


def describe_scheme(scheme: Scheme) -> str:
    """A name for plans and listings; never any secret."""
    if isinstance(scheme, Scrypt):
        return "scrypt"
    if isinstance(scheme, Plain):
        return "plain"
    if isinstance(scheme, Denied):
        return "receive-only"
    return "none"


def _password_bytes(password: str) -> bytes:
    return password.encode("utf-8", "surrogateescape")


def _scrypt(secret: bytes, params: Scrypt) -> bytes:
    """The key chasquid derives; ``ValueError`` where Go's scrypt refuses the parameters."""
    import hashlib  # noqa: PLC0415 - OpenSSL is slow to load; validate and plan never hash

    if not 1 <= params.log_n < 63 or params.key_len < 0:
        raise ValueError("scrypt parameters Go refuses")
    n, r, p = 1 << params.log_n, params.r, params.p
    maxmem = min(128 * r * (n + p + 2) + 65536, 2**31 - 1)
    # Go derives an empty key for keyLen 0 (hashlib refuses dklen 0): a prefix of any key.
    dklen = max(params.key_len, 1)
    key = hashlib.scrypt(secret, salt=params.salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)
    return key[: params.key_len]


def _syntax(path: str, line: int | None, column: int | None, why: str) -> Problem:
    message = f"cannot parse users file: {why}"
    return Problem(path, line, "users.syntax", message, _SYNTAX_HINT, Severity.ERROR, column)


def _before(err: textproto.TextParseError, refusal: Refusal) -> bool:
    return (err.line or 0, err.column or 0) < (refusal.line, refusal.column)


def _words(err: textproto.TextParseError, text: str) -> str:
    """The library's error in the allow-listed words of ``prototext.words``: the token it
    stopped at may be a salt or a hash, so nothing of the file is repeated."""
    from gitops_mail.core.formats.prototext import words  # noqa: PLC0415 - errors only

    field = None
    if err.line and err.column:
        offset = sum(len(line) + 1 for line in text.split("\n")[: err.line - 1]) + err.column - 1
        field = words.field_before(text, offset, _schema())
    return words.describe(err.message, _schema(), field)


@functools.cache
def _schema() -> dict[str, tuple[str, ...]]:
    """Each message type of the users file and its field names: all an error may name."""
    proto = _file_proto()
    schema: dict[str, tuple[str, ...]] = {}
    for message in proto.message_type:
        schema[f"userdb.{message.name}"] = tuple(f.name for f in message.field)
        for nested in message.nested_type:
            schema[f"userdb.{message.name}.{nested.name}"] = tuple(f.name for f in nested.field)
    return schema


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def _scheme_of(entry: Any) -> Scheme:
    value = entry.value
    which = value.WhichOneof("scheme")
    if which == "scrypt":
        s = value.scrypt
        return Scrypt(s.logN, s.r, s.p, s.keyLen, bytes(s.salt), bytes(s.encrypted))
    if which == "plain":
        return Plain(bytes(value.plain.password))
    return Denied() if which == "denied" else None


def _render_user(user: User) -> str:
    value = _render_scheme(user.scheme)
    value = "  value: {\n" + value + "  }\n" if value else "  value: {}\n"
    return "users: {\n  key: " + quote(user.name.encode("utf-8")) + "\n" + value + "}\n"


def _render_scheme(scheme: Scheme) -> str:
    if isinstance(scheme, Scrypt):
        fields = [
            ("logN", str(scheme.log_n)),
            ("r", str(scheme.r)),
            ("p", str(scheme.p)),
            ("keyLen", str(scheme.key_len)),
            ("salt", quote(scheme.salt)),
            ("encrypted", quote(scheme.encrypted)),
        ]
        return _render_message("scrypt", [(k, v) for k, v in fields if v not in ("0", '""')])
    if isinstance(scheme, Plain):
        password = [("password", quote(scheme.password))] if scheme.password else []
        return _render_message("plain", password)
    if isinstance(scheme, Denied):
        return _render_message("denied", [])
    return ""


def _render_message(name: str, fields: list[tuple[str, str]]) -> str:
    """Go's multi-line layout; zero values left out, an empty message as ``{}``."""
    if not fields:
        return f"    {name}: {{}}\n"
    body = "".join(f"      {key}: {value}\n" for key, value in fields)
    return f"    {name}: {{\n{body}    }}\n"


@functools.cache
def _db_class() -> Any:
    from gitops_mail.core.formats.prototext import library as textproto  # noqa: PLC0415 - see the module docstring

    return textproto.message_class(_file_proto(), "userdb.ProtoDB")


def _file_proto() -> descriptor_pb2.FileDescriptorProto:
    from google.protobuf import descriptor_pb2  # noqa: PLC0415 - see the module docstring

    proto = descriptor_pb2.FileDescriptorProto(
        name="gitops_mail/userdb.proto", package="userdb", syntax="proto3"
    )
    f = descriptor_pb2.FieldDescriptorProto
    db = proto.message_type.add(name="ProtoDB")
    _field(db, "users", 1, f.TYPE_MESSAGE, ".userdb.ProtoDB.UsersEntry", repeated=True)
    entry = db.nested_type.add(name="UsersEntry")  # a map entry, minus map_entry
    _field(entry, "key", 1, f.TYPE_STRING)
    _field(entry, "value", 2, f.TYPE_MESSAGE, ".userdb.Password")
    password = proto.message_type.add(name="Password")
    password.oneof_decl.add(name="scheme")
    for name, number in (("scrypt", 2), ("plain", 3), ("denied", 4)):
        _field(password, name, number, f.TYPE_MESSAGE, f".userdb.{name.title()}", oneof=0)
    scrypt = proto.message_type.add(name="Scrypt")
    _field(scrypt, "logN", 1, f.TYPE_UINT64)
    for name, number in (("r", 2), ("p", 3), ("keyLen", 4)):
        _field(scrypt, name, number, f.TYPE_INT32)
    _field(scrypt, "salt", 5, f.TYPE_BYTES)
    _field(scrypt, "encrypted", 6, f.TYPE_BYTES)
    _field(proto.message_type.add(name="Plain"), "password", 1, f.TYPE_BYTES)
    proto.message_type.add(name="Denied")
    return proto


def _field(
    msg: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    type_name: str = "",
    *,
    repeated: bool = False,
    oneof: int | None = None,
) -> None:
    from google.protobuf import descriptor_pb2  # noqa: PLC0415 - see the module docstring

    f = descriptor_pb2.FieldDescriptorProto
    label = f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL
    field = msg.field.add(name=name, number=number, type=kind, label=label, json_name=name)
    if type_name:
        field.type_name = type_name
    if oneof is not None:
        field.oneof_index = oneof
