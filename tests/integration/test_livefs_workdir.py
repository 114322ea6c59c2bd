"""livefs's work dir lives inside the config dir, and is never part of the live tree.

Inside, a rename from staging or a checkpoint to a live file never crosses a
mount, so the service can be allowed to write the config dir alone. chasquid
never reads ``.gitops-mail/``; livefs never reports it as drift or foreign,
never stages it, never lets a desired file land in it, and leaves nothing in it
after a swap but the empty ``checkpoint/``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.livetree import apply, tree_state, users
from support.repo import ALIASES, CONF, repo_files

from gitops_mail.apply.store import Attempt, StateStore
from gitops_mail.cli import main as cli
from gitops_mail.core.tree import FileSpec
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.livefs import scan as livescan
from gitops_mail.host.livefs.configdir import FAULT_ENV, LiveDir
from gitops_mail.host.livefs.scan import WORK_DIR, Drift

OLD = {
    "chasquid.conf": FileSpec(b'hostname: "mail.example.com"\n'),
    "domains/example.com/users": users(b"#chasquid-userdb-v1\n"),
}
NEW = {
    "chasquid.conf": FileSpec(b'hostname: "mx.example.com"\n'),
    "domains/example.com/users": users(b"#chasquid-userdb-v1\nana\n"),
    "domains/example.org/aliases": users(b"a: b\n"),
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "chasquid"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def live(tmp_path: Path, config: Path) -> LiveDir:
    return LiveDir(config, tmp_path / "state")


def work_entries(live: LiveDir) -> list[str]:
    return sorted(p.relative_to(live.work_dir).as_posix() for p in live.work_dir.rglob("*"))


def test_the_work_dir_is_inside_the_config_dir(live: LiveDir, config: Path, tmp_path: Path):
    staged = live.stage(OLD)

    assert live.work_dir == config / WORK_DIR == config / ".gitops-mail"
    assert staged.path == live.staging_dir == config / ".gitops-mail" / "staging"
    assert live.journal_path.parent == live.work_dir
    assert os.stat(staged.path).st_dev == os.stat(config).st_dev
    assert (
        live.work_dir.stat().st_mode & 0o777
    ) == 0o711  # chasquid (the pre-flight) may pass through, not list it
    live.cleanup(live.swap(staged))
    live.discard(staged)
    assert sorted(os.listdir(config.parent)) == ["chasquid"]  # nothing beside it any more
    assert sorted(os.listdir(tmp_path)) == ["etc", "state"]


def test_the_work_dir_is_neither_drift_nor_foreign_nor_staged(live: LiveDir, config: Path):
    (config / "chasquid.conf").write_bytes(b"# Debian's, taken over by OLD\n")
    apply(live, OLD)  # leaves checkpoint/ and the adopted original in the work dir
    (live.work_dir / "stray").write_bytes(b"whatever a crash left\n")
    assert work_entries(live)  # the work dir is not empty...

    assert live.drift() == Drift(modified=(), missing=(), foreign=())  # ...and not drift
    assert live.changes(OLD) == ()
    assert not [p for p in livescan.scan(config).files if p.startswith(WORK_DIR)]
    assert not [p for p in livescan.scan(config).dirs if p.startswith(WORK_DIR)]
    staged = live.stage(NEW)
    assert WORK_DIR not in os.listdir(staged.path)
    assert [c.path for c in staged.changes] == [
        "chasquid.conf",
        "domains/example.com/users",
        "domains/example.org/aliases",
    ]
    live.discard(staged)


def test_the_work_dir_is_cleaned_after_a_swap_and_after_a_restore(live: LiveDir, config: Path):
    apply(live, OLD)
    assert work_entries(live) == ["checkpoint"]

    staged = live.stage(NEW)
    checkpoint = live.swap(staged)
    live.discard(staged)
    assert work_entries(live) == ["checkpoint", *checkpoint_files(live, checkpoint.id)]
    live.restore(checkpoint)
    live.cleanup(checkpoint)

    assert work_entries(live) == ["checkpoint"]
    assert WORK_DIR not in tree_state(config) and WORK_DIR in tree_state(config, work_dir=True)
    assert (config / "chasquid.conf").read_bytes() == OLD["chasquid.conf"].data


def checkpoint_files(live: LiveDir, checkpoint_id: str) -> list[str]:
    root = live.work_dir / "checkpoint" / checkpoint_id
    return sorted(p.relative_to(live.work_dir).as_posix() for p in [root, *root.rglob("*")])


@pytest.mark.parametrize("path", [".gitops-mail/journal.json", ".gitops-mail/staging/x"])
def test_a_desired_file_in_the_work_dir_is_refused(live: LiveDir, config: Path, path: str):
    with pytest.raises(GitopsMailError) as raised:
        live.stage({**OLD, path: FileSpec(b'{"checkpoint": "../../../"}')})

    assert raised.value.message == (
        f"refusing to install {path!r}: .gitops-mail/ is gitops-mail's own work dir"
    )
    assert raised.value.hint == (
        "chasquid never reads it; install the file elsewhere in the config dir"
    )
    assert os.listdir(config) == []


CHILD = """
import json, sys
from pathlib import Path
from gitops_mail.core.tree import FileSpec
from gitops_mail.host.livefs.configdir import LiveDir
config, state, work, spec = sys.argv[1:]
tree = {p: FileSpec(d.encode(), m, o, g) for p, (d, m, o, g) in json.loads(spec).items()}
live = LiveDir(Path(config), Path(state), Path(work))
live.swap(live.stage(tree))
"""


def test_a_swap_cut_short_by_an_older_version_beside_the_config_dir_is_rolled_back(
    live: LiveDir, config: Path
) -> None:
    """Before this version the work dir was ``<parent>/.<name>.gitops-mail``: a journal left
    there by a crash is still rolled back, and the next swap uses the new place."""
    beside = config.parent / ".chasquid.gitops-mail"
    old = LiveDir(config, live.state_dir, beside)
    apply(old, OLD)
    before, inventory = tree_state(config), live.inventory()
    spec = {p: (s.data.decode(), s.mode, s.owner, s.group) for p, s in NEW.items()}
    argv = [sys.executable, "-c", CHILD, str(config), str(live.state_dir), str(beside)]
    done = subprocess.run(
        [*argv, json.dumps(spec)], env={**os.environ, FAULT_ENV: "mid-replace"}, check=False
    )
    assert done.returncode == -signal.SIGKILL
    assert (beside / "journal.json").exists()

    said = live.recover()

    assert said == (
        f"an interrupted swap in {config} was rolled back: 3 files are as they were before it"
    )
    assert tree_state(config) == before
    assert live.inventory() == inventory
    assert not (beside / "journal.json").exists()
    assert live.recover() is None
    apply(live, NEW)
    assert (config / "chasquid.conf").read_bytes() == NEW["chasquid.conf"].data
    assert live.drift().clean


# --- the commands that read the config dir as a tree ------------------------------------


def leftovers_in(config: Path) -> None:
    """A work dir as an interrupted apply leaves it: staging, a checkpoint, an original."""
    for path in (
        ".gitops-mail/staging/domains/evil.example/aliases",
        ".gitops-mail/checkpoint/1/files/0",
        ".gitops-mail/adopted/1/chasquid.conf",
    ):
        (config / path).parent.mkdir(parents=True, exist_ok=True)
        (config / path).write_text("x: y\n")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def test_plan_live_leaves_the_work_dir_out(capsys, tmp_path, origin, workdir, config) -> None:
    revision = workdir.commit(repo_files(), "first")
    workdir.push()
    (config / "domains" / "example.com").mkdir(parents=True)
    (config / "chasquid.conf").write_text(CONF)
    (config / "domains" / "example.com" / "aliases").write_text(ALIASES)
    leftovers_in(config)
    settings = tmp_path / "host.yaml"
    settings.write_text(
        f"repo: {origin.path}\nstate_dir: {tmp_path / 'state'}\nchasquid:\n  config_dir: {config}\n"
    )
    attempt = Attempt(revision, "2026-12-01T00:00:00+00:00", "applied", summary="x")
    StateStore(tmp_path / "state").record(attempt, applied=revision)

    code, said = run_cli(capsys, "--config", str(settings), "plan", "--live")

    assert (code, said) == (
        0,
        f"Plan: live {config} -> {revision[:7]}\n  no changes\nchasquid: nothing to do\n",
    )


def test_import_leaves_the_work_dir_out(capsys, tmp_path, config) -> None:
    (config / "domains" / "example.com").mkdir(parents=True)
    (config / "chasquid.conf").write_text(CONF)
    (config / "domains" / "example.com" / "aliases").write_text(ALIASES)
    leftovers_in(config)

    code, said = run_cli(capsys, "import", str(config), str(tmp_path / "conf"))

    assert code == 0, said
    assert WORK_DIR not in said
    files = subprocess.run(
        ["git", "-C", str(tmp_path / "conf"), "ls-files"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not [f for f in files if WORK_DIR in f]
