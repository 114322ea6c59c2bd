"""Probe the live chasquid: the one module that talks SMTP and TLS.

``probe`` proves the server serves what is on disk: banner and EHLO reply name
the hostname; STARTTLS (25, 587) and TLS on connect (465) present a leaf whose
SHA-256 is one on disk (compared, not verified against a CA); AUTH is offered
on submission only inside TLS; RCPT on port 25 accepts or rejects each address
as the new configuration says. An endpoint that refuses, resets or times out is
tried again (20 ms doubling to 200 ms) until the deadline; a wrong answer fails
at once. The three endpoints are probed in parallel. Never DATA: RSET and QUIT.
A caller that no longer needs the answer (a newer revision is waiting) passes
``cancelled``: it is asked before each wait between attempts, and once it says
yes no endpoint waits again (the result says ``cancelled``). A caller that
can tell the server will not answer any more (chasquid exited after its
restart) passes ``gone``, asked likewise: once it names a reason, no endpoint
waits again and each that did not answer fails with that reason, at once
rather than at the deadline.

chasquid 1.11 facts this relies on (``internal/smtpsrv/conn.go``): inside TLS it
names itself after the client's SNI, so the hostname is checked on the plain
banner and EHLO; ``MAIL FROM:<>`` needs no AUTH on 25 and skips SPF and the
security level check (no DNS); RCPT answers 250 for a user, alias or catch-all,
``550 5.1.1`` for an unknown local address, ``503 5.7.1`` for a remote one; it
closes a connection at its third reply >= 400 (so two rejections per
connection) and takes 100 recipients per envelope.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from gitops_mail.host.probe.spec import Check, Endpoint, ProbeResult, ProbeSpec

EHLO_NAME = "localhost"
STEP_TIMEOUT = 2.0  # one connect, TLS handshake or reply
FIRST_WAIT, MAX_WAIT = 0.02, 0.2  # between attempts while an endpoint does not answer
MAX_REJECTS = 2  # chasquid closes a connection at its third error reply
MAX_RCPTS = 100  # recipients per envelope
_ENHANCED = re.compile(r"\d\.\d{1,3}\.\d{1,3}")
_ADDRESS = re.compile(r"[^\s<>@]+@[^\s<>@]+")
_TRANSIENT = (ConnectionError, TimeoutError, smtplib.SMTPServerDisconnected, ssl.SSLEOFError)
_Reply = tuple[int, str]


def probe(
    spec: ProbeSpec,
    *,
    deadline: float = 10.0,
    cancelled: Callable[[], bool] | None = None,
    gone: Callable[[], str] | None = None,
) -> ProbeResult:
    """Run every check of ``spec`` against the live server within ``deadline`` seconds;
    stop waiting for an endpoint that does not answer once ``cancelled()`` is true,
    or once ``gone()`` says why the server cannot answer any more ("": it may)."""
    run = _Run(spec, deadline, cancelled or _never, gone or _present)
    roles: list[tuple[str, Endpoint | None, _Body]] = [
        ("smtp", spec.smtp, _smtp),
        ("submission", spec.submission, _submission),
        ("submission_tls", spec.submission_tls, _submission_tls),
    ]
    jobs = [(role, ep, body) for role, ep, body in roles if ep is not None]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(_attempts, run, role, ep, body) for role, ep, body in jobs]
    checks = [check for future in futures for check in future.result()]
    if not checks:
        checks = [Check("probe.endpoints", False, "no listening address to probe")]
    elapsed = (time.monotonic() - run.start) * 1000
    return ProbeResult(all(c.ok for c in checks), tuple(checks), elapsed, run.stopped.is_set())


def _never() -> bool:
    return False


def _present() -> str:
    return ""


# --- one probe run -----------------------------------------------------------------


class _Refused(Exception):
    """The server answered a step the probe cannot go on from (not worth retrying)."""


class _DeadlinePassed(TimeoutError):
    """The probe's deadline has passed: no further step is started."""


@dataclass(frozen=True)
class _Run:
    spec: ProbeSpec
    seconds: float
    cancelled: Callable[[], bool]
    gone: Callable[[], str]
    start: float = field(default_factory=time.monotonic)
    stopped: threading.Event = field(default_factory=threading.Event)
    why_gone: list[str] = field(default_factory=list)  # gone()'s reason, once it gave one
    tls: ssl.SSLContext = field(default_factory=lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))

    def __post_init__(self) -> None:
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE  # the fingerprint is compared with the disk instead

    def left(self) -> float:
        return self.start + self.seconds - time.monotonic()

    def stop_waiting(self) -> bool:
        """Whether the caller cancelled the wait (asked once per endpoint and attempt)."""
        if not self.stopped.is_set() and self.cancelled():
            self.stopped.set()
        return self.stopped.is_set()

    def server_gone(self) -> str:
        """Why the server will not answer any more; "" while it may."""
        if not self.why_gone and (why := self.gone()):
            self.why_gone.append(why)
        return self.why_gone[0] if self.why_gone else ""

    def step(self) -> float:
        """The timeout for one network step; _DeadlinePassed once the deadline has passed."""
        if (left := self.left()) <= 0:
            raise _DeadlinePassed("the probe deadline passed")
        return min(STEP_TIMEOUT, left)


