"""History of the commits a daemon skips: once each, never its own, on real repositories."""

from __future__ import annotations

from gitops_mail.apply.store import Attempt, StateStore
from gitops_mail.daemon.commitback import BOT
from gitops_mail.daemon.tips import own_commit_on_live, record_superseded
from gitops_mail.git import write as gitwrite
from gitops_mail.host.settings import ChasquidSettings, HostSettings

ALIASES = "chasquid/domains/example.com/aliases"
ZONE = "dns/example.com.zone"


def _settings(tmp_path, origin) -> HostSettings:
    live = tmp_path / "etc-chasquid"
    live.mkdir()
    return HostSettings(
        path=tmp_path / "host.yaml",
        repo=origin.path,
        state_dir=tmp_path / "st",
        chasquid=ChasquidSettings(config_dir=live),
    )


def _history(store: StateStore) -> list[tuple[str, str]]:
    return [(a.revision, a.result) for a in store.load().history]


def test_superseded_commits_are_recorded_once_however_often_the_daemon_starts(
    tmp_path, origin, workdir
):
    live = workdir.commit({ALIASES: "postmaster: ana@example.org\n"}, "live")
    first = workdir.commit({ALIASES: "postmaster: bob@example.org\n"}, "first")
    bot = workdir.git("rev-parse", "HEAD").strip()
    workdir.push()
    own = gitwrite.commit_files(origin.path, "main", bot, {ZONE: b"; zone\n"}, "dns", author=BOT)
    workdir.git("pull", "--quiet", "--ff-only", "origin", "main")
    second = workdir.commit({ALIASES: "postmaster: eve@example.org\n"}, "second")
    tip = workdir.commit({ALIASES: "postmaster loop\n"}, "broken tip")
    workdir.push()
    settings = _settings(tmp_path, origin)
    store = StateStore(settings.state_dir)
    store.record(Attempt(live, "2026-12-01T00:00:00+00:00", "applied"), applied=live)

    for _ in range(3):  # the daemon starts three times while the tip stays broken
        record_superseded(settings, store, live, tip)

    assert _history(store) == [
        (second, "superseded"),
        (first, "superseded"),
        (live, "applied"),
    ]  # once each; the daemon's own commit (between them) needs no entry
    assert own not in {r for r, _ in _history(store)}


def test_a_commit_that_already_has_an_entry_is_not_called_superseded(tmp_path, origin, workdir):
    live = workdir.commit({ALIASES: "postmaster: ana@example.org\n"}, "live")
    failed = workdir.commit({ALIASES: "postmaster: bob@example.org\n"}, "failed")
    tip = workdir.commit({ALIASES: "postmaster: eve@example.org\n"}, "tip")
    workdir.push()
    settings = _settings(tmp_path, origin)
    store = StateStore(settings.state_dir)
    store.record(Attempt(live, "2026-12-01T00:00:00+00:00", "applied"), applied=live)
    store.record(Attempt(failed, "2026-12-01T00:01:00+00:00", "failed", reason="probe failed"))

    record_superseded(settings, store, live, tip)

    assert _history(store) == [(failed, "failed"), (live, "applied")]


def test_the_daemons_own_commit_on_a_revision_not_live_is_not_taken_as_live(
    tmp_path, origin, workdir
):
    live = workdir.commit({ALIASES: "postmaster: ana@example.org\n"}, "live")
    other = workdir.commit({ALIASES: "postmaster: bob@example.org\n"}, "not applied")
    workdir.push()
    own = gitwrite.commit_files(origin.path, "main", other, {ZONE: b"; zone\n"}, "dns", author=BOT)
    settings = _settings(tmp_path, origin)
    store = StateStore(settings.state_dir)
    store.record(Attempt(live, "2026-12-01T00:00:00+00:00", "applied"), applied=live)

    assert own_commit_on_live(settings, store, own) is False  # its parent is not live
    assert own_commit_on_live(settings, store, other) is False  # a person's commit
    assert store.load().applied == live
