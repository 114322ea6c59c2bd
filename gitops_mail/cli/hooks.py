"""``gitops-mail hooks install REPO``, and the hooks it installs.

``pre-receive`` validates the pushed tip of the watched branch with the same
checks as ``gitops-mail validate`` and rejects the push when it is invalid;
``post-receive`` waits, bounded, for the daemon's result and prints it. git
shows both hooks' output to the pusher, each line prefixed with ``remote:``.

The installed scripts run ``python -m gitops_mail.cli.hooks HOOK``
(``main`` below) with the interpreter and the host settings file recorded at
install time, so they work in an SSH session with no particular environment.
During ``pre-receive`` the pushed objects are still in git's quarantine;
``git.read`` keeps the variables that point there, so reads see them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gitops_mail.apply.store import Record, StateStore
from gitops_mail.core.policy import Limits
from gitops_mail.core.printable import shown_lines
from gitops_mail.daemon import pushhooks
from gitops_mail.errors import GitopsMailError, UsageError
from gitops_mail.host import settings as hostsettings

if TYPE_CHECKING:
    from gitops_mail.core.policy import HostPolicy
    from gitops_mail.core.problems import Problem

# post-receive: every POLL_INTERVAL a stat of state.json, which the daemon replaces
# (rename) when it records a result; a read when it changed, and every RECHECK_S anyway.
POLL_INTERVAL = 0.005
RECHECK_S = 0.05
DEFAULT_TIMEOUT = 15.0
BACKUP_SUFFIX = ".before-gitops-mail"


def run(args: argparse.Namespace) -> int:
    if args.command == "hook":
        stdin = sys.stdin.read()
        if args.hook == "pre-receive":
            return pre_receive(args.config, Path(args.repo), stdin)
        return post_receive(args.config, Path(args.repo), stdin, args.timeout)
    return install(Path(args.repo), args.config, timeout=args.timeout, force=args.force)


# --- install -----------------------------------------------------------------------------


def install(repo: Path, config: str | None, *, timeout: float, force: bool) -> int:
    """Write both hooks into ``repo``, the repository the host settings watch."""
    from gitops_mail.host import localfs  # noqa: PLC0415 - the hooks themselves never write

    if timeout <= 0:
        raise UsageError(f"--timeout must be more than 0 seconds, not {timeout:g}")
    settings_file = os.path.abspath(hostsettings.settings_path(config))
    settings = hostsettings.load(settings_file)
    hooks_dir = _hooks_dir(repo, settings)
    targets = {name: hooks_dir / name for name in pushhooks.HOOKS}
    foreign = [path for path in targets.values() if _foreign(path)]
    if foreign and not force:
        raise UsageError(
            "refusing to replace hooks gitops-mail did not install: "
            + ", ".join(str(p) for p in foreign),
            "move them away, or pass --force to replace them (each is kept as "
            f"NAME{BACKUP_SUFFIX})",
        )
    python = _python()
    hooks_dir.mkdir(exist_ok=True)
    for name, path in targets.items():
        if path in foreign:
            print(f"kept the old {name} hook as {_backup(path)}")
        script = pushhooks.hook_script(name, python, settings_file, timeout)
        localfs.atomic_write(path, script.encode(), mode=0o755)
    print(
        f"installed pre-receive and post-receive in {hooks_dir}: pushes to {settings.branch} "
        f"are validated, then wait up to {timeout:g} s for the daemon's result "
        f"(host settings: {settings_file})"
    )
    _share_results(settings)
    return 0


def _share_results(settings: hostsettings.HostSettings) -> None:
    """Let the repo's group (the pushers) read the two files post-receive reads, no more."""
    import grp  # noqa: PLC0415 - install only

    from gitops_mail.host import statedir  # noqa: PLC0415 - the hooks themselves never write

    gid = os.stat(settings.repo).st_gid
    statedir.share(settings.state_dir, gid)
    try:
        name = grp.getgrgid(gid).gr_name
    except KeyError:
        name = str(gid)
    print(
        f"the hooks read the daemon's results in {settings.state_dir}: group {name} (the "
        "repo's) may open state.json and daemon.json there, nothing else"
    )


