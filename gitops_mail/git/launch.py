"""How every git process starts: as whom, and with which environment.

The daemon runs as root; the repository it watches belongs to the user who
pushes over SSH. Git runs on a repository as that repository's owner (the
owner and group of its git dir) whenever we are root and the owner is someone
else. So the objects, refs and indexes git writes stay the owner's (a root-owned
``objects/xx/`` would refuse the owner's next push), and whatever program the
repository's hooks or config could name runs, at worst, as the user who could
already run it.

Then, for every call, whoever we run as: the repository's hooks are never run
and configuration that names a program is overridden (``OVERRIDES``), and the
transport takes its programs from this host, never from the repository's
config (``_transport``). The overrides are ``GIT_CONFIG_*`` entries, which git
ranks above every configuration file.
"""

from __future__ import annotations

import os
import pwd
import shlex
from pathlib import Path

from gitops_mail.host import procs

# An empty directory inside the package: whoever can add a file to it can change
# gitops-mail itself. Hooks are looked up here, so none is ever found.
NO_HOOKS = Path(__file__).with_name("nohooks")

# Configuration that names a program, overridden in every git call we make, each
# with what it stops:
OVERRIDES = (
    # Every hook of the repository: reference-transaction (update-ref, fetch),
    # post-index-change (read-tree, update-index), pre-auto-gc (fetch, commit),
    # pre-push (push), pre-commit, commit-msg, post-commit (a commit in a checkout).
    ("core.hooksPath", str(NO_HOOKS)),
    # The fsmonitor hook program (or daemon) asked which files changed when an
    # index of a checkout is read (the commit-back's scratch index, `git add`).
    ("core.fsmonitor", "false"),
    # The program that asks for a password; with none, GIT_TERMINAL_PROMPT=0 fails.
    ("core.askPass", ""),
    # Credential helpers (credential.helper and credential.<url>.helper): the
    # empty value empties the list. Put a token in the remote's URL, or use SSH.
    ("credential.helper", ""),
    # The shell command that lists an alternate object store's tips during a
    # fetch; `true` lists none, so the fetch only negotiates less well.
    ("core.alternateRefsCommand", "true"),
)
# Not overridden, because our calls never reach them: pagers and editors (no
# terminal, no editing), diff and merge drivers, textconv and external diffs
# (`--no-ext-diff --no-textconv` where a diff is asked for), aliases and tools,
# signing and verifying programs (gpg.program, gpg.<format>.program: the bot's
# commit-tree says --no-gpg-sign, push --no-signed, and nothing verifies).
# A commit made in a checkout for its owner (`gitops-mail user add`) signs, and
# runs clean filters (`filter.<driver>.clean`), as that checkout's config says:
# as the checkout's owner, like everything else here.

_PROTOCOLS = "file:git:ssh:http:https"  # no ext:: (runs a command), no remote helper
_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")


def owner(repo: Path) -> procs.Identity | None:
    """Whom git runs as on ``repo``: its owner when we are root and it is someone else's.

    The owner is that of the git dir ``repo`` is in (found as git finds it:
    ``.git`` or a bare repository in ``repo`` or above), with the git dir's
    group; if that is root's, the owner of ``repo`` itself, so that a ``.git``
    its owner points at a directory of root's does not make git run as root
    (git then refuses the mix of owners). None means "as ourselves": not root,
    or all of it root's.
    """
    if os.geteuid() != 0:
        return None
    path = Path(os.path.realpath(repo))
    for candidate in (_git_dir(path), path):
        try:
            found = os.stat(candidate) if candidate is not None else None
        except OSError:
            continue
        if found is not None and found.st_uid != 0:
            return procs.Identity(found.st_uid, found.st_gid)
    return None


def environment(who: procs.Identity | None) -> dict[str, str]:
    """The environment git runs in: ours without a hook's location variables, C messages,
    the overrides, the transport's programs, and ``who``'s home."""
    env = {k: v for k, v in os.environ.items() if k not in _LOCATION_VARS}
    env["LC_ALL"] = "C"
    count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    for number, (key, value) in enumerate(OVERRIDES, start=count):
        env[f"GIT_CONFIG_KEY_{number}"], env[f"GIT_CONFIG_VALUE_{number}"] = key, value
    env["GIT_CONFIG_COUNT"] = str(count + len(OVERRIDES))
    env.update(_transport(env))
    if who is not None:
        env.update(_home(who.uid))
    return env


def _transport(env: dict[str, str]) -> dict[str, str]:
    """Programs a fetch or push runs, chosen by this host (its environment), never by the
    repository: each variable wins over the configuration that would name one."""
    ssh = env.get("GIT_SSH_COMMAND") or shlex.quote(env.get("GIT_SSH") or "ssh")
    return {
        "GIT_SSH_COMMAND": ssh,  # over core.sshCommand
        "GIT_PROXY_COMMAND": env.get("GIT_PROXY_COMMAND", ""),  # over core.gitProxy ("": none)
        # Over protocol.<name>.allow, so no ext:: URL (url.<base>.insteadOf can make
        # one) and no remote.<name>.vcs helper.
        "GIT_ALLOW_PROTOCOL": env.get("GIT_ALLOW_PROTOCOL", _PROTOCOLS),
    }


def _home(uid: int) -> dict[str, str]:
    """HOME and XDG_CONFIG_HOME of ``uid``: its own global config, not root's."""
    try:
        home = pwd.getpwuid(uid).pw_dir
    except KeyError:
        home = "/nonexistent"
    return {"HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config")}


def _git_dir(path: Path) -> Path | None:
    """The git dir git finds from ``path``: in each directory up, ``.git`` first, then
    the directory itself as a bare repository."""
    for here in (path, *path.parents):
        dotgit = here / ".git"
        if dotgit.is_file():
            return _gitfile_target(dotgit)
        if dotgit.is_dir():
            return dotgit
        if (here / "HEAD").is_file() and (here / "objects").is_dir() and (here / "refs").is_dir():
            return here
    return None


def _gitfile_target(gitfile: Path) -> Path:
    """Where a ``.git`` file (``gitdir: PATH``, a linked worktree) points; the file itself
    when it says nothing readable."""
    try:
        with gitfile.open("rb") as opened:
            text = opened.read(4096).decode("utf-8", "surrogateescape")
    except OSError:
        return gitfile
    if not text.startswith("gitdir: "):
        return gitfile
    return gitfile.parent / text[len("gitdir: ") :].strip()
