"""The state record on disk: atomic writes, the last 50 attempts, and what it tells."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mail.apply.store import HISTORY_LIMIT, Attempt, Record, StateStore
from gitops_mail.errors import GitopsMailError

HINT = "the file is gitops-mail's own record; move it away to start a fresh history"
DIR_HINT = "check state_dir in the host settings: it must be a directory this user can write"
A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)


def attempt(revision: str, result: str = "applied", n: int = 0, **more: object) -> Attempt:
    return Attempt(revision, f"2026-01-01T00:00:{n:02d}Z", result, **more)  # type: ignore[arg-type]


def no_dac_override() -> list[str]:
    """A command prefix under which root, too, is held to file permissions."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps]


# --- writing and reading back ------------------------------------------------------------


def test_nothing_recorded_yet_is_an_empty_record(tmp_path: Path) -> None:
    assert StateStore(tmp_path / "state").load() == Record(applied=None, history=())
    assert not (tmp_path / "state").exists()


def test_an_attempt_is_recorded_and_read_back_exactly(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    first = Attempt(
        A,
        "2026-01-01T10:00:00Z",
        "applied",
        reason="",
        summary="1 alias added",
        action="reload",
        phases_ms={"validate": 12.5, "swap": 3.0},
        duration_ms=15.5,
    )
    assert store.record(first, applied=A) == Record(applied=A, history=(first,))
    assert store.load() == Record(applied=A, history=(first,))
    assert StateStore(tmp_path / "state").load().last == first


def test_the_file_is_group_readable_json_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    # post-receive runs as the pushing user and reads the daemon's result here,
    # through the state dir's group (``hooks install`` shares it); the record
    # holds revisions, results and reasons, never a secret.
    store = StateStore(tmp_path / "state")
    store.record(attempt(A), applied=A)
    store.record(attempt(B, "failed", reason="probe failed"))
    assert sorted(os.listdir(tmp_path / "state")) == ["state.json"]
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    doc = json.loads(store.path.read_text())
    assert doc["applied"] == A
    assert [a["revision"] for a in doc["history"]] == [B, A]
    assert doc["history"][0] == asdict(attempt(B, "failed", reason="probe failed"))


def test_a_record_replaces_the_file_and_never_writes_into_it(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.record(attempt(A), applied=A)
    before = store.path.read_bytes()
    with open(store.path, "rb") as reader:  # a reader that opened the old file meanwhile
        store.record(attempt(B), applied=B)
        assert reader.read() == before  # still the whole old record
    assert store.load().applied == B


def test_applied_stays_until_a_new_revision_is_applied(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.record(attempt(A), applied=A)
    assert store.record(attempt(B, "failed")).applied == A
    assert store.record(attempt(C, "invalid")).applied == A
    assert store.record(attempt(C), applied=C).applied == C
    assert store.load().applied == C


def test_history_keeps_the_last_50_attempts_newest_first(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    revisions = [f"{n:040x}" for n in range(HISTORY_LIMIT + 5)]
    for n, revision in enumerate(revisions):
        store.record(attempt(revision, n=n % 60), applied=revision)
    history = store.load().history
    assert HISTORY_LIMIT == 50
    assert len(history) == 50
    assert [a.revision for a in history] == revisions[::-1][:50]
    assert store.load().applied == revisions[-1]


def test_a_missing_state_dir_is_created(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "var" / "lib" / "gitops-mail")
    store.record(attempt(A), applied=A)
    assert store.load().applied == A


# --- what the record tells -----------------------------------------------------------------


def record(*attempts: Attempt, applied: str | None = None) -> Record:
    """A record whose history is ``attempts``, newest first."""
    return Record(applied=applied, history=attempts)


def test_failed_is_the_last_attempt_of_a_revision_when_it_failed() -> None:
    bad = attempt(B, "failed", reason="the probe on port 25 failed")
    r = record(bad, attempt(A), applied=A)
    assert r.failed(B) == bad
    assert r.failed(A) is None
    assert r.failed(C) is None


@pytest.mark.parametrize("result", ["failed", "invalid", "restored-failed"])
def test_every_unsuccessful_result_counts_as_failed(result: str) -> None:
    assert record(attempt(B, result)).failed(B) == attempt(B, result)


@pytest.mark.parametrize("result", ["applied", "unchanged"])
def test_a_success_after_a_failure_clears_it(result: str) -> None:
    assert record(attempt(B, result), attempt(B, "failed")).failed(B) is None


def test_a_failure_after_a_success_is_a_failure() -> None:
    assert record(attempt(B, "failed"), attempt(B)).failed(B) == attempt(B, "failed")


def test_previous_good_is_the_newest_good_revision_before_the_live_one() -> None:
    r = record(attempt(C, "failed"), attempt(B), attempt(A), applied=B)
    assert r.previous_good() == A


def test_previous_good_counts_unchanged_as_good() -> None:
    r = record(attempt(B), attempt(A, "unchanged"), attempt(A), applied=B)
    assert r.previous_good() == A


def test_previous_good_skips_a_revision_whose_last_attempt_failed() -> None:
    # A was good, then a rollback to A failed and the server was restored to B.
    r = record(attempt(A, "failed"), attempt(B), attempt(A), applied=B)
    assert r.previous_good() is None
    assert record(*r.history, attempt(D), applied=B).previous_good() == D


def test_previous_good_after_a_rollback_is_the_revision_rolled_back_from() -> None:
    r = record(attempt(A), attempt(B), attempt(A), applied=A)
    assert r.previous_good() == B


def test_no_previous_good_without_history() -> None:
    assert Record().previous_good() is None
    assert record(attempt(A), applied=A).previous_good() is None
    assert record(attempt(A, "invalid")).previous_good() is None


_RESULTS = st.sampled_from(["applied", "unchanged", "failed", "invalid", "restored-failed"])
_ATTEMPTS = st.lists(st.tuples(st.sampled_from([A, B, C, D]), _RESULTS), max_size=60)


@settings(max_examples=100, deadline=None)
@given(steps=_ATTEMPTS)
def test_any_sequence_of_attempts_round_trips_and_tells_a_good_revision(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str]]
) -> None:
    store = StateStore(tmp_path_factory.mktemp("state"))
    attempts = [attempt(rev, result, n % 60) for n, (rev, result) in enumerate(steps)]
    applied, kept = None, []
    for one in attempts:
        last = kept[-1] if kept else None
        repeat = (
            one.result == "unchanged"
            and applied == one.revision
            and last is not None
            and (last.revision, last.result) == (one.revision, "unchanged")
        )
        if not repeat:
            kept.append(one)
        if one.succeeded:
            applied = one.revision
        store.record(one, applied=one.revision if one.succeeded else None)
    loaded = store.load()
    assert loaded == Record(applied, tuple(reversed(kept))[:HISTORY_LIMIT])
    good = loaded.previous_good()
    if good is not None:
        assert good != applied
        assert loaded.failed(good) is None
        assert any(a.revision == good and a.succeeded for a in loaded.history)


# --- a corrupt or unreadable file: a clear error naming it, and nothing lost ----------------


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{", "it is not valid JSON (Expecting property name enclosed in double quotes "
         "at line 1, column 2)"),
        (b'{"applied": "x",\n "history": [}', "it is not valid JSON (Expecting value "
         "at line 2, column 14)"),
        (b"", "it is not valid JSON (Expecting value at line 1, column 1)"),
        (b"\xff\xfe", "it is not valid JSON (not UTF-8 text)"),
        (b"[" * 100_000, "it is nested too deeply to be a record"),
        (b"[]", "it is not a JSON object"),
        (b"null", "it is not a JSON object"),
        (b'{"applied": 7}', "'applied' is not a revision"),
        (b'{"history": {}}', "'history' is not a list"),
        (b'{"history": ["x"]}', "history[0] is not a JSON object"),
        (b'{"history": [{"revision": "a", "result": "applied"}]}',
         "history[0] has no 'started_at'"),
        (b'{"history": [{"revision": 1, "started_at": "t", "result": "applied"}]}',
         "history[0].revision is not a string"),
        (b'{"history": [{"revision": "a", "started_at": "t", "result": "x", "phases_ms": []}]}',
         "history[0].phases_ms is not a mapping of phase to milliseconds"),
        (b'{"history": [{"revision": "a", "started_at": "t", "result": "x", '
         b'"duration_ms": true}]}', "history[0].duration_ms is not a number"),
    ],
)  # fmt: skip
def test_a_corrupt_state_file_is_a_clear_error_naming_it(
    tmp_path: Path, content: bytes, why: str
) -> None:
    store = StateStore(tmp_path)
    store.path.write_bytes(content)
    for action in (store.load, lambda: store.record(attempt(A), applied=A)):
        with pytest.raises(GitopsMailError) as caught:
            action()
        assert caught.value.message == f"cannot read {store.path}: {why}"
        assert caught.value.hint == HINT
    assert store.path.read_bytes() == content


def test_fields_written_by_a_newer_version_are_ignored(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    doc = {"applied": A, "history": [{**asdict(attempt(A)), "new_field": [1]}], "more": 1}
    store.path.write_text(json.dumps(doc))
    assert store.load() == Record(A, (attempt(A),))


def test_a_directory_in_place_of_the_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.mkdir()
    with pytest.raises(GitopsMailError) as caught:
        store.load()
    assert caught.value.message == f"cannot read {store.path}: Is a directory"
    assert caught.value.hint == HINT


def test_a_file_in_place_of_the_state_dir_or_a_parent(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a dir")
    with pytest.raises(GitopsMailError) as caught:
        StateStore(tmp_path / "state" / "sub").record(attempt(A))
    assert caught.value.message == (
        f"cannot read {tmp_path / 'state' / 'sub' / 'state.json'}: Not a directory"
    )
    assert caught.value.hint == DIR_HINT


def test_a_dangling_symlink_in_place_of_the_state_dir(tmp_path: Path) -> None:
    (tmp_path / "state").symlink_to(tmp_path / "gone")
    with pytest.raises(GitopsMailError) as caught:
        StateStore(tmp_path / "state").record(attempt(A))
    assert caught.value.message == f"the state dir {tmp_path / 'state'} is a symbolic link"
    assert caught.value.hint == (
        "gitops-mail keeps its lock and records only in a real directory: "
        "set state_dir in the host settings to the directory itself"
    )
    assert not (tmp_path / "gone").exists()


_WRITE = """
import sys
from pathlib import Path
from gitops_mail.errors import GitopsMailError
from gitops_mail.apply.store import Attempt, StateStore
try:
    StateStore(Path(sys.argv[1])).record(Attempt("b" * 40, "t", "applied"), applied="b" * 40)
except GitopsMailError as exc:
    print(exc.message)
    print(exc.hint)
"""


def test_an_unwritable_state_dir_is_a_clear_error_and_keeps_the_record(tmp_path: Path) -> None:
    state = tmp_path / "state"
    StateStore(state).record(attempt(A), applied=A)
    before = (state / "state.json").read_bytes()
    state.chmod(0o555)
    done = subprocess.run(
        [*no_dac_override(), sys.executable, "-c", _WRITE, str(state)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == (
        f"cannot write {state / 'state.json'}: Permission denied\n"
        "check that its directory exists, is a directory and is writable\n"
    )
    assert (state / "state.json").read_bytes() == before
    assert sorted(os.listdir(state)) == ["state.json"]


def test_a_repeated_unchanged_attempt_is_not_added(tmp_path: Path) -> None:
    """One entry per commit and outcome: a no-op pass over a live revision repeats nothing."""
    store = StateStore(tmp_path)
    store.record(attempt(A), applied=A)
    store.record(attempt(A, "unchanged"), applied=A)
    store.record(attempt(A, "unchanged"), applied=A)
    store.record(attempt(A, "unchanged"))
    assert [a.result for a in store.load().history] == ["unchanged", "applied"]
    store.record(Attempt(A, "2026-01-01T00:00:00+00:00", "unchanged", reason="refused"))
    assert [a.result for a in store.load().history] == ["unchanged", "unchanged", "applied"]
