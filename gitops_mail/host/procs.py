"""The one place that starts processes.

Every subprocess goes through ``run``: argv lists only (never a shell), a
timeout, and a ``CommandError`` that shows the command, its exit status and
its output when it fails. A child asked and answered in turns over its stdin
and stdout (``git cat-file --batch``) goes through ``converse``. A
long-running child whose output is read while it runs (a pre-flight
chasquid) goes through ``spawn`` instead, which always stops and reaps it.
A child that outlives the call that made it (the chasquid a supervisor keeps
running) is made by ``start`` and ended by ``stop``.

Starting a child and taking charge of it are one step. Python runs a signal's
handler in the main thread between two steps of its code, and a handler that
raises (``KeyboardInterrupt``, an apply's ``Terminated``) could land after the
fork but before the code that stops the child is armed, or halfway through
stopping it: the child would outlive its owner. So ``spawn`` and ``converse``
start the child and arm its cleanup, and stop and reap it, with such signals
held (``host.signalhold``); a held signal acts right after, where the cleanup
is armed or done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gitops_mail.errors import CommandError
from gitops_mail.host import signalhold

Child = subprocess.Popen[bytes]  # a child from ``start`` or ``spawn``: other modules name it so
STOP_TIMEOUT = 5.0  # seconds from SIGTERM to SIGKILL when a child is stopped


@dataclass(frozen=True)
class Identity:
    """Whom a child runs as: this user and group, with no supplementary groups.

    Root uses it to hand work to a less trusted or less privileged user (git in
    the pusher's repo as the pusher, chasquid as chasquid). Running as oneself
    changes nothing.
    """

    uid: int
    gid: int


def identity_args(who: Identity | None) -> dict[str, Any]:
    """Popen's arguments for running as ``who`` (also for GitPython, which starts its own)."""
    if who is None or (who.uid, who.gid) == (os.geteuid(), os.getegid()):
        return {}
    return {"user": who.uid, "group": who.gid, "extra_groups": []}


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def run(
    argv: Sequence[str | Path],
    *,
    input: bytes | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    check: bool = True,
    hint: str = "",
    as_user: Identity | None = None,
) -> Result:
    """Run ``argv`` to completion; raise ``CommandError`` on failure if ``check``."""
    args = [str(a) for a in argv]
    try:
        done = subprocess.run(
            args,
            input=input,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            capture_output=True,
            timeout=timeout,
            check=False,
            **identity_args(as_user),
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(args, None, _text(exc.stdout), _text(exc.stderr), hint) from exc
    except OSError as exc:
        raise CommandError(args, 127, "", str(exc), hint or f"is {args[0]} installed?") from exc
    result = Result(args, done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        raise CommandError(args, done.returncode, _text(done.stdout), _text(done.stderr), hint)
    return result


@contextlib.contextmanager
def converse(
    argv: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    as_user: Identity | None = None,
) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """Start ``argv`` and yield ``(its stdin, its stdout)`` to ask and read answers.

    Its stderr is discarded: the caller judges by the answers, and an empty
    read means the child ended. A child still running ``timeout`` seconds after
    its start is killed, so no read waits longer. Leaving the block closes both
    pipes and reaps the child. Raises ``CommandError`` (127) if it cannot start.
    """
    args = [str(a) for a in argv]
    child: Child | None = None
    watchdog: threading.Timer | None = None
    try:
        with signalhold.held():
            child = _popen(
                args, cwd, env, as_user, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            watchdog = threading.Timer(timeout, child.kill)
            watchdog.daemon = True
            watchdog.start()
        assert child.stdin is not None and child.stdout is not None  # noqa: S101 - both are pipes
        yield child.stdin, child.stdout
    finally:
        with signalhold.held():
            if child is not None:
                _end_conversation(child)
            if watchdog is not None:
                watchdog.cancel()


def _end_conversation(child: Child) -> None:
    """Close both pipes (a child still writing gets SIGPIPE) and reap the child."""
    if child.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            child.stdin.close()
    if child.stdout is not None:
        child.stdout.close()
    child.wait()


@contextlib.contextmanager
def spawn(
    argv: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    stop_timeout: float = STOP_TIMEOUT,
    as_user: Identity | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` as a child and yield it; on leaving, stop and reap it.

    The child reads /dev/null; its stdout and stderr are merged into one pipe,
    ``child.stdout``, to read while it runs. It leads a new process group
    (session): leaving the block, normally or by an exception, sends SIGTERM
    to the whole group, waits up to ``stop_timeout`` seconds, then SIGKILLs
    the group and reaps the child, so nothing it started outlives the block,
    even when a signal lands while it starts or stops (``host.signalhold``).
    Raises ``CommandError`` (127) if the program cannot be started.
    """
    args = [str(a) for a in argv]
    child: Child | None = None
    try:
        with signalhold.held():  # started and owned in one step: see the module docstring
            child = _popen(args, cwd, env, as_user, stderr=subprocess.STDOUT, session=True)
        yield child
    finally:
        with signalhold.held():  # a signal now cannot cut the stop short
            if child is not None:
                _stop_group(child, stop_timeout)


def start(
    argv: Sequence[str | Path],
    *,
    output: int,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    as_user: Identity | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that leads a new session; the caller owns it.

    The child reads /dev/null and writes its stdout and stderr to the file
    descriptor ``output`` (a log file opened for appending, say). The caller
    must reap it (``wait``/``poll``) and end it with ``stop``. A signal whose
    handler raises, caught while it starts, stops it again before the
    exception leaves here, so it is returned or gone. Raises ``CommandError``
    (127) if the program cannot be started.
    """
    args = [str(a) for a in argv]
    child: Child | None = None
    try:
        with signalhold.held():
            child = _popen(args, cwd, env, as_user, stdout=output, stderr=output, session=True)
    except BaseException:
        if child is not None:
            with signalhold.held():
                _stop_group(child, STOP_TIMEOUT)
        raise
    return child


def wait(child: Child, timeout: float | None = None) -> int | None:
    """The child's exit status once it has ended, or None if it still runs after ``timeout``."""
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def stop(child: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """End a child from ``start`` or ``spawn`` and its process group; reap it.

    SIGTERM to the group, SIGKILL after ``timeout`` seconds. Harmless if the
    child has already ended.
    """
    with signalhold.held():
        _stop_group(child, timeout)


def _stop_group(child: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``timeout``; reap; close."""
    if child.poll() is None:  # not reaped yet: its pid still names its group
        _signal_group(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGKILL)
            child.wait()
    # Whatever else the group still holds (a wrapper's own children) goes too.
    # The kernel keeps the id reserved while any member lives; with none left
    # this finds no group.
    _signal_group(child.pid, signal.SIGKILL)
    if child.stdout is not None:
        child.stdout.close()


def _popen(
    args: list[str],
    cwd: str | Path | None,
    env: Mapping[str, str] | None,
    as_user: Identity | None,
    *,
    stdin: int = subprocess.DEVNULL,
    stdout: int = subprocess.PIPE,
    stderr: int,
    session: bool = False,
) -> Child:
    """``subprocess.Popen`` with these streams; ``CommandError`` (127) if it cannot start."""
    try:
        return subprocess.Popen(
            args,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=session,
            **identity_args(as_user),
        )
    except OSError as exc:
        raise CommandError(args, 127, "", str(exc), f"is {args[0]} installed?") from exc


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")
