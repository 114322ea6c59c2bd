"""The one error root, and the one table from errors to exit codes.

Every error a user can meet is a ``GitopsMailError``: a message that says what
went wrong and an optional hint that says how to fix it. The CLI prints both and
exits with ``exit_code``; tracebacks appear only with ``--debug``.
"""

from __future__ import annotations


class GitopsMailError(Exception):
    """Base of every error gitops-mail reports to a user."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(GitopsMailError):
    """The command line or an argument is wrong."""


class RepoError(GitopsMailError):
    """A git repository or revision cannot be read."""


class CommandError(GitopsMailError):
    """A program we started failed; the message carries argv, code and output."""

    def __init__(
        self, argv: list[str], returncode: int | None, stdout: str, stderr: str, hint: str = ""
    ) -> None:
        shown = " ".join(argv)
        status = "timed out" if returncode is None else f"exited {returncode}"
        detail = (stderr.strip() or stdout.strip())[-2000:]
        message = f"command {shown!r} {status}" + (f": {detail}" if detail else "")
        super().__init__(message, hint)
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class InvalidConfig(GitopsMailError):
    """A revision (or a host settings file) did not pass validation."""


class NotFound(GitopsMailError):
    """Something the user named (a user, a domain, a file) does not exist."""
