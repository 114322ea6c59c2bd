"""No push can exhaust the host: the installed hooks against large and deep pushes.

Each test is a push by the non-root pusher (``support.pusher``) to a bare
repo it owns, with the hooks of ``gitops-mail hooks install`` and host
settings that root keeps in a directory of its own. The pre-receive hook
runs under a wrapper that reports ``getrusage(RUSAGE_CHILDREN).ru_maxrss``
once the real hook has ended: the peak resident memory of the hook's own
process (git's children it waited for included), measured by the kernel;
never less than the wrapper's own (about 10 MB), which Linux carries over
into a child through fork and exec.

The bounds asserted:
- a push refused before its content is read keeps the hook at its own
  baseline (22 to 26 MB measured: Python, the YAML and git reading code):
  ``BASELINE_MB`` is about twice that, and below the size of what would be
  read otherwise (the 400 MB blob of issue 9 made the hook peak at 842 MB);
- a push that needs more memory than ``limits.hook_memory_mb`` is stopped
  there: its peak stays under the limit plus what ``RLIMIT_DATA`` does not
  count (the interpreter's code and shared libraries, about 30 MB).

Pushes are few and small on the wire: large files are zeros or one blob
under many names, so git compresses them to kilobytes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.pusher import Pusher
from support.repo import ALIASES_PATH, MANIFEST_PATH, repo_files

import gitops_mail
from gitops_mail.daemon import pushhooks

# The hooks run as the pusher, who cannot run this virtualenv's interpreter (pyenv keeps it
# under /root): they run Debian's, of the same minor version, with this checkout's packages.
PUBLIC_PYTHON = "/usr/bin/python3"
PYTHONPATH = f"{Path(gitops_mail.__file__).parents[1]}:{sysconfig.get_paths()['purelib']}"
MIB = 1 << 20
BASELINE_MB = 48
NOT_COUNTED_MB = 64  # code and shared libraries: resident, but outside RLIMIT_DATA
REJECTED = "gitops-mail: push rejected: fix the problems above and push again"
NOT_CHECKED = "gitops-mail: push rejected: the pushed commit could not be checked"
FILE_HINT = (
    "    hint: make it smaller or remove it in a new commit; a host raises the limit in its "
    "settings"
)
TREES_OF_TREES = """\
ten() { for i in 0 1 2 3 4 5 6 7 8 9; do printf "$1 %s\\t$2%s\\n" "$3" "$i"; done | git mktree; }
tree=$(ten '100644 blob' f "$(git hash-object -w --stdin </dev/null)")
for level in 1 2 3 4 5; do tree=$(ten '040000 tree' d "$tree"); done
top=$( (git ls-tree HEAD; printf '040000 tree %s\\tmany\\n' "$tree") | git mktree)
git update-ref HEAD "$(git commit-tree "$top" -p HEAD -m 'a million paths')"
"""
WRAPPER = """\
#!/usr/bin/python3
import resource, subprocess, sys
done = subprocess.run([{real!r}])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open({report!r}, "a") as report:
    report.write(f"{{done.returncode}} {{peak}}\\n")
sys.exit(done.returncode)
"""


@dataclass
class Pushed:
    revision: str
    accepted: bool
    remote: list[str]  # the hooks' lines, without git's "remote: " prefix and padding
    peak_mb: float  # the pre-receive hook's peak resident memory


@dataclass
class Server:
    """The pusher's bare repo with the hooks installed, and the root-owned host settings."""

    pusher: Pusher
    repo: Path
    work: Path
    settings: Path
    report: Path

    def push(self, files: dict[str, bytes | str | None]) -> Pushed:
        return self._pushed(self.pusher.commit(self.work, files))

    def push_made(self, script: str) -> Pushed:
        """Push the commit a shell ``script``, run by the pusher in the clone, made on HEAD."""
        self.pusher.run(["sh", "-ec", script], cwd=self.work)
        return self._pushed(self.pusher.git(self.work, "rev-parse", "HEAD").stdout.strip())

    def _pushed(self, revision: str) -> Pushed:
        push = ["git", "push", "origin", "HEAD:refs/heads/main"]
        done = self.pusher.run(push, cwd=self.work, env={"PYTHONPATH": PYTHONPATH}, check=False)
        self.pusher.git(self.work, "reset", "--quiet", "--hard", "origin/main")
        remote = [
            line.removeprefix("remote: ").rstrip()
            for line in done.stderr.splitlines()
            if line.startswith("remote: ")
        ]
        code, peak_kb = self.report.read_text().splitlines()[-1].split()
        tip = self.pusher.git(self.repo, "rev-parse", "main").stdout.strip()
        assert (tip == revision) == (done.returncode == 0) == (code == "0"), done.stderr
        return Pushed(revision, done.returncode == 0, remote, int(peak_kb) / 1024)


