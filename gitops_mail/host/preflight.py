"""chasquid's own pre-flight: start the real chasquid on a staged config dir.

Our validator knows chasquid's formats; chasquid knows its own start-up. Before
a staged tree goes live, ``preflight`` starts the installed chasquid on it,
with every address on ``127.0.0.1:0`` (a free loopback port: nothing public is
bound and nothing the live server holds is touched), a fresh throwaway
``data_dir`` and the mail log on stderr. It waits for the three
``Server listening on`` lines and stops it. Any error (``E``) or fatal
(``☠``) line, an early exit or a start that outlasts ``timeout`` fails it.
Then ``chasquid-util check-userdb`` reads every users file, naming the file.

Nothing is delivered. Delivery only ever starts from the queue in
``data_dir``, and the fresh one is empty; hooks and alias commands run only
for a message. So the delivery agent is left as configured: chasquid then
checks the real setting, and a later version that checks the agent at start
would catch a broken one.

chasquid 1.11 catches: chasquid.conf syntax errors and unknown fields
(``line:col``), a missing chasquid.conf, certs/ or domains/ missing or empty,
a key that does not match its certificate, bad PEM, no usable certificate,
a users file it cannot read, a file where a domain dir should be. It never
reaches dovecot (its sockets are overridden). It does not catch: malformed
aliases lines, odd names under domains/, an expired certificate or one for
another name, a missing delivery agent, a hook that is not executable.
"""

from __future__ import annotations

import os
import re
import selectors
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_mail.errors import CommandError
from gitops_mail.host import procs

LISTEN_MARK = "Server listening on "
LISTENERS = 3  # smtp, submission, submission over TLS
ADDRESS_FIELDS = (
    "smtp_address",
    "submission_address",
    "submission_over_tls_address",
    "monitoring_address",
)
ANY_LOOPBACK_PORT = "127.0.0.1:0"
DOVECOT_FIELDS = ("dovecot_userdb_path", "dovecot_client_path")
# chasquid's words (1.11; newer) for the sockets above, which never answer
NO_DOVECOT = ("Warning: Dovecot auth is not responding", "Failed dovecot authenticator check")

# "[time ]L file.go:N<padded to 18> message": the time only with -logtime and
# in mail log lines; L is the level; the message keeps chasquid's indentation.
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? ")
_LOG_LINE = re.compile(r"^(?P<level>\S) (?=\S+:\d+ * )(?P<where>.{18}) (?P<text>.*)$")
_ERROR_LEVELS = ("E", "☠")
# Headings of the start-up log sections whose items are certs/<name> and
# domains/<name> (1.11, and 1.14 on).
_SECTIONS = {
    "Loading certificates": "certs",
    "Loading certificates:": "certs",
    "Domain config paths:": "domains",
    "Loading domains:": "domains",
}


@dataclass(frozen=True)
class PreflightResult:
    ok: bool
    errors: tuple[str, ...]  # chasquid's own words: its E/☠ lines, or why it exited
    log: str  # chasquid's log up to the stop (chasquid never logs passwords)
    duration_ms: float


@dataclass(frozen=True)
class _Start:
    log: str
    failure: str  # why it did not get ready; "" when it did
    exited: bool  # it ended by itself


def preflight(
    staged: Path,
    *,
    binary: Path = Path("/usr/bin/chasquid"),
    util: Path = Path("/usr/bin/chasquid-util"),
    domains: Sequence[str] | None = None,
    timeout: float = 10.0,
) -> PreflightResult:
    """Let chasquid judge ``staged``; see the module docstring.

    ``domains`` limits the users files checked with chasquid-util (None: every
    domain under ``staged/domains``; empty: none, since chasquid's own start
    already loads every users file and check-userdb only names the file); a
    domain without a users file is skipped.
    Raises ``CommandError`` only when chasquid or chasquid-util cannot be run.
    """
    began = time.monotonic()
    staged = staged.absolute()
    with tempfile.TemporaryDirectory(prefix="gitops-mail-preflight-") as data_dir:
        start = _start_and_stop(_argv(binary, staged, Path(data_dir)), timeout)
    errors = [e for e in error_lines(start.log) if not e.startswith(NO_DOVECOT)]
    if start.failure and not (start.exited and _fatal_logged(start.log)):
        errors.append(start.failure)  # a fatal line already says why it exited
    errors.extend(_check_userdbs(util, staged, domains, timeout))
    elapsed = (time.monotonic() - began) * 1000
    return PreflightResult(not errors, tuple(errors), start.log, elapsed)


def _argv(binary: Path, staged: Path, data_dir: Path) -> list[str]:
    fields = dict.fromkeys(ADDRESS_FIELDS, ANY_LOOPBACK_PORT)
    fields.update(data_dir=str(data_dir), mail_log_path="<stderr>")
    # An override cannot turn dovecot_auth off (chasquid only applies true): with it on,
    # chasquid dials these missing sockets, never dovecot's, and says so (NO_DOVECOT).
    fields.update(dict.fromkeys(DOVECOT_FIELDS, str(data_dir / "no-dovecot")))
    overrides = " ".join(f"{name}: {_quote(value)}" for name, value in fields.items())
    return [str(binary), f"-config_dir={staged}", f"-config_overrides={overrides}"]


