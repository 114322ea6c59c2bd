"""What reading one revision may cost, judged from sizes before any content is read.

``git.read`` learns each object's size from git (``cat-file`` answers an
object's header before its content, and ``info`` answers only the header);
``host.localfs`` learns it from ``lstat``. Both hand the sizes to a
``Budget``, which returns, as problems naming each path, what goes over this
host's ``limits:`` (``core.policy.Limits``); ``refusal`` turns them into the
error that refuses the whole revision. Pure: nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Sequence

from gitops_mail.core.policy import Limits
from gitops_mail.core.problems import Problem, error
from gitops_mail.errors import InvalidConfig

MAX_PATH_BYTES = 4096  # Linux's PATH_MAX: a longer path could not even be checked out
LARGEST_SHOWN = 3  # files named when a revision's total is over its limit
_SHOWN_PATH = 200  # characters of an over-long path shown in a message

_FILE_HINT = "make it smaller or remove it in a new commit; a host raises the limit in its settings"
_TOTAL_HINT = "remove or shrink files in a new commit; a host raises the limit in its settings"


class Budget:
    """The limits of one read, as problems about what goes over them."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def count(self, paths: int, where: str) -> Problem | None:
        """``paths`` files and directories so far (the last under ``where``): too many?"""
        if paths <= self.limits.revision_files:
            return None
        message = (
            f"more than {self.limits.revision_files:,} files and directories, counting "
            "each path, over the limit for a revision (limits.revision_files)"
        )
        hint = "remove files in a new commit; a host raises the limit in its settings"
        return error(where or ".", None, "limits.revision-files", message, hint)

    def path(self, path: str) -> Problem | None:
        """A path longer than any filesystem here could hold."""
        if len(path.encode("utf-8", "surrogateescape")) <= MAX_PATH_BYTES:
            return None
        shown = path[:_SHOWN_PATH] + "..."
        message = f"a path longer than {MAX_PATH_BYTES:,} bytes starts here"
        return error(shown, None, "limits.path-length", message, "use shorter names, fewer levels")

    def object(self, path: str, size: int, what: str = "") -> Problem | None:
        """One object (a file; ``what`` names anything else) over ``file_bytes``?"""
        limit = self.limits.file_bytes
        if size <= limit:
            return None
        message = f"{what}{size:,} bytes, over the limit of {limit:,} bytes for one file"
        return error(path, None, "limits.file-bytes", f"{message} (limits.file_bytes)", _FILE_HINT)

    def files(self, sizes: Sequence[tuple[str, int]]) -> list[Problem]:
        """Every file over ``file_bytes``, and the total if over ``revision_bytes``."""
        found = [p for path, size in sizes if (p := self.object(path, size)) is not None]
        rest = sum(size for _, size in sizes if size <= self.limits.file_bytes)
        if rest > self.limits.revision_bytes:  # still over once the files above are fixed
            found.append(self._total(sizes, sum(size for _, size in sizes)))
        return found

    def _total(self, sizes: Sequence[tuple[str, int]], total: int) -> Problem:
        largest = sorted(sizes, key=lambda item: (-item[1], item[0]))[:LARGEST_SHOWN]
        named = ", ".join(f"{path} ({size:,} bytes)" for path, size in largest)
        message = (
            f"the files add up to {total:,} bytes, over the limit of "
            f"{self.limits.revision_bytes:,} bytes for a revision (limits.revision_bytes); "
            f"the largest: {named}"
        )
        return error(largest[0][0], None, "limits.revision-bytes", message, _TOTAL_HINT)


def refusal(source: str, problems: Sequence[Problem]) -> InvalidConfig:
    """The error refusing ``source`` (``revision main (1a2b3c4)``) for ``problems``."""
    return InvalidConfig(
        f"{source} is too large to check; none of its files was read:\n"
        + "\n".join(p.format() for p in problems)
    )
