"""Structured logs: the redaction processor on event dicts, and the configured output."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import subprocess
import sys
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from structlog.typing import EventDict, Processor

from gitops_mail import logs
from gitops_mail.core.formats.users.db import Plain, User, UserDB, hash_password, render_users
from gitops_mail.errors import CommandError, UsageError

R = logs.REDACTED
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVcB/UNPxalR9zDYA\n"
    "-----END PRIVATE KEY-----\n"
)
PEM_BODY = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVcB"


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Every test starts from structlog's defaults and leaves no handler behind."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == logs.__name__]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def captured(**event: object) -> EventDict:
    """The event dict one ``info`` call produces after ``redact``."""
    with capture_logs(processors=[logs.redact]) as entries:
        logs.get_logger("test").info("event", **event)
    assert len(entries) == 1
    entry = entries[0]
    assert entry.pop("event") == "event"
    assert entry.pop("log_level") == "info"
    return entry


# --- keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password",
        "smtpPassword",
        "dbpassword",
        "passwd",
        "passphrase",
        "secret",
        "client_secret",
        "token",
        "authToken",
        "key",
        "dkim_private_key",
        "privateKey",
        "private",
        "hash",
        "password_hash",
        "salt",
        "encrypted",
        "credentials",
        "Authorization",
    ],
)
def test_secret_keys_are_redacted(key: str) -> None:
    assert captured(**{key: "hunter2"}) == {key: R}


@pytest.mark.parametrize(
    "key",
    ["revision", "user", "domain", "result", "duration_ms", "key_path", "keyLen", "token_count"],
)
def test_other_keys_keep_their_values(key: str) -> None:
    assert captured(**{key: "hunter2"}) == {key: "hunter2"}


def test_secret_keys_are_redacted_at_any_depth() -> None:
    event = captured(
        user={
            "name": "alice",
            "password": "pw1",
            "nested": [{"salt": b"\x01"}, ("x", {"token": 7})],
        }
    )
    assert event == {
        "user": {"name": "alice", "password": R, "nested": [{"salt": R}, ("x", {"token": R})]}
    }


def test_a_secret_key_hides_a_whole_container() -> None:
    assert captured(secrets={"a": 1, "b": [2]}) == {"secrets": R}


# --- text -------------------------------------------------------------------


def test_pem_private_keys_are_cut_out_of_any_text() -> None:
    event = captured(detail=f"bad certificate:\n{PEM}end", pem=PEM)
    assert event == {"detail": f"bad certificate:\n{R}\nend", "pem": f"{R}\n"}


@pytest.mark.parametrize(
    "kind", ["RSA ", "EC ", "ENCRYPTED ", "OPENSSH ", ""], ids=lambda k: k.strip() or "pkcs8"
)
def test_every_kind_of_private_key_is_cut_even_when_truncated(kind: str) -> None:
    text = f"x -----BEGIN {kind}PRIVATE KEY-----\nMIIEv{PEM_BODY}"  # no END line: cut off
    assert captured(text=text) == {"text": f"x {R}"}


def test_public_certificates_stay() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert captured(text=cert) == {"text": cert}


def test_scrypt_records_of_a_users_file_are_redacted() -> None:
    entry = hash_password("hunter2", log_n=4, salt=b"\x00\x01salty'\"\\bytes!")
    content = render_users(UserDB((User("alice", entry, 0), User("bob", Plain(b"pw9"), 0))))
    redacted = captured(content=content.decode())["content"]
    assert isinstance(redacted, str)
    assert re.findall(r"(?:salt|encrypted|password): .*", redacted) == [
        f'salt: "{R}"',
        f'encrypted: "{R}"',
        f'password: "{R}"',
    ]
    assert 'key: "alice"' in redacted
    assert "logN: 4" in redacted


def test_password_records_as_python_objects_are_redacted() -> None:
    entry = hash_password("hunter2", log_n=4, salt=b"0123456789abcdef")
    event = captured(entry=entry, plain=Plain(b"pw9"), path=PurePosixPath("/etc/chasquid"))
    assert event == {
        "entry": f"Scrypt(log_n=4, r=8, p=1, key_len=32, salt=b'{R}', encrypted=b'{R}')",
        "plain": f"Plain(password=b'{R}')",
        "path": PurePosixPath("/etc/chasquid"),  # nothing to hide: the object itself
    }


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("C: AUTH PLAIN AHVzZXIAaHVudGVyMg==", f"C: AUTH PLAIN {R}"),
        ("auth login dXNlcg==", f"auth login {R}"),
        ("AUTH PLAIN", "AUTH PLAIN"),  # no initial response: nothing to hide
        ("Authorization: Basic dXNlcjpwdw==", f"Authorization: Basic {R}"),
        ("authorization: token-only", f"authorization: {R}"),
        ("https://bob:s3cret@git.example.com/r.git", f"https://bob:{R}@git.example.com/r.git"),
        ("ssh://git:p@ss@example.com:22/x", f"ssh://git:{R}@example.com:22/x"),
        ("http://example.com:8080/a@b", "http://example.com:8080/a@b"),
        ("https://token@example.com/", "https://token@example.com/"),
        ("push to https://u:pw@h/r failed", f"push to https://u:{R}@h/r failed"),
        ("GET /x?user=a&token=abc123&page=2", f"GET /x?user=a&token={R}&page=2"),
        ('{"password": "pw", "user": "a"}', f'{{"password": "{R}", "user": "a"}}'),
        ("api_key: 'k1'", f"api_key: '{R}'"),
        (
            "user 'alice' has its password stored in clear",
            "user 'alice' has its password stored in clear",
        ),
    ],
)
def test_secrets_inside_text(line: str, expected: str) -> None:
    assert captured(line=line) == {"line": expected}


def test_bytes_are_decoded_and_redacted() -> None:
    assert captured(stderr=b"remote: https://a:b@h/\xff") == {
        "stderr": f"remote: https://a:{R}@h/\\xff"
    }


def test_containers_keep_their_types() -> None:
    Pair = namedtuple("Pair", "user url")
    event = captured(
        items=["https://a:b@h/", 1], pair=Pair("al", "https://a:b@h/"), tags={"x", "token=t"}
    )
    assert event == {
        "items": [f"https://a:{R}@h/", 1],
        "pair": Pair("al", f"https://a:{R}@h/"),
        "tags": {"x", f"token={R}"},
    }


def test_exception_values_become_redacted_text() -> None:
    error = CommandError(["git", "push", "https://u:pw@h/r"], 128, "", "fatal: denied")
    assert captured(error=error) == {
        "error": f"CommandError: command 'git push https://u:{R}@h/r' exited 128: fatal: denied"
    }


def test_tracebacks_are_redacted() -> None:
    processors: list[Processor] = [structlog.processors.format_exc_info, logs.redact]
    with capture_logs(processors=processors) as entries:
        try:
            raise ValueError(f"cannot load key {PEM}")
        except ValueError:
            logs.get_logger("test").exception("apply failed")
    exception = entries[0]["exception"]
    assert exception.startswith("Traceback (most recent call last):")
    assert exception.endswith(f"ValueError: cannot load key {R}\n")
    assert PEM_BODY not in exception


def test_plain_values_pass_untouched() -> None:
    event = captured(revision="1a2b3c4", duration_ms=12.5, count=3, ok=True, none=None)
    assert event == {
        "revision": "1a2b3c4",
        "duration_ms": 12.5,
        "count": 3,
        "ok": True,
        "none": None,
    }


def test_redact_is_idempotent() -> None:
    once = captured(line=f"https://a:b@h/ {PEM} password=x")["line"]
    assert captured(line=once) == {"line": once}


_SECRET = st.text(st.characters(codec="ascii", exclude_characters="\n"), min_size=4, max_size=30)


@settings(max_examples=200, deadline=None)
@given(secret=_SECRET)
def test_fuzzed_secrets_never_survive(secret: str) -> None:
    secret = "Zq9" + secret  # never part of the surrounding text
    quoted = secret.replace("\\", "\\\\").replace('"', '\\"')
    token = base64.b64encode(b"\0u\0" + secret.encode()).decode()
    userinfo = re.sub(r"[^A-Za-z0-9]", lambda m: f"%{ord(m.group()):02X}", secret)
    text = (
        f'salt: "{quoted}" encrypted: "{quoted}"\n'
        f"AUTH PLAIN {token}\n"
        f"https://bob:{userinfo}@example.com/repo.git\n"
        f"-----BEGIN EC PRIVATE KEY-----\n{secret}\n-----END EC PRIVATE KEY-----\n"
    )
    out = logs.redact_text(text)
    assert secret not in out
    assert quoted not in out
    assert token not in out
    assert userinfo not in out
    assert out.count(R) == 5


# --- configured output --------------------------------------------------------


def test_json_lines_on_stderr_hold_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(json=True)
    logs.get_logger("gitops_mail.daemon").info(
        "reconcile", revision="1a2b3c4", password="hunter2", tls_key=PEM, duration_ms=312.5
    )
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert PEM_BODY not in err
    [line] = err.splitlines()
    event = json.loads(line)
    assert list(event)[:4] == ["timestamp", "level", "logger", "event"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", event.pop("timestamp"))
    assert event == {
        "level": "info",
        "logger": "gitops_mail.daemon",
        "event": "reconcile",
        "revision": "1a2b3c4",
        "password": R,
        "tls_key": R,
        "duration_ms": 312.5,
    }


def _secret_kinds() -> dict[str, tuple[str, str]]:
    """Each kind of secret gitops-mail handles: (text that holds it, a run of it that must go)."""
    plain = render_users(UserDB((User("ana", Plain(b"hunter2-plain"), 0),))).decode()
    scrypt = hash_password("hunter2", log_n=4, salt=b"0123456789abcdef")
    hashed = render_users(UserDB((User("bo", scrypt, 0),))).decode()
    dkim = PEM.replace("PRIVATE KEY", "RSA PRIVATE KEY")
    return {
        "password": ("login failed for ana with password=hunter2-pass", "hunter2-pass"),
        "plain users file": (plain, "hunter2-plain"),
        "scrypt salt": (hashed, "0123456789abcdef"),
        "tls key": (PEM, PEM_BODY),
        "dkim key": (dkim, PEM_BODY),
    }


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "console"])
@pytest.mark.parametrize("kind", sorted(_secret_kinds()))
def test_the_configured_chain_hides_every_secret_in_fields_and_exceptions(
    capsys: pytest.CaptureFixture[str], kind: str, as_json: bool
) -> None:
    # The chain the daemon and the CLI really run (logs.configure), not one built here:
    # redaction must see tracebacks as text, and nothing may render before it.
    text, secret = _secret_kinds()[kind]
    logs.configure(json=as_json)
    log = logs.get_logger("gitops_mail.daemon")
    log.info("event", detail=text, nested={"why": [text]})
    try:
        raise CommandError(["chasquid-util", text], 1, text, text, "")
    except CommandError:
        log.exception("failed", revision="1a2b3c4")
    logging.getLogger("some.library").error("library says %s", text)
    err = capsys.readouterr().err
    assert secret not in err
    assert err.count("1a2b3c4") == 1  # the exception's event itself was written
    assert "CommandError" in err  # with its traceback


def test_loggers_made_before_configure_follow_it(capsys: pytest.CaptureFixture[str]) -> None:
    early = logs.get_logger("gitops_mail.early")
    logs.configure(json=True, level="warning")
    early.info("dropped")
    early.warning("kept", token="t0k")
    [line] = capsys.readouterr().err.splitlines()
    event = json.loads(line)
    assert (event["event"], event["logger"], event["token"]) == ("kept", "gitops_mail.early", R)


def test_console_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(json=False, level="debug")
    logs.get_logger("gitops_mail.cli").debug("applied", revision="1a2b3c4", password="hunter2")
    err = capsys.readouterr().err
    pattern = r"\S+Z \[debug\s*\] applied\s+\[gitops_mail\.cli\] password=(.+) revision=1a2b3c4\n"
    found = re.fullmatch(pattern, err)
    assert found is not None, err
    assert found.group(1) == R


def test_json_is_the_default_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure()
    logs.get_logger("x").info("hello")
    assert json.loads(capsys.readouterr().err)["event"] == "hello"


def test_stdlib_logging_goes_through_the_same_chain(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(json=True)
    logs.configure(json=True)  # twice: still one handler
    logging.getLogger("git.remote").warning("fetch from %s failed", "https://u:pw@h/r")
    [line] = capsys.readouterr().err.splitlines()
    event = json.loads(line)
    del event["timestamp"]
    assert event == {
        "level": "warning",
        "logger": "git.remote",
        "event": f"fetch from https://u:{R}@h/r failed",
    }


def test_an_unknown_level_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        logs.configure(level="verbose")
    assert caught.value.message == "unknown log level 'verbose'"
    assert caught.value.hint == "use one of: debug, info, warning, error, critical"


def test_importing_the_module_does_not_import_structlog() -> None:
    code = "import sys, gitops_mail.logs; print('structlog' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert done.stdout == "False\n"


def _log_to_file(tmp_path: Path, journal: bool) -> list[str]:
    """Run a child that logs an error, a warning and an info line to a file as its stderr."""
    err = tmp_path / "stderr"
    code = (
        "import logging\n"
        "from gitops_mail import logs\n"
        "logs.configure(json=True, level='debug')\n"
        "log = logs.get_logger('gitops_mail.daemon')\n"
        "log.error('reconcile.failed', revision='1a2b3c4')\n"
        "log.warning('backoff')\n"
        "log.info('reconcile.done')\n"
        "log.debug('detail')\n"
        "logging.getLogger('watchdog').error('library error')\n"
    )
    with err.open("wb") as stream:
        info = Path(stream.name).stat()
        env = {"PATH": "/usr/bin:/bin"}
        if journal:
            env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
        subprocess.run([sys.executable, "-c", code], stderr=stream, env=env, check=True)
    return err.read_text().splitlines()


def test_under_journald_each_line_carries_its_syslog_priority(tmp_path: Path) -> None:
    lines = _log_to_file(tmp_path, journal=True)
    assert [line[:3] for line in lines] == ["<3>", "<4>", "<6>", "<7>", "<3>"]
    events = [json.loads(line[3:]) for line in lines]
    assert [e["event"] for e in events] == [
        "reconcile.failed",
        "backoff",
        "reconcile.done",
        "detail",
        "library error",
    ]


def test_elsewhere_lines_are_plain_json(tmp_path: Path) -> None:
    lines = _log_to_file(tmp_path, journal=False)
    assert [json.loads(line)["level"] for line in lines] == [
        "error",
        "warning",
        "info",
        "debug",
        "error",
    ]


class _Terminal:
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert logs.use_colour(_Terminal()) is True  # type: ignore[arg-type]
    assert logs.use_colour(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert logs.use_colour(_Terminal()) is False  # type: ignore[arg-type]