def _hooks_dir(repo: Path, settings: hostsettings.HostSettings) -> Path:
    from gitops_mail.git import plumbing as gitplumbing  # noqa: PLC0415 - post-receive starts faster

    top = gitplumbing.repo_toplevel(repo)
    watched = gitplumbing.repo_toplevel(settings.repo)
    if top.resolve() != watched.resolve():
        raise UsageError(
            f"{top} is not the repository the host settings watch ({settings.repo})",
            f"install the hooks into {settings.repo}, or fix repo: in {settings.path}",
        )
    git_dir = top if gitplumbing.is_bare(top) else top / ".git"
    if not git_dir.is_dir():
        raise UsageError(
            f"{top} keeps its git directory elsewhere ({git_dir} is not a directory)",
            "install the hooks into the main repository, not a linked worktree or submodule",
        )
    return git_dir / "hooks"


def _foreign(path: Path) -> bool:
    try:
        return not pushhooks.is_ours(path.read_bytes())
    except FileNotFoundError:
        return False


def _backup(path: Path) -> Path:
    """Rename ``path`` to a free ``NAME.before-gitops-mail[.N]``; the new name."""
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    number = 0
    while backup.exists():
        number += 1
        backup = path.with_name(f"{path.name}{BACKUP_SUFFIX}.{number}")
    path.rename(backup)
    return backup


def _python() -> str:
    """The interpreter running now: the one whose environment has gitops-mail installed."""
    if not sys.executable:
        raise UsageError(
            "cannot tell which Python runs gitops-mail",
            "run `gitops-mail hooks install` through the gitops-mail command",
        )
    return os.path.abspath(sys.executable)


# --- the hooks ---------------------------------------------------------------------------


def pre_receive(config: str | None, repo: Path, stdin: str) -> int:
    """Exit 1, which rejects the whole push, when the watched branch's new tip is invalid."""
    try:
        settings = hostsettings.load(config)
        update = pushhooks.watched_update(pushhooks.parse_updates(stdin), settings.branch)
        if update is None:
            return 0
        if update.is_deletion:
            _say(pushhooks.deletion_refused(update))
            return 1
        problems = _validate(repo, update.new, settings.policy)
    except GitopsMailError as exc:
        _say_error(exc)
        _say("gitops-mail: push rejected: the pushed commit could not be checked\n")
        return 1
    found = pushhooks.verdict(problems, update, settings.branch)
    _say(found.text)
    return 0 if found.accepted else 1


def _validate(repo: Path, revision: str, policy: HostPolicy) -> list[Problem]:
    """The checks of ``gitops-mail validate`` with this host's ``policy`` (what it refuses
    is an error), imported only when the watched branch moves."""
    from gitops_mail.core.checks.validate import validate  # noqa: PLC0415 - about 150 ms of imports
    from gitops_mail.core.state import load_state  # noqa: PLC0415
    from gitops_mail.git import (  # noqa: PLC0415 - post-receive starts faster without it
        read as gitread,
    )

    return validate(load_state(gitread.read_revision(repo, revision)), policy=policy)


def post_receive(config: str | None, repo: Path, stdin: str, timeout: float) -> int:
    """Print the daemon's result for the new tip, or that none came in time; always 0."""
    started = datetime.now(UTC)
    try:
        settings = hostsettings.load(config)
        update = pushhooks.watched_update(pushhooks.parse_updates(stdin), settings.branch)
        if update is None or update.is_deletion:
            return 0
        _say(pushhooks.waiting_text(update.new, timeout))
        _say(_wait_for_result(settings, repo, update.new, started, timeout))
    except GitopsMailError as exc:
        _say_error(exc)
        _say("see gitops-mail status\n")
    return 0