_Body = Callable[[_Run, str, Endpoint, list[Check]], None]


def _attempts(run: _Run, role: str, ep: Endpoint, body: _Body) -> list[Check]:
    """Run ``body`` on one endpoint, again while it does not answer, until the deadline."""
    wait, attempts, last = FIRST_WAIT, 0, "the probe deadline passed"
    while True:
        out: list[Check] = []
        try:
            body(run, role, ep, out)
            return out
        except _DeadlinePassed as exc:
            if out:
                return [*out, Check(f"{role}.session", False, f"{ep}: {exc}")]
        except _TRANSIENT as exc:
            attempts, last = attempts + 1, str(_socket_error(exc))
            if run.stop_waiting():
                detail = f"{ep} did not answer ({last}); the wait was cancelled"
                return [Check(f"{role}.connect", False, detail)]
            if why := run.server_gone():
                return [Check(f"{role}.connect", False, f"{ep} did not answer ({last}); {why}")]
            time.sleep(max(0.0, min(wait, run.left())))
            wait = min(wait * 2, MAX_WAIT)
            continue
        except (OSError, smtplib.SMTPException, _Refused, ValueError) as exc:
            return [*out, Check(f"{role}.{'session' if out else 'connect'}", False, f"{ep}: {exc}")]
        tries = f"{attempts} attempt" + ("" if attempts == 1 else "s")
        detail = f"no answer from {ep} within {run.seconds:g} s ({tries}): {last}"
        return [Check(f"{role}.connect", False, detail)]


def _socket_error(exc: BaseException) -> BaseException:
    """The socket's own error behind smtplib's "Connection unexpectedly closed: ..."."""
    inner = exc.__context__
    return inner if isinstance(exc, smtplib.SMTPServerDisconnected) and inner else exc


# --- the checks per endpoint role --------------------------------------------------


def _smtp(run: _Run, role: str, ep: Endpoint, out: list[Check]) -> None:
    with contextlib.closing(_Session(run, ep)) as session:
        _names(run, role, session, out)
        if _starttls(run, role, session, out) and run.spec.rcpt:
            _rcpts(run, ep, session, out)


def _submission(run: _Run, role: str, ep: Endpoint, out: list[Check]) -> None:
    with contextlib.closing(_Session(run, ep)) as session:
        auth = _names(run, role, session, out)
        detail = f"AUTH {auth} is offered before STARTTLS" if auth else "no AUTH before STARTTLS"
        out.append(Check(f"{role}.auth_before_tls", not auth, detail))
        if _starttls(run, role, session, out):
            _auth(role, session, out)


def _submission_tls(run: _Run, role: str, ep: Endpoint, out: list[Check]) -> None:
    with contextlib.closing(_Session(run, ep, tls_on_connect=True)) as session:
        _expect(session.banner, 220, "banner")
        out.append(_certificate(run, role, session))
        _expect(session.ehlo(), 250, "EHLO")
        _auth(role, session, out)


def _names(run: _Run, role: str, session: _Session, out: list[Check]) -> str:
    """Banner and EHLO reply name the hostname; returns the AUTH mechanisms offered."""
    out.append(_named(f"{role}.banner", "banner", session.banner, 220, run.spec.hostname))
    out.append(_named(f"{role}.ehlo", "EHLO reply", session.ehlo(), 250, run.spec.hostname))
    return session.auth_offered()


def _named(name: str, what: str, reply: _Reply, want: int, hostname: str) -> Check:
    if reply[0] != want:
        return Check(name, False, f"{what} is {_code(reply)}, expected {want}")
    words = reply[1].split("\n", 1)[0].split()
    named = words[0] if words else ""
    if named.rstrip(".").casefold() != hostname.rstrip(".").casefold():
        return Check(name, False, f'{what} names "{named}", expected "{hostname}"')
    return Check(name, True, f'{what} names "{named}"')


def _starttls(run: _Run, role: str, session: _Session, out: list[Check]) -> bool:
    reply = session.starttls()
    if reply[0] != 220:
        out.append(Check(f"{role}.certificate", False, f"STARTTLS refused: {_code(reply)}"))
        return False
    out.append(_certificate(run, role, session))
    _expect(session.ehlo(), 250, "EHLO after STARTTLS")
    return True


def _certificate(run: _Run, role: str, session: _Session) -> Check:
    served = hashlib.sha256(session.peer_certificate()).hexdigest()
    if served in run.spec.fingerprints:
        return Check(
            f"{role}.certificate", True, f"serves the certificate on disk (sha256 {served})"
        )
    on_disk = ", ".join(sorted(run.spec.fingerprints)) or "none"
    detail = f"serves certificate sha256 {served}, which is not on disk (on disk: {on_disk})"
    return Check(f"{role}.certificate", False, detail)