def _quote(value: str) -> str:
    """A text-protobuf string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# --- running chasquid ---------------------------------------------------------------


def _start_and_stop(argv: list[str], timeout: float) -> _Start:
    """Start chasquid, read its log until it listens (or fails), stop and reap it."""
    deadline = time.monotonic() + timeout
    with procs.spawn(argv) as child:
        log, eof = _read_log(child, deadline)
        failure = _exit_reason(child, deadline, timeout) if eof else ""
    if not failure and not _listening(log):
        failure = _too_slow(timeout)
    return _Start(_decode(log), failure, eof)


def _read_log(child: procs.Child, deadline: float) -> tuple[bytes, bool]:
    """chasquid's output until it listens, its output ends, or the deadline: (log, eof)."""
    if child.stdout is None:
        raise TypeError("procs.spawn pipes the child's output")
    fd = child.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        log = b""
        while not _listening(log) and (left := deadline - time.monotonic()) > 0:
            if selector.select(left):
                chunk = os.read(fd, 65536)
                if not chunk:
                    return log, True
                log += chunk
        while time.monotonic() < deadline and selector.select(0):  # written meanwhile
            chunk = os.read(fd, 65536)
            if not chunk:
                return log, True
            log += chunk
    return log, False


def _listening(log: bytes) -> bool:
    lines = _decode(log).splitlines()
    return sum(_message(line).startswith(LISTEN_MARK) for line in lines) >= LISTENERS


def _exit_reason(child: procs.Child, deadline: float, timeout: float) -> str:
    """Why chasquid stopped writing before it listened."""
    code = procs.wait(child, max(deadline - time.monotonic(), 0))
    if code is None:  # it closed its output but goes on running
        return _too_slow(timeout)
    if code < 0:
        return f"chasquid was killed by signal {-code} while starting"
    return f"chasquid exited with code {code} while starting"


def _too_slow(timeout: float) -> str:
    return f"chasquid did not finish starting within {timeout:g} s"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# --- reading chasquid's log -----------------------------------------------------------


def error_lines(log: str) -> list[str]:
    """chasquid's error and fatal lines, without time, level and source location.

    Lines chasquid indents belong to the certificate or domain it was loading
    (1.11 logs ``  mail.example.test`` and then ``    tls: private key does not
    match public key``); those get that item's path in front:
    ``certs/mail.example.test: tls: private key does not match public key``.
    """
    errors, section, item = [], "", ""
    for line in log.splitlines():
        level, text = _parse(line)
        body = text.lstrip(" ")
        indent = len(text) - len(body)
        if level == "_" and indent == 0 and body in _SECTIONS:
            section, item = _SECTIONS[body], ""
        elif level == "_" and indent == 2 and section:
            item = "" if " " in body else f"{section}/{body}"
        elif level in _ERROR_LEVELS:
            errors.append(f"{item}: {body}" if item and indent > 2 else body)
    return errors


def _fatal_logged(log: str) -> bool:
    return any(_parse(line)[0] == "☠" for line in log.splitlines())


def _parse(line: str) -> tuple[str, str]:
    """(level, message) of one log line; ("", line) for a line of another shape."""
    line = _TIMESTAMP.sub("", line, count=1)
    match = _LOG_LINE.match(line)
    return (match["level"], match["text"]) if match else ("", line)


def _message(line: str) -> str:
    return _parse(line)[1]


# --- users files ---------------------------------------------------------------------


def _check_userdbs(
    util: Path, staged: Path, domains: Sequence[str] | None, timeout: float
) -> list[str]:
    errors = []
    for domain in _users_domains(staged, domains):
        problem = _check_userdb(util, staged, domain, timeout)
        if problem:
            errors.append(f"domains/{domain}/users: {problem}")
    return errors


def _users_domains(staged: Path, domains: Sequence[str] | None) -> list[str]:
    """The domains to check that have a users file (chasquid's own test: it exists)."""
    root = staged / "domains"
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    wanted = [d for d in present if d in domains] if domains is not None else present
    return [d for d in wanted if (root / d / "users").exists()]


def _check_userdb(util: Path, staged: Path, domain: str, timeout: float) -> str:
    """chasquid-util's complaint about one users file; "" if it loads."""
    argv: list[str | Path] = [util, f"-C={staged}", "check-userdb", domain]
    try:
        done = procs.run(argv, timeout=timeout, check=False)
    except CommandError as exc:
        if exc.returncode is not None:  # could not run it at all
            raise
        return f"chasquid-util check-userdb did not finish within {timeout:g} s"
    if done.returncode == 0:
        return ""
    said = done.text.strip() or done.stderr.decode("utf-8", "replace").strip()
    return said.splitlines()[-1] if said else f"chasquid-util exited with code {done.returncode}"