def _wait_for_result(
    settings: hostsettings.HostSettings, repo: Path, tip: str, started: datetime, timeout: float
) -> str:
    store, after = StateStore(settings.state_dir), pushhooks.since(started)
    deadline = time.monotonic() + timeout
    seen: tuple[int, int, int] | None = None
    checked = float("-inf")
    while True:
        now, stamp = time.monotonic(), _stamp(store.path)
        if stamp is None or stamp != seen or now >= checked + RECHECK_S:
            seen, checked = stamp, now
            text = _result(store.load(), repo, settings.branch, tip, after)
            if text is not None:
                return text
        if now >= deadline:
            return pushhooks.timeout_text(timeout)
        time.sleep(POLL_INTERVAL)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """Which version of ``path`` is there (a replaced file has a new inode); None if unknown."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _result(record: Record, repo: Path, branch: str, tip: str, after: datetime) -> str | None:
    """What to tell the pusher about ``tip``, if the daemon has said it yet."""
    attempt = pushhooks.result_of(record, tip, after)
    if attempt is not None:
        return pushhooks.result_text(attempt)
    later = pushhooks.later_attempt(record, tip, after)
    if later is not None and _branch_moved_to(repo, branch, tip, later.revision):
        return pushhooks.result_text(later, superseded=True)
    return None


def _branch_moved_to(repo: Path, branch: str, tip: str, revision: str) -> bool:
    """Whether a later push moved ``branch`` from ``tip`` to ``revision``."""
    from gitops_mail.git import plumbing as gitplumbing  # noqa: PLC0415 - keep start-up light

    try:
        now = gitplumbing.resolve_revision(repo, pushhooks.branch_ref(branch))
    except GitopsMailError:
        return False
    return now != tip and now == revision


def _say(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()  # git relays hook output as it comes: show it before waiting


def _say_error(exc: GitopsMailError) -> None:
    _say(f"gitops-mail: error: {shown_lines(exc.message)}\n")
    if exc.hint:
        _say(f"    hint: {shown_lines(exc.hint)}\n")


# --- entry point of the installed scripts ------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gitops_mail.cli.hooks",
        description="Run a gitops-mail receive hook; git feeds `<old> <new> <ref>` lines "
        "on standard input. Installed by `gitops-mail hooks install`.",
    )
    parser.add_argument("hook", choices=pushhooks.HOOKS)
    parser.add_argument("--config", required=True, help="the host settings file")
    parser.add_argument(
        "--repo", default=".", help="the repository (default: ., where git runs receive hooks)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="post-receive: seconds to wait for the daemon's result",
    )
    parser.set_defaults(command="hook")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The installed hooks' entry point: bound this process, then run the hook.

    The bounds come first, before standard input (one line per pushed ref) is
    read: ``limits.hook_memory_mb`` and ``limits.hook_seconds`` of the host
    settings (their defaults if the settings cannot be read: the hook then
    says why and, for pre-receive, rejects the push). A bound reached rejects
    the push (pre-receive) or ends the wait (post-receive), never accepts.
    """
    from gitops_mail.host import rlimits  # noqa: PLC0415 - only the installed hooks bound themselves

    args = build_parser().parse_args(argv)
    limits = _limits(args.config)
    rlimits.bound_self(limits.hook_seconds, limits.hook_memory_mb)
    try:
        with _reads_within(limits, args.hook):
            code = run(args)
        rlimits.disarm()  # done: no deadline may strike while the process exits
    except (rlimits.TimeUp, MemoryError) as exc:
        exceeded = "time" if isinstance(exc, rlimits.TimeUp) else "memory"
        _say(pushhooks.bound_text(args.hook, exceeded, limits))
        return 1 if args.hook == "pre-receive" else 0
    if rlimits.timed_out() and args.hook == "pre-receive":  # caught somewhere: still too late
        _say(pushhooks.bound_text(args.hook, "time", limits))
        return 1
    return code


def _limits(config: str | None) -> Limits:
    """This host's limits; the defaults if its settings cannot be read (the hook says why)."""
    try:
        return hostsettings.load(config).limits
    except GitopsMailError:
        return Limits()


def _reads_within(limits: Limits, hook: str) -> contextlib.AbstractContextManager[None]:
    """pre-receive reads the pushed revision within the host's size limits."""
    if hook != "pre-receive":
        return contextlib.nullcontext()  # post-receive reads no revision: git.read stays unloaded
    from gitops_mail.git import read as gitread  # noqa: PLC0415 - as _validate

    return gitread.bounded(limits)


if __name__ == "__main__":
    sys.exit(main())