def _auth(role: str, session: _Session, out: list[Check]) -> None:
    auth = session.auth_offered()
    detail = f"AUTH {auth} offered in TLS" if auth else "AUTH is not offered in TLS"
    out.append(Check(f"{role}.auth", bool(auth), detail))


def _rcpts(run: _Run, ep: Endpoint, session: _Session, out: list[Check]) -> None:
    """RCPT per address after ``MAIL FROM:<>``; a new connection every two rejections."""
    rejects, accepted = 0, MAX_RCPTS
    try:
        for address, expected in run.spec.rcpt:
            if not _ADDRESS.fullmatch(address):
                out.append(Check(f"smtp.rcpt {address}", False, "not an address RCPT can ask"))
                continue
            if rejects >= MAX_REJECTS:
                session.close()
                session, rejects, accepted = _Session(run, ep), 0, MAX_RCPTS
                _expect(session.ehlo(), 250, "EHLO")
                _expect(session.starttls(), 220, "STARTTLS")
                _expect(session.ehlo(), 250, "EHLO after STARTTLS")
            if accepted >= MAX_RCPTS:
                _expect(session.command("MAIL", "FROM:<>"), 250, "MAIL FROM:<>")
                accepted = 0
            reply = session.command("RCPT", f"TO:<{address}>")
            rejects, accepted = rejects + (reply[0] >= 400), accepted + (reply[0] < 400)
            out.append(_rcpt_check(address, expected, reply))
        session.command("RSET")
    finally:
        session.close()


def _rcpt_check(address: str, expected: bool, reply: _Reply) -> Check:
    want = "accepted" if expected else "rejected"
    got = {2: "accepted", 5: "rejected"}.get(reply[0] // 100, "")
    name = f"smtp.rcpt {address}"
    if not got:
        return Check(name, False, f"<{address}> got {_code(reply)}: neither accepted nor rejected")
    verdict = "as expected" if got == want else f"but should be {want}"
    return Check(name, got == want, f"<{address}> {got} ({_code(reply)}), {verdict}")


def _expect(reply: _Reply, want: int, what: str) -> None:
    if reply[0] != want:
        raise _Refused(f"{what} answered {_code(reply)}, expected {want}")


def _code(reply: _Reply) -> str:
    """The reply code and enhanced status code, without chasquid's joke text."""
    words = reply[1].split(maxsplit=1)
    return f"{reply[0]} {words[0]}" if words and _ENHANCED.fullmatch(words[0]) else str(reply[0])


class _Session:
    """One SMTP connection (smtplib) in which no step waits past the deadline."""

    def __init__(self, run: _Run, ep: Endpoint, *, tls_on_connect: bool = False) -> None:
        self._run = run
        sock = socket.create_connection((ep.host, ep.port), timeout=run.step())
        try:
            # Without it the EHLO after STARTTLS waits ~40 ms for a delayed ACK (Nagle).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls_on_connect:
                sock = run.tls.wrap_socket(sock, server_hostname=run.spec.hostname)
            self._client = smtplib.SMTP(local_hostname=EHLO_NAME)
            self._client.command_encoding = "utf-8"
            self._client.sock = sock
            self.banner = _text(self._client.getreply())
        except BaseException:
            sock.close()
            raise

    def command(self, verb: str, args: str = "") -> _Reply:
        return _text(self._armed().docmd(verb, args))

    def ehlo(self) -> _Reply:
        return _text(self._armed().ehlo(EHLO_NAME))

    def auth_offered(self) -> str:
        return self._client.esmtp_features.get("auth", "").strip()

    def starttls(self) -> _Reply:
        """STARTTLS with SNI = the hostname; forgets the EHLO reply (RFC 3207)."""
        reply = self.command("STARTTLS")
        if reply[0] == 220:
            client = self._armed()
            assert client.sock is not None  # noqa: S101 - _armed checked it
            client.sock = self._run.tls.wrap_socket(
                client.sock, server_hostname=self._run.spec.hostname
            )
            client.file, client.ehlo_resp, client.esmtp_features = None, None, {}
        return reply

    def peer_certificate(self) -> bytes:
        sock = self._client.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        if not der:
            raise _Refused("no certificate was presented")
        return der

    def close(self) -> None:
        """QUIT while the connection stands and time is left, then close it."""
        try:
            if self._client.sock is not None and self._run.left() > 0:
                self._armed().docmd("QUIT")
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self._client.close()

    def _armed(self) -> smtplib.SMTP:
        """The client, its socket's timeout set to the next step's."""
        if self._client.sock is None:
            raise smtplib.SMTPServerDisconnected("the connection is closed")
        self._client.sock.settimeout(self._run.step())
        return self._client


def _text(reply: tuple[int, bytes]) -> _Reply:
    return reply[0], reply[1].decode("utf-8", "replace")
