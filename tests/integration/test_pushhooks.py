"""Feedback on push: the installed hooks in a real bare repo, fed by real ``git push``.

The hooks run as git runs them: ``pre-receive`` with the pushed objects still
in quarantine, both with the pusher's environment. The daemon is played by a
thread that records its result through ``StateStore`` once the branch moves.
``GITOPS_MAIL_CONFIG`` points nowhere in every test (the autouse fixture), so
every push also shows that the hooks use the settings file recorded at install.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.repo import ALIASES, ALIASES_PATH, MANIFEST, repo_files
from support.wait import poll

from gitops_mail.apply.store import Attempt, Record, StateStore
from gitops_mail.cli import hooks
from gitops_mail.daemon import pushhooks
from gitops_mail.errors import GitopsMailError, UsageError

VALID = repo_files()
ZERO = "0" * 40
LOOP = [
    f"{ALIASES_PATH}:3: error: alias loop: a@example.com -> b@example.com -> a@example.com: "
    "chasquid answers 451 to mail for these addresses (recursion limit exceeded)",
    "    hint: break the loop: one of these addresses must lead to a user, a pipe or a remote "
    "address",
]
REJECTED = "gitops-mail: push rejected: fix the problems above and push again"
NO_SETTINGS_HINT = "create it (see the README), or pass --config / set GITOPS_MAIL_CONFIG"


@dataclass(frozen=True)
class Host:
    settings: Path
    state_dir: Path

    @property
    def store(self) -> StateStore:
        return StateStore(self.state_dir)


@dataclass(frozen=True)
class Pushed:
    code: int
    remote: list[str]  # what the hooks printed, without git's "remote: " and padding
    stderr: str


@pytest.fixture
def host(tmp_path: Path, origin) -> Host:
    settings = tmp_path / "host" / "gitops-mail.yaml"
    settings.parent.mkdir()
    state_dir = tmp_path / "state"
    settings.write_text(f"repo: {origin.path}\nbranch: main\nstate_dir: {state_dir}\n")
    return Host(settings, state_dir)


@pytest.fixture
def published(workdir) -> str:
    """A valid first commit on main, pushed before any hook exists; its id."""
    commit = workdir.commit(VALID, "first")
    workdir.push()
    return commit


def install(repo: Path, host: Host, timeout: float = 0.05, *, force: bool = False) -> int:
    args = argparse.Namespace(
        command="hooks",
        action="install",
        repo=str(repo),
        config=str(host.settings),
        timeout=timeout,
        force=force,
    )
    return hooks.run(args)


def run_hook(
    monkeypatch: pytest.MonkeyPatch,
    hook: str,
    host: Host,
    repo: Path,
    stdin: str,
    *,
    timeout: float = 1.0,
) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    args = argparse.Namespace(
        command="hook", hook=hook, config=str(host.settings), repo=str(repo), timeout=timeout
    )
    return hooks.run(args)


def push(workdir, *refspecs: str, env: Mapping[str, str] | None = None):
    done = subprocess.run(
        ["git", "push", "origin", *(refspecs or ("HEAD:refs/heads/main",))],
        cwd=workdir.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    remote = [
        line.removeprefix("remote: ").rstrip()
        for line in done.stderr.splitlines()
        if line.startswith("remote: ")
    ]
    return Pushed(done.returncode, remote, done.stderr)


def tip(origin, ref: str = "main") -> str:
    return origin.git("rev-parse", ref).strip()


def stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def waiting(commit: str, timeout: str) -> str:
    return f"gitops-mail: waiting up to {timeout} s for the daemon to apply {commit[:7]}"


class FakeDaemon(threading.Thread):
    """Records ``attempt`` once ``origin``'s main has moved to ``attempt.revision``.

    Whether the hook is waiting by then or not yet started, it reports it: the
    hook accepts an attempt that started a little before itself.
    """

    def __init__(self, origin, store: StateStore, attempt: Attempt) -> None:
        super().__init__(daemon=True)
        self.origin, self.store, self.attempt = origin, store, attempt
        self.recorded = threading.Event()

    def run(self) -> None:
        ref = self.origin.path / "refs" / "heads" / "main"
        poll(
            lambda: ref.exists() and ref.read_text().strip() == self.attempt.revision,
            what="the push to move main",
        )
        self.store.record(self.attempt, applied=self.attempt.revision)
        self.recorded.set()


# --- pre-receive in a real push ----------------------------------------------------------


def test_a_valid_push_is_accepted(published, workdir, origin, host):
    install(origin.path, host)
    commit = workdir.commit({ALIASES_PATH: ALIASES + "info: owner@gmail.com\n"})
    pushed = push(workdir)
    assert pushed.code == 0, pushed.stderr
    assert pushed.remote == [
        f"main ({commit[:7]}): valid",  # read from the quarantine: not in the repo yet
        waiting(commit, "0.05"),
        "no result within 0.05 s; see gitops-mail status",
    ]
    assert tip(origin) == commit


def test_an_alias_loop_is_rejected_and_the_branch_stays(published, workdir, origin, host):
    install(origin.path, host)
    commit = workdir.commit({ALIASES_PATH: ALIASES + "a: b\nb: a\n"}, "loop")
    pushed = push(workdir)
    assert pushed.code == 1
    assert pushed.remote == [*LOOP, f"main ({commit[:7]}): invalid: 1 error, 0 warnings", REJECTED]
    assert " ! [remote rejected] HEAD -> main (pre-receive hook declined)" in pushed.stderr
    assert tip(origin) == published
    missing = subprocess.run(
        ["git", "cat-file", "-e", commit], cwd=origin.path, capture_output=True, check=False
    )
    assert missing.returncode != 0  # the quarantine was dropped with the push


def test_bad_yaml_and_a_loop_are_all_reported_at_once(published, workdir, origin, host):
    install(origin.path, host)
    commit = workdir.commit(
        {"gitops-mail.yaml": "version: 1\ndomains: [\n", ALIASES_PATH: ALIASES + "a: b\nb: a\n"}
    )
    pushed = push(workdir)
    assert pushed.code == 1
    assert pushed.remote == [
        *LOOP,
        "gitops-mail.yaml:3:1: error: invalid YAML: did not find expected node content "
        "(while parsing a flow node)",
        f"main ({commit[:7]}): invalid: 2 errors, 0 warnings",
        REJECTED,
    ]
    assert tip(origin) == published


def test_warnings_are_shown_but_do_not_reject(published, workdir, origin, host):
    install(origin.path, host)
    commit = workdir.commit({ALIASES_PATH: "sales: carol@fastmail.com\n"})
    pushed = push(workdir)
    assert pushed.code == 0, pushed.stderr
    assert pushed.remote[:3] == [
        f"{ALIASES_PATH}: warning: postmaster@example.com does not exist: RFC 5321 requires it, "
        "and some senders check it [aliases.no-postmaster]",
        "    hint: add `postmaster: you@example.com` to the aliases file (or a catch-all)",
        f"main ({commit[:7]}): valid, 1 warning",
    ]
    assert tip(origin) == commit


def test_a_push_to_another_branch_is_not_checked(published, workdir, origin, host):
    install(origin.path, host)
    commit = workdir.commit({ALIASES_PATH: "a: b\nb: a\n"})
    pushed = push(workdir, "HEAD:refs/heads/feature")
    assert (pushed.code, pushed.remote) == (0, [])
    assert tip(origin, "feature") == commit
    assert tip(origin) == published


def test_deleting_the_watched_branch_is_refused(published, workdir, origin, host):
    install(origin.path, host)
    pushed = push(workdir, ":refs/heads/main")
    assert pushed.code == 1
    assert pushed.remote == [
        "gitops-mail: refusing to delete refs/heads/main: the mail server is applied from it",
        "    hint: push a commit that changes the configuration instead; to really delete the "
        "branch, remove the repo's pre-receive hook first",
    ]
    assert tip(origin) == published


def test_the_first_push_creates_the_branch_when_valid(workdir, origin, host):
    install(origin.path, host)
    workdir.commit({ALIASES_PATH: "a: b\nb: a\n", "gitops-mail.yaml": MANIFEST})
    assert push(workdir).code == 1
    assert origin.git("for-each-ref") == ""
    commit = workdir.commit(VALID)
    pushed = push(workdir)
    assert pushed.code == 0, pushed.stderr
    assert pushed.remote[0] == f"main ({commit[:7]}): valid"


@pytest.mark.parametrize(
    "refspecs",
    [
        ("HEAD:refs/heads/aaa", "HEAD:refs/heads/main"),
        ("HEAD:refs/heads/main", "HEAD:refs/heads/zzz"),
        ("HEAD:refs/heads/aaa", "HEAD:refs/heads/main", "HEAD:refs/heads/zzz"),
    ],
    ids=["main-last", "main-first", "main-between"],
)
@pytest.mark.parametrize("existing", [False, True], ids=["new-branches", "existing-branches"])
def test_a_bad_main_is_rejected_whatever_else_the_push_updates(  # noqa: PLR0917 - fixtures
    published, workdir, origin, host, refspecs, existing
):
    # git lists updates of existing refs in ref order, creations after them: both cases.
    if existing:
        push(workdir, "HEAD:refs/heads/aaa", "HEAD:refs/heads/zzz")
    install(origin.path, host)
    commit = workdir.commit({ALIASES_PATH: ALIASES + "a: b\nb: a\n"}, "loop")
    pushed = push(workdir, *refspecs)
    assert pushed.code == 1
    assert pushed.remote == [*LOOP, f"main ({commit[:7]}): invalid: 1 error, 0 warnings", REJECTED]
    assert tip(origin) == published
    others = {"refs/heads/aaa", "refs/heads/zzz"} if existing else set()
    assert set(origin.git("for-each-ref", "--format=%(refname)").split()) == {
        "refs/heads/main",
        *others,
    }
    assert {tip(origin, ref) for ref in others} <= {published}


def test_a_branch_deleted_in_the_same_push_as_a_bad_main_stays(published, workdir, origin, host):
    push(workdir, "HEAD:refs/heads/old")
    install(origin.path, host)
    commit = workdir.commit({ALIASES_PATH: ALIASES + "a: b\nb: a\n"}, "loop")
    pushed = push(workdir, ":refs/heads/old", "HEAD:refs/heads/main")
    assert pushed.code == 1
    assert pushed.remote[-2:] == [f"main ({commit[:7]}): invalid: 1 error, 0 warnings", REJECTED]
    assert (tip(origin), tip(origin, "old")) == (published, published)


def test_a_good_main_with_a_deletion_and_another_branch_goes_through(
    published, workdir, origin, host
):
    push(workdir, "HEAD:refs/heads/old")
    install(origin.path, host)
    commit = workdir.commit({ALIASES_PATH: ALIASES + "info: owner@gmail.com\n"})
    pushed = push(workdir, "HEAD:refs/heads/aaa", ":refs/heads/old", "HEAD:refs/heads/main")
    assert pushed.code == 0, pushed.stderr
    assert pushed.remote[0] == f"main ({commit[:7]}): valid"
    assert (tip(origin), tip(origin, "aaa")) == (commit, commit)
    assert "refs/heads/old" not in origin.git("for-each-ref", "--format=%(refname)")


def test_the_hooks_work_with_an_almost_empty_environment(published, workdir, origin, host):
    """As from an SSH session: no virtualenv, no GITOPS_MAIL_CONFIG, no HOME."""
    install(origin.path, host)
    bad = workdir.commit({ALIASES_PATH: ALIASES + "a: b\nb: a\n"})
    pushed = push(workdir, env={"PATH": "/usr/bin:/bin"})
    assert pushed.code == 1
    assert pushed.remote == [*LOOP, f"main ({bad[:7]}): invalid: 1 error, 0 warnings", REJECTED]
    good = workdir.commit({ALIASES_PATH: ALIASES})
    pushed = push(workdir, env={})
    assert pushed.code == 0, pushed.stderr
    assert pushed.remote[0] == f"main ({good[:7]}): valid"
    assert tip(origin) == good


# --- post-receive in a real push ---------------------------------------------------------


def test_post_receive_prints_the_daemons_result(published, workdir, origin, host):
    install(origin.path, host, timeout=10)
    commit = workdir.commit({ALIASES_PATH: ALIASES + "info: owner@gmail.com\n"})
    daemon = FakeDaemon(
        origin,
        host.store,
        Attempt(commit, stamp(), "applied", summary="1 alias added", action="restart"),
    )
    daemon.start()
    pushed = push(workdir)
    daemon.join()
    assert daemon.recorded.is_set()
    assert pushed.code == 0, pushed.stderr
    assert pushed.remote == [
        f"main ({commit[:7]}): valid",
        waiting(commit, "10"),
        f"applied {commit[:7]}: restarted chasquid, probes ok (1 alias added)",
    ]


def test_post_receive_gives_up_after_its_timeout(published, workdir, origin, host):
    install(origin.path, host, timeout=1)
    commit = workdir.commit({ALIASES_PATH: ALIASES + "info: owner@gmail.com\n"})
    started = time.monotonic()
    pushed = push(workdir)
    assert time.monotonic() - started >= 1  # a lower bound: no machine is too fast for it
    assert pushed.code == 0, pushed.stderr
    assert pushed.remote[1:] == [
        waiting(commit, "1"),
        "no result within 1 s; see gitops-mail status",
    ]
    assert tip(origin) == commit


# --- the hook commands, run in-process ---------------------------------------------------


def test_pre_receive_ignores_other_refs(monkeypatch, capsys, published, origin, host):
    lines = f"{ZERO} {published} refs/heads/feature\n{ZERO} {published} refs/tags/v1\n"
    assert run_hook(monkeypatch, "pre-receive", host, origin.path, lines) == 0
    assert capsys.readouterr().out == ""


def test_pre_receive_rejects_input_it_cannot_read(monkeypatch, capsys, origin, host):
    assert run_hook(monkeypatch, "pre-receive", host, origin.path, "main\n") == 1
    assert capsys.readouterr().out == (
        "gitops-mail: error: standard input line 1 is not `<old-id> <new-id> <ref>`: 'main'\n"
        "    hint: this command is run by git as a receive hook; install it with "
        "`gitops-mail hooks install REPO`\n"
        "gitops-mail: push rejected: the pushed commit could not be checked\n"
    )


def test_pre_receive_fails_closed_without_host_settings(monkeypatch, capsys, published, origin):
    missing = Host(origin.path.parent / "gone.yaml", origin.path.parent / "state")
    line = f"{published} {published} refs/heads/main\n"
    assert run_hook(monkeypatch, "pre-receive", missing, origin.path, line) == 1
    assert capsys.readouterr().out == (
        f"gitops-mail: error: cannot read the host settings {missing.settings}: "
        "No such file or directory\n"
        f"    hint: {NO_SETTINGS_HINT}\n"
        "gitops-mail: push rejected: the pushed commit could not be checked\n"
    )


def test_post_receive_finds_a_result_recorded_before_it_started(
    monkeypatch, capsys, published, origin, host
):
    host.store.record(Attempt(published, stamp(), "unchanged", summary="no change"))
    line = f"{ZERO} {published} refs/heads/main\n"
    assert run_hook(monkeypatch, "post-receive", host, origin.path, line) == 0
    assert capsys.readouterr().out == (
        f"{waiting(published, '1')}\nunchanged {published[:7]}: already live, nothing to do\n"
    )


def test_post_receive_prints_a_failure_and_the_restore(
    monkeypatch, capsys, published, origin, host
):
    reason = (
        "probe failed: RCPT TO:<info@example.com> got 550; the server was restored to its "
        "previous configuration and passes its probes"
    )
    host.store.record(Attempt(published, stamp(), "failed", reason=reason, phases_ms={"swap": 1}))
    line = f"{ZERO} {published} refs/heads/main\n"
    assert run_hook(monkeypatch, "post-receive", host, origin.path, line) == 0  # never fails
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"failed {published[:7]}: {reason}",
        f"see `gitops-mail history --revision {published[:7]}` on the host for the details",
    ]


def test_post_receive_ignores_an_old_attempt_at_the_same_revision(
    monkeypatch, capsys, published, origin, host
):
    host.store.record(Attempt(published, "2020-01-01T00:00:00+00:00", "applied"))
    line = f"{ZERO} {published} refs/heads/main\n"
    assert run_hook(monkeypatch, "post-receive", host, origin.path, line, timeout=0.1) == 0
    assert capsys.readouterr().out.endswith("no result within 0.1 s; see gitops-mail status\n")


def test_post_receive_reports_a_later_push_that_superseded_it(  # noqa: PLR0917 - pytest fixtures
    monkeypatch, capsys, published, workdir, origin, host
):
    later = workdir.commit({ALIASES_PATH: ALIASES + "info: owner@gmail.com\n"})
    workdir.push()
    host.store.record(Attempt(later, stamp(), "applied", summary="1 alias added", action="reload"))
    line = f"{ZERO} {published} refs/heads/main\n"
    assert run_hook(monkeypatch, "post-receive", host, origin.path, line) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        f"superseded by a later push: applied {later[:7]}: picked up by chasquid's periodic "
        "reload, probes ok (1 alias added)"
    )


def test_post_receive_sees_a_later_push_whose_result_came_first(  # noqa: PLR0917 - fixtures
    monkeypatch, capsys, published, workdir, origin, host
):
    """state.json does not change when the branch moves to a revision already recorded:
    the hook must look again anyway, not only when the file is replaced."""
    later = workdir.commit({ALIASES_PATH: ALIASES + "info: owner@gmail.com\n"})
    host.store.record(Attempt(later, stamp(), "applied", summary="1 alias added", action="reload"))
    recorded = (host.state_dir / "state.json").read_bytes()

    def move_the_branch_once_waiting() -> None:
        poll(lambda: "waiting up to" in capsys.readouterr().out, what="the hook to wait")
        workdir.push()

    mover = threading.Thread(target=move_the_branch_once_waiting)
    mover.start()
    line = f"{ZERO} {published} refs/heads/main\n"
    code = run_hook(monkeypatch, "post-receive", host, origin.path, line, timeout=30)
    mover.join()
    assert code == 0
    assert tip(origin) == later
    assert (host.state_dir / "state.json").read_bytes() == recorded
    assert capsys.readouterr().out == (
        f"superseded by a later push: applied {later[:7]}: picked up by chasquid's periodic "
        "reload, probes ok (1 alias added)\n"
    )


def test_the_post_receive_hook_imports_neither_git_nor_the_checks(published, origin, host):
    """It starts while the daemon applies: the less it imports, the sooner it can answer."""
    probe = (
        "import sys\n"
        "from gitops_mail.cli import hooks\n"
        "code = hooks.main(sys.argv[1:])\n"
        "heavy = ('gitops_mail.git.read', 'gitops_mail.core.checks', 'gitops_mail.core.state',"
        " 'subprocess')\n"
        "print(code, [name for name in heavy if name in sys.modules])\n"
    )
    host.store.record(Attempt(published, stamp(), "unchanged", summary="no change"))
    done = subprocess.run(
        [sys.executable, "-c", probe, "post-receive", "--config", str(host.settings)],
        cwd=origin.path,
        input=f"{ZERO} {published} refs/heads/main\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines() == [
        waiting(published, "15"),
        f"unchanged {published[:7]}: already live, nothing to do",
        "0 []",
    ]


def test_pre_receive_rejects_a_pushed_id_git_cannot_read(
    monkeypatch, capsys, published, origin, host
):
    missing = "1" * 40
    line = f"{published} {missing} refs/heads/main\n"
    assert run_hook(monkeypatch, "pre-receive", host, origin.path, line) == 1
    assert capsys.readouterr().out == (
        f"gitops-mail: error: no revision '{missing}' in {origin.path}\n"
        "    hint: check the name with `git log --oneline`, or `git fetch` first if it is remote\n"
        "gitops-mail: push rejected: the pushed commit could not be checked\n"
    )


def test_post_receive_never_fails_the_push(monkeypatch, capsys, published, origin, host):
    host.state_dir.write_text("not a directory")
    line = f"{ZERO} {published} refs/heads/main\n"
    assert run_hook(monkeypatch, "post-receive", host, origin.path, line) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"gitops-mail: error: cannot read {host.state_dir}/state.json: Not a directory",
        "    hint: check state_dir in the host settings: it must be a directory this user can "
        "write",
        "see gitops-mail status",
    ]


def test_post_receive_says_nothing_about_other_refs(monkeypatch, capsys, published, origin, host):
    lines = f"{published} {ZERO} refs/heads/main\n{ZERO} {published} refs/heads/x\n"
    assert run_hook(monkeypatch, "post-receive", host, origin.path, lines) == 0
    assert capsys.readouterr().out == ""


# --- install -----------------------------------------------------------------------------


def test_install_records_the_interpreter_and_the_settings(capsys, origin, host):
    assert install(origin.path, host, timeout=15) == 0
    assert capsys.readouterr().out == (
        f"installed pre-receive and post-receive in {origin.path / 'hooks'}: pushes to main are "
        f"validated, then wait up to 15 s for the daemon's result (host settings: "
        f"{host.settings})\n"
        f"the hooks read the daemon's results in {host.state_dir}: group root (the repo's) "
        "may open state.json and daemon.json there, nothing else\n"
    )
    post = origin.path / "hooks" / "post-receive"
    assert post.stat().st_mode & 0o777 == 0o755
    assert post.read_text().splitlines()[-1] == (
        f"exec {sys.executable} -m gitops_mail.cli.hooks post-receive "
        f"--config {host.settings} --timeout 15"
    )
    pre = (origin.path / "hooks" / "pre-receive").read_text()
    assert pre.splitlines()[-1].endswith(f"pre-receive --config {host.settings}")


def test_install_takes_the_settings_from_the_environment(monkeypatch, tmp_path, origin, host):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", str(host.settings.relative_to(tmp_path)))
    args = argparse.Namespace(
        command="hooks",
        action="install",
        repo=str(origin.path),
        config=None,
        timeout=15.0,
        force=False,
    )
    assert hooks.run(args) == 0
    script = (origin.path / "hooks" / "pre-receive").read_text()
    assert f"--config {host.settings}\n" in script  # made absolute


def test_install_refuses_to_replace_a_foreign_hook(capsys, origin, host):
    foreign = origin.path / "hooks" / "pre-receive"
    foreign.write_text("#!/bin/sh\nexec /usr/local/bin/notify\n")
    with pytest.raises(UsageError) as refused:
        install(origin.path, host)
    assert refused.value.message == (
        f"refusing to replace hooks gitops-mail did not install: {foreign}"
    )
    assert refused.value.hint == (
        "move them away, or pass --force to replace them (each is kept as NAME.before-gitops-mail)"
    )
    assert foreign.read_text() == "#!/bin/sh\nexec /usr/local/bin/notify\n"
    assert not (origin.path / "hooks" / "post-receive").exists()


def test_install_force_keeps_a_backup(capsys, origin, host):
    foreign = origin.path / "hooks" / "post-receive"
    foreign.write_text("#!/bin/sh\nexec /usr/local/bin/notify\n")
    (origin.path / "hooks" / "post-receive.before-gitops-mail").write_text("older\n")
    assert install(origin.path, host, force=True) == 0
    backup = origin.path / "hooks" / "post-receive.before-gitops-mail.1"
    assert capsys.readouterr().out.splitlines()[0] == f"kept the old post-receive hook as {backup}"
    assert backup.read_text() == "#!/bin/sh\nexec /usr/local/bin/notify\n"
    assert pushhooks.is_ours(foreign.read_bytes())


def test_installing_again_replaces_its_own_hooks(capsys, origin, host):
    install(origin.path, host, timeout=15)
    install(origin.path, host, timeout=3)
    hooks_dir = origin.path / "hooks"
    assert "--timeout 3\n" in (hooks_dir / "post-receive").read_text()
    assert not list(hooks_dir.glob("*.before-gitops-mail*"))


def test_install_into_a_checkout(tmp_path, make_repo):
    repo = make_repo(tmp_path / "checkout", VALID)
    settings = tmp_path / "host.yaml"
    settings.write_text(f"repo: {repo}\n")
    assert install(repo / "chasquid", Host(settings, tmp_path / "state")) == 0
    assert pushhooks.is_ours((repo / ".git" / "hooks" / "pre-receive").read_bytes())


def test_install_refuses_a_repo_the_settings_do_not_watch(tmp_path, make_repo, origin, host):
    other = make_repo(tmp_path / "other", VALID, bare=True)
    with pytest.raises(UsageError) as refused:
        install(other, host)
    assert (refused.value.message, refused.value.hint) == (
        f"{other} is not the repository the host settings watch ({origin.path})",
        f"install the hooks into {origin.path}, or fix repo: in {host.settings}",
    )
    assert not (other / "hooks" / "pre-receive").exists()


def test_install_needs_a_positive_timeout(origin, host):
    with pytest.raises(UsageError) as refused:
        install(origin.path, host, timeout=0)
    assert refused.value.message == "--timeout must be more than 0 seconds, not 0"


def test_install_needs_readable_settings(tmp_path, origin):
    with pytest.raises(GitopsMailError) as refused:
        install(origin.path, Host(tmp_path / "nope.yaml", tmp_path))
    assert refused.value.message == (
        f"cannot read the host settings {tmp_path / 'nope.yaml'}: No such file or directory"
    )


# --- the pure part -----------------------------------------------------------------------


def test_parse_updates_takes_sha1_and_sha256_ids():
    a, b = "a" * 64, "0" * 64
    assert pushhooks.parse_updates(f"{a} {b} refs/heads/main\n\n") == [
        pushhooks.RefUpdate(a, b, "refs/heads/main")
    ]
    update = pushhooks.RefUpdate(ZERO, "1" * 40, "refs/heads/x")
    assert (update.is_creation, update.is_deletion) == (True, False)


def test_branch_ref_accepts_short_and_full_names():
    assert pushhooks.branch_ref("main") == "refs/heads/main"
    assert pushhooks.branch_ref("refs/heads/prod") == "refs/heads/prod"


def test_since_leaves_room_for_whole_seconds():
    start = datetime(2026, 1, 1, 12, 0, 5, 900000, tzinfo=UTC)
    assert pushhooks.since(start) == datetime(2026, 1, 1, 12, 0, 3, tzinfo=UTC)
    record = Record(history=(Attempt("b" * 40, "garbage", "applied"),))
    assert pushhooks.later_attempt(record, "a" * 40, pushhooks.since(start)) is None


@pytest.mark.parametrize(
    ("attempt", "text"),
    [
        (
            Attempt("a" * 40, "", "applied", summary="no change", action="none"),
            "applied aaaaaaa: no restart needed, probes ok\n",
        ),
        (
            Attempt("a" * 40, "", "invalid", reason="the certificate mail.example.com is missing"),
            "invalid aaaaaaa: the certificate mail.example.com is missing\n"
            "the live server was not touched: it keeps its previous configuration\n"
            "see `gitops-mail history --revision aaaaaaa` on the host for the details\n",
        ),
        (
            Attempt("a" * 40, "", "error", reason="restarting chasquid failed"),
            "error aaaaaaa: restarting chasquid failed\n"
            "the daemon tries again with back-off; `gitops-mail status` says when\n"
            "see `gitops-mail history --revision aaaaaaa` on the host for the details\n",
        ),
        (
            Attempt("a" * 40, "", "interrupted", reason="restored after a crash"),
            "interrupted aaaaaaa: restored after a crash\n"
            "see `gitops-mail history --revision aaaaaaa` on the host for the details\n",
        ),
    ],
)
def test_result_text(attempt, text):
    assert pushhooks.result_text(attempt) == text


def test_result_text_names_a_renewal_and_the_action_as_apply_did():
    renewed = (
        "certificate mail.wac.tax renewed: SHA256 ab12ab12… → cd34cd34…, expires 2027-03-01 "
        "(was 2026-12-20)"
    )
    attempt = Attempt("a" * 40, "", "applied", summary=renewed, action="restart")
    assert pushhooks.result_text(attempt) == (
        f"applied aaaaaaa: restarted chasquid, probes ok ({renewed})\n"
    )


def test_result_text_cuts_a_long_reason_and_says_where_the_rest_is():
    reason = "probe failed: " + "submission.connect: no answer; " * 20 + "the end"
    text = pushhooks.result_text(Attempt("a" * 40, "", "failed", reason=reason))
    first = text.splitlines()[0]
    assert first.startswith("failed aaaaaaa: probe failed: submission.connect: no answer;")
    assert first.endswith("… (all of it: gitops-mail history --revision aaaaaaa)")
    assert len(first) < 400 and "the end" not in first