def _same_python() -> bool:
    found = subprocess.run(
        [PUBLIC_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() == str(sys.version_info[:2])


pytestmark = pytest.mark.skipif(
    not Path(PUBLIC_PYTHON).exists() or not _same_python(),
    reason=f"the hooks run as the pusher with {PUBLIC_PYTHON}, of this Python's version",
)


@pytest.fixture
def serve(pusher: Pusher) -> Iterator[object]:
    """``serve(limits_yaml="", wait=0.01) -> Server``: a first valid commit pushed, then the
    hooks (post-receive waits ``wait`` seconds for a daemon's result; none comes)."""
    made: list[Path] = []

    def make(limits: str = "", wait: float = 0.01) -> Server:
        host = Path(tempfile.mkdtemp(prefix="gitops-host-", dir="/tmp"))
        made.append(host)
        host.chmod(0o755)  # root's; the hooks run as the pusher and read the settings
        repo = pusher.bare_repo()
        work = pusher.clone(repo)
        pusher.commit(work, repo_files(), "first")
        pusher.push(work)
        settings = host / "gitops-mail.yaml"
        settings.write_text(
            f"repo: {repo}\nbranch: main\nstate_dir: {host / 'state'}\n"
            + (f"limits: {{{limits}}}\n" if limits else "")
        )
        for name in pushhooks.HOOKS:  # what `hooks install` writes, with the public interpreter
            script = pushhooks.hook_script(name, PUBLIC_PYTHON, str(settings), wait)
            (repo / "hooks" / name).write_text(script)
            (repo / "hooks" / name).chmod(0o755)
        report = pusher.root / "pre-receive.report"
        _wrap(repo / "hooks" / "pre-receive", report)
        return Server(pusher, repo, work, settings, report)

    yield make
    for host in made:
        shutil.rmtree(host, ignore_errors=True)


def _wrap(hook: Path, report: Path) -> None:
    real = hook.with_name("pre-receive.real")
    hook.rename(real)
    hook.write_text(WRAPPER.format(real=str(real), report=str(report)))
    hook.chmod(0o755)


def refused(*lines: str) -> list[str]:
    """What pre-receive says when the pushed revision is over a size limit."""
    return [*lines, NOT_CHECKED]


def too_large(revision_line: str) -> bool:
    return revision_line.startswith("gitops-mail: error: revision ") and revision_line.endswith(
        " is too large to check; none of its files was read:"
    )


# --- sizes, judged before anything is read ---------------------------------------------


def test_a_file_just_over_the_limit_is_refused_unread_and_one_at_it_accepted(serve):
    server = serve()
    over = server.push({"notes/big.bin": bytes(10 * MIB + 1)})
    assert not over.accepted
    assert too_large(over.remote[0])
    assert over.remote[1:] == refused(
        "notes/big.bin: error: 10,485,761 bytes, over the limit of 10,485,760 bytes for one file "
        "(limits.file_bytes)",
        FILE_HINT,
    )
    assert over.peak_mb < BASELINE_MB

    at = server.push({"notes/big.bin": bytes(10 * MIB)})
    assert at.accepted
    assert at.remote[0].endswith(": valid")
    assert at.peak_mb < BASELINE_MB + 2 * 10  # the file, read once, and its copy in the state


def test_a_blob_larger_than_the_hooks_bound_is_refused_at_the_hooks_baseline(serve):
    """Issue 9 pushed 400 MB (the hook peaked at 842 MB and said "valid"); 128 MiB, more
    than the bound asserted, shows the same in a third of the time."""
    pushed = serve().push({"blob.bin": bytes(128 * MIB)})
    assert not pushed.accepted
    assert pushed.remote[1] == (
        "blob.bin: error: 134,217,728 bytes, over the limit of 10,485,760 bytes for one file "
        "(limits.file_bytes)"
    )
    assert pushed.peak_mb < BASELINE_MB


def test_files_over_the_revision_limit_in_all_are_refused(serve):
    files: dict[str, bytes | str | None] = {f"data/part{i}": bytes(9 * MIB + i) for i in range(6)}
    total = sum(len(str(text)) for text in repo_files().values()) + 6 * 9 * MIB + 15
    pushed = serve().push(files)
    assert not pushed.accepted
    assert pushed.remote[1] == (
        f"data/part5: error: the files add up to {total:,} bytes, over the limit of 52,428,800 bytes "  # noqa: E501
        "for a revision (limits.revision_bytes); the largest: data/part5 (9,437,189 bytes), "
        "data/part4 (9,437,188 bytes), data/part3 (9,437,187 bytes)"
    )
    assert pushed.peak_mb < BASELINE_MB


def test_a_host_limit_applies_to_the_hook(serve):
    pushed = serve("file_bytes: 1000").push({"notes.txt": "x" * 1001})
    assert not pushed.accepted
    assert pushed.remote[1] == (
        "notes.txt: error: 1,001 bytes, over the limit of 1,000 bytes for one file (limits.file_bytes)"  # noqa: E501
    )


# --- YAML ------------------------------------------------------------------------------


def manifest(extra: str) -> str:
    return str(repo_files()[MANIFEST_PATH]) + extra


def line_at(text: str, offset: int) -> int:
    """The line that holds byte ``offset`` of ``text``."""
    return text.encode().count(b"\n", 0, offset) + 1


def test_yaml_attacks_are_refused_where_they_start(serve):
    server = serve()
    laughs = "".join(
        f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 10) + "]\n" for i in range(9)
    )
    two_mb = manifest("x:\n" + "- a\n" * (MIB // 2))
    cases = {
        "deep": (
            manifest("x: " + "[" * 200 + "]" * 200 + "\n"),
            "gitops-mail.yaml:7: error: the document is nested more than 100 levels deep",
        ),
        "laughs": (
            manifest(laughs),
            "gitops-mail.yaml:11: error: the document is more than 100000 values after aliases",
        ),
        "2 MB list": (
            two_mb,
            f"gitops-mail.yaml:{line_at(two_mb, MIB)}: error: the file is larger than 1,048,576 "
            "bytes, the limit for a YAML file; it passes the limit on this line",
        ),
    }
    for name, (text, problem) in cases.items():
        pushed = server.push({MANIFEST_PATH: text})
        assert not pushed.accepted, name
        assert pushed.remote[0] == problem, name
        assert pushed.remote[-1] == REJECTED, name
        assert pushed.peak_mb < BASELINE_MB, name


def test_the_12_mb_yaml_list_of_the_issue_is_refused_from_its_size(serve):
    text = manifest("x:\n" + "- a\n" * (3 * MIB))
    pushed = serve().push({MANIFEST_PATH: text})
    assert not pushed.accepted
    assert pushed.remote[1] == (
        f"gitops-mail.yaml: error: {len(text):,} bytes, over the limit of 10,485,760 bytes for one file "  # noqa: E501
        "(limits.file_bytes)"
    )
    assert pushed.peak_mb < BASELINE_MB  # before: 1.8 GB and 16.5 s


def test_trees_of_trees_standing_for_millions_of_paths_are_refused(serve):
    """Seven small trees (ten of the one below in each) under ``many/``: a million paths."""
    pushed = serve().push_made(TREES_OF_TREES)
    assert not pushed.accepted
    assert pushed.remote[1] == (
        "many/d0/d0/d0/d0/: error: more than 20,000 files and directories, counting each path, over "  # noqa: E501
        "the limit for a revision (limits.revision_files)"
    )
    assert pushed.peak_mb < BASELINE_MB


# --- memory and time: the hook's own bounds ------------------------------------------


def huge_aliases() -> str:
    """283,000 aliases, just under 10 MiB: within every size limit, costly to check."""
    return "".join(f"user{i:07}: dest{i:07}@example.net\n" for i in range(283_000))


def test_a_push_that_needs_more_memory_than_the_limit_is_rejected(serve):
    pushed = serve("hook_memory_mb: 200").push({ALIASES_PATH: huge_aliases()})
    assert not pushed.accepted
    assert pushed.remote == [
        "gitops-mail: push rejected: checking the pushed commit needed more than 200 MB of "
        "memory, the limit of this host (limits.hook_memory_mb in its settings)",
        "    hint: push a smaller change; the host's administrator can raise the limit",
    ]
    assert pushed.peak_mb < 200 + NOT_COUNTED_MB


def test_a_push_that_takes_longer_than_the_limit_is_rejected(serve):
    pushed = serve("hook_seconds: 0.5").push({ALIASES_PATH: huge_aliases()})
    assert not pushed.accepted
    assert pushed.remote == [
        "gitops-mail: push rejected: checking the pushed commit took longer than 0.5 s, the "
        "limit of this host (limits.hook_seconds in its settings)",
        "    hint: push a smaller change; the host's administrator can raise the limit",
    ]


def test_the_hook_bounds_itself_before_reading_its_input(serve, pusher):
    """The limits are in force before the first line of standard input is read."""
    server = serve("hook_memory_mb: 100, hook_seconds: 7")
    probe = (
        "import resource, signal, sys\n"
        "from gitops_mail.cli import hooks\n"
        "def show(*_):\n"
        "    limits = [resource.getrlimit(r) for r in (resource.RLIMIT_DATA, resource.RLIMIT_CPU)]"
        "\n"
        "    print(*limits, round(signal.getitimer(signal.ITIMER_REAL)[0]))\n"
        "    return ''\n"
        "sys.stdin.read = show\n"
        "hooks.main(sys.argv[1:])\n"
    )
    done = pusher.run(
        [PUBLIC_PYTHON, "-c", probe, "pre-receive", "--config", str(server.settings)],
        cwd=server.repo,
        env={"PYTHONPATH": PYTHONPATH},
    )
    assert done.stdout.splitlines() == [f"({100 * MIB}, {100 * MIB}) (12, 13) 7"]


def test_post_receive_stops_waiting_at_the_limit_and_the_push_stands(serve):
    pushed = serve("hook_seconds: 2", wait=60).push({ALIASES_PATH: "postmaster: owner@gmail.com\n"})
    assert pushed.accepted
    assert pushed.remote[-2:] == [
        f"gitops-mail: waiting up to 60 s for the daemon to apply {pushed.revision[:7]}",
        "gitops-mail: stopped: waiting took longer than 2 s (limits.hook_seconds); see "
        "gitops-mail status",
    ]
