"""A live directory tree, byte for byte, and the small LiveDir steps tests repeat."""

from __future__ import annotations

import errno
import grp
import os
import stat
import subprocess
from pathlib import Path

from gitops_mail.core.tree import FileSpec
from gitops_mail.host.livefs.configdir import LiveDir
from gitops_mail.host.livefs.scan import WORK_DIR

CHASQUID_GID = grp.getgrnam("chasquid").gr_gid
TreeEntry = tuple[str, int, int, int, bytes]
TreeState = dict[str, TreeEntry]


def tree_state(root: Path, *, work_dir: bool = False) -> TreeState:
    """Every entry below ``root`` (and root as "."): kind, mode, uid, gid, bytes or target.

    gitops-mail's work dir at the top (``WORK_DIR``) is not part of the live tree:
    left out unless ``work_dir``."""
    found = {".": entry(root)}
    for directory, dirs, files in os.walk(root):
        if Path(directory) == root and not work_dir:
            dirs[:] = [d for d in dirs if d != WORK_DIR]
        for name in dirs + files:
            path = Path(directory, name)
            found[path.relative_to(root).as_posix()] = entry(path)
    return dict(sorted(found.items()))


def entry(path: Path) -> TreeEntry:
    """One entry as ``tree_state`` records it (a symlink's mode as 0: Linux has none)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "link", 0, info.st_uid, info.st_gid, os.fsencode(os.readlink(path))
    data = b"" if stat.S_ISDIR(info.st_mode) else path.read_bytes()
    kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
    return kind, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, data


def users(data: bytes) -> FileSpec:
    """A users (or aliases) file as chasquid's package installs it: 0640 root:chasquid."""
    return FileSpec(data, 0o640, "root", "chasquid")


def apply(live: LiveDir, tree: dict[str, FileSpec]) -> None:
    """Stage, swap and clean up: ``tree`` goes live."""
    staged = live.stage(tree)
    live.cleanup(live.swap(staged))
    live.discard(staged)


def fill(directory: Path) -> Path:
    """Write zeros into ``directory/filler`` until its filesystem is full."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:  # only "full" is the expected end
                raise
    return filler


class Mounts:
    """``mounts(*args, target)`` runs mount(8); ``mounts.undo(target)`` unmounts it."""

    def __init__(self) -> None:
        self.targets: list[Path] = []

    def __call__(self, *args: str | Path) -> Path:
        subprocess.run(["mount", *map(str, args)], check=True, capture_output=True)
        self.targets.append(Path(args[-1]))
        return Path(args[-1])

    def undo(self, target: Path, *, lazy: bool = False) -> None:
        flags = ["-l"] if lazy else []
        subprocess.run(["umount", *flags, str(target)], check=True, capture_output=True)
        self.targets.reverse()
        self.targets.remove(target)  # the newest mount on target
        self.targets.reverse()

    def undo_all(self, *, lazy: bool = False) -> None:
        """Unmount whatever is still mounted, newest first."""
        for target in reversed(list(self.targets)):
            self.undo(target, lazy=lazy)
