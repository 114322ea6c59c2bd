"""The one place that starts processes.

Every subprocess goes through ``run``: argv lists only (never a shell), a
timeout, and a ``CommandError`` that shows the command, its exit status and
its output when it fails.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_mail.errors import CommandError


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
    input: bytes | None = None,  # noqa: A002 - mirrors subprocess.run
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    check: bool = True,
    hint: str = "",
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
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(args, None, _text(exc.stdout), _text(exc.stderr), hint) from exc
    except OSError as exc:
        raise CommandError(args, 127, "", str(exc), hint or f"is {args[0]} installed?") from exc
    result = Result(args, done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        raise CommandError(args, done.returncode, _text(done.stdout), _text(done.stderr), hint)
    return result


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")
