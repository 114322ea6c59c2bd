"""Reading a revision (or a working tree) measures before it reads: sizes against the limits.

Real git repos; large and strange trees are made with git's own plumbing
(``hash-object``, ``mktree``, ``commit-tree``), so they cost kilobytes to
make however many paths they stand for. That a refused file is never read
is shown on a process that reads a 256 MiB blob: its peak memory stays far
below the blob's size.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitops_mail.core.policy import Limits
from gitops_mail.core.snapshot import Entry
from gitops_mail.errors import InvalidConfig
from gitops_mail.git import read as gitread
from gitops_mail.host import localfs
from gitops_mail.host import settings as hostsettings

SMALL = Limits(file_bytes=1000, revision_bytes=2500, revision_files=50)
FILE_HINT = (
    "    hint: make it smaller or remove it in a new commit; a host raises the limit in its "
    "settings"
)
TOTAL_HINT = (
    "    hint: remove or shrink files in a new commit; a host raises the limit in its settings"
)


def refusal_lines(exc: pytest.ExceptionInfo[InvalidConfig]) -> list[str]:
    return exc.value.message.splitlines()


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=repo, input=input, capture_output=True, check=True)
    return done.stdout.decode().strip()


def blob(repo: Path, data: bytes) -> str:
    return git(repo, "hash-object", "-w", "--stdin", input=data)


def tree(repo: Path, entries: list[tuple[str, str, str]]) -> str:
    """A tree of ``(mode, id, name)`` entries (mode 040000 for trees)."""
    lines = "".join(
        f"{mode} {'tree' if mode == '040000' else 'blob'} {oid}\t{name}\n"
        for mode, oid, name in entries
    )
    return git(repo, "mktree", input=lines.encode())


def commit(repo: Path, tree_id: str, message: str = "made") -> str:
    return git(repo, "commit-tree", tree_id, "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    return path


def test_files_over_the_limit_are_named_with_their_size_and_the_setting(workdir):
    workdir.commit({"big.bin": b"x" * 1001, "fits.txt": b"y" * 1000, "dir/also": b"z" * 2000})
    with pytest.raises(InvalidConfig) as refused:
        gitread.read_revision(workdir.path, limits=SMALL)
    head = workdir.git("rev-parse", "--short=7", "HEAD").strip()
    assert refusal_lines(refused) == [
        f"revision HEAD ({head}) is too large to check; none of its files was read:",
        "big.bin: error: 1,001 bytes, over the limit of 1,000 bytes for one file (limits.file_bytes)",  # noqa: E501
        FILE_HINT,
        "dir/also: error: 2,000 bytes, over the limit of 1,000 bytes for one file (limits.file_bytes)",  # noqa: E501
        FILE_HINT,
    ]


def test_files_over_the_total_are_refused_naming_the_largest(workdir):
    workdir.commit({f"f{i}": bytes([65 + i]) * (600 + i) for i in range(5)})  # 3,010 bytes
    with pytest.raises(InvalidConfig) as refused:
        gitread.read_revision(workdir.path, "main", limits=SMALL)
    assert refusal_lines(refused)[1:] == [
        "f4: error: the files add up to 3,010 bytes, over the limit of 2,500 bytes for a revision "
        "(limits.revision_bytes); the largest: f4 (604 bytes), f3 (603 bytes), f2 (602 bytes)",
        TOTAL_HINT,
    ]


def test_a_file_under_many_names_counts_under_each(repo):
    one = blob(repo, b"a" * 900)
    top = tree(repo, [("100644", one, f"copy{i}") for i in range(3)])
    with pytest.raises(InvalidConfig) as refused:
        gitread.read_revision(repo, commit(repo, top), limits=SMALL)
    assert "the files add up to 2,700 bytes" in refusal_lines(refused)[1]


def test_limits_at_their_values_are_read(workdir):
    files = {"a": b"a" * 1000, "b": b"b" * 1000, "c": b"c" * 500}
    workdir.commit(files)
    snapshot = gitread.read_revision(workdir.path, limits=SMALL)
    assert snapshot.files == {name: Entry(data) for name, data in files.items()}


def test_trees_of_trees_are_counted_path_by_path_without_listing_them(repo):
    """Seven small trees that stand for ten million paths: refused at the level that passes."""
    level = tree(repo, [("100644", blob(repo, b""), f"f{i}") for i in range(10)])
    for _ in range(6):
        level = tree(repo, [("040000", level, f"d{i}") for i in range(10)])
    with pytest.raises(InvalidConfig) as refused:
        gitread.read_revision(repo, commit(repo, level))
    assert refusal_lines(refused)[1:] == [
        "d0/d0/d0/d0/: error: more than 20,000 files and directories, counting each path, over the "
        "limit for a revision (limits.revision_files)",
        "    hint: remove files in a new commit; a host raises the limit in its settings",
    ]


def test_a_path_no_filesystem_could_hold_is_refused(repo):
    level = tree(repo, [("100644", blob(repo, b"deep\n"), "file")])
    for _ in range(700):
        level = tree(repo, [("040000", level, "dir456")])  # 7 bytes a level: 4,900 bytes
    with pytest.raises(InvalidConfig) as refused:
        gitread.read_revision(repo, commit(repo, level))
    problem = refusal_lines(refused)[1]
    assert problem.startswith("dir456/dir456/")
    assert problem.endswith("...: error: a path longer than 4,096 bytes starts here")


def test_a_commit_or_a_tree_object_over_the_file_limit_is_not_read(repo):
    small = tree(repo, [("100644", blob(repo, b"x"), "x")])
    long_message = commit(repo, small, "m" * 2000)
    with pytest.raises(InvalidConfig) as refused:
        gitread.read_revision(repo, long_message, limits=SMALL)
    assert refusal_lines(refused)[1].startswith(
        f"commit {long_message[:7]}: error: its commit object is 2,"
    )
    wide = tree(repo, [("100644", blob(repo, b"x"), f"name-{i:04}") for i in range(40)])
    top = tree(repo, [("040000", wide, "wide")])
    with pytest.raises(InvalidConfig) as refused:
        gitread.read_revision(repo, commit(repo, top), limits=Limits(file_bytes=1000))
    assert refusal_lines(refused)[1] == (
        "wide/: error: its directory's git tree object is 1,480 bytes, over the limit of 1,000 bytes "  # noqa: E501
        "for one file (limits.file_bytes)"
    )


def test_a_host_bounds_reads_that_are_given_no_limits(workdir):
    workdir.commit({"a": b"a" * 20})
    with gitread.bounded(Limits(file_bytes=10)), pytest.raises(InvalidConfig):
        gitread.read_revision(workdir.path)
    assert gitread.read_revision(workdir.path).files == {"a": Entry(b"a" * 20)}


def test_a_refused_read_leaves_the_next_read_whole(workdir):
    first = workdir.commit({"a": b"a" * 10, "b": b"b" * 10})
    second = workdir.commit({"big": b"c" * 2000})
    gitread.read_revision(workdir.path, first, limits=SMALL)
    with pytest.raises(InvalidConfig):
        gitread.read_revision(workdir.path, second, limits=SMALL)
    assert set(gitread.read_revision(workdir.path, second).files) == {"a", "b", "big"}


def test_a_256_mib_blob_is_refused_without_being_read(tmp_path, make_repo):
    """The blob is zeros (its object is 256 kB on disk); reading it would take 256 MiB."""
    repo = make_repo(tmp_path, {"gitops-mail.yaml": "version: 1\n"})
    (repo / "huge.bin").write_bytes(bytes(256 << 20))
    subprocess.run(["git", "add", "huge.bin"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "--quiet", "-m", "huge"], cwd=repo, check=True)
    (repo / "huge.bin").unlink()
    probe = (  # VmHWM: this process's peak; ru_maxrss would include pytest's, from the fork
        "import sys\n"
        "from pathlib import Path\n"
        "from gitops_mail.git import read\n"
        "from gitops_mail.errors import InvalidConfig\n"
        "try:\n"
        "    read.read_revision(Path(sys.argv[1]))\n"
        "except InvalidConfig as exc:\n"
        "    print(exc.message.splitlines()[1])\n"
        "status = Path('/proc/self/status').read_text().split('VmHWM:')[1]\n"
        "print(int(status.split()[0]) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(repo)], capture_output=True, text=True, check=True
    )
    message, peak_mb = done.stdout.splitlines()
    assert message == (
        "huge.bin: error: 268,435,456 bytes, over the limit of 10,485,760 bytes for one file "
        "(limits.file_bytes)"
    )
    assert int(peak_mb) < 64  # the interpreter and git.read: about 25 MB


# --- working trees ---------------------------------------------------------------------


def test_a_working_tree_is_measured_by_lstat_before_it_is_read(tmp_path):
    """A sparse file of 1 TiB: reading it would never end; its size refuses it at once."""
    root = tmp_path / "tree"
    (root / "dir").mkdir(parents=True)
    with (root / "huge.bin").open("wb") as sparse:
        sparse.truncate(1 << 40)
    (root / "dir" / "fits").write_bytes(b"y" * 1000)
    with pytest.raises(InvalidConfig) as refused:
        localfs.read_directory(root, limits=SMALL)
    assert refusal_lines(refused) == [
        f"working tree {root} is too large to check; none of its files was read:",
        "huge.bin: error: 1,099,511,627,776 bytes, over the limit of 1,000 bytes for one file "
        "(limits.file_bytes)",
        FILE_HINT,
    ]


def test_a_working_tree_with_too_many_paths_is_refused_during_the_walk(tmp_path):
    root = tmp_path / "tree"
    for i in range(60):
        (root / f"d{i:02}").mkdir(parents=True)
    with pytest.raises(InvalidConfig) as refused:
        localfs.read_directory(root, limits=SMALL)
    assert refusal_lines(refused)[1] == (
        ".: error: more than 50 files and directories, counting each path, over the limit for a "
        "revision (limits.revision_files)"
    )


def test_a_working_tree_total_is_bounded_and_defaults_apply(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(3):
        (root / f"f{i}").write_bytes(b"x" * 900)
    with pytest.raises(InvalidConfig) as refused:
        localfs.read_directory(root, prefix="chasquid", limits=SMALL)
    assert refusal_lines(refused)[1].startswith(
        "chasquid/f0: error: the files add up to 2,700 bytes, over the limit of 2,500 bytes"
    )
    assert len(localfs.read_directory(root).files) == 3


# --- host settings ---------------------------------------------------------------------


def test_host_settings_are_read_no_further_than_the_yaml_limit():
    """``/dev/zero`` never ends: the loader stops one byte past 1 MiB and says so."""
    with pytest.raises(InvalidConfig) as refused:
        hostsettings.load("/dev/zero")
    assert refused.value.message == (
        "the host settings are invalid:\n"
        "/dev/zero:1: error: the file is larger than 1,048,576 bytes, the limit for a YAML file; it "  # noqa: E501
        "passes the limit on this line\n"
        "    hint: a file like this one needs a few kB: remove what does not belong in it"
    )
