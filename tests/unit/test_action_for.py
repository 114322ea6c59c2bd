"""How file changes reach a running chasquid 1.11: nothing, the 30 s reload, or a restart.

The table in CHASQUID.md: chasquid.conf, certificates, new domains and users
files that appear or disappear need a restart; users and aliases of a running
domain are re-read by the periodic reload; hooks and the DKIM selector are read
for every message; a mode change alone changes nothing chasquid reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.repo import snapshot

from gitops_mail.apply.reconcile import action_for
from gitops_mail.core.plan.model import Action
from gitops_mail.core.render import render_tree
from gitops_mail.core.snapshot import MODE_EXEC, Entry
from gitops_mail.core.state import load_state
from gitops_mail.core.tree import DesiredTree
from gitops_mail.host.livefs.configdir import LiveDir
from gitops_mail.host.livefs.scan import Change

LIVE_DOMAIN = "example.com"
NEW_DOMAIN = "example.org"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A live config dir that has chasquid.conf and one domain with users and aliases."""
    root = tmp_path / "chasquid"
    (root / "domains" / LIVE_DOMAIN).mkdir(parents=True)
    (root / "domains" / LIVE_DOMAIN / "users").write_bytes(b"")
    (root / "domains" / LIVE_DOMAIN / "aliases").write_bytes(b"")
    (root / "chasquid.conf").write_bytes(b'hostname: "mail.example.com"\n')
    return root


def action(config_dir: Path, *changes: tuple[str, str]) -> Action:
    return action_for(tuple(Change(path, op) for path, op in changes), config_dir)


def test_no_change_needs_nothing(config_dir: Path) -> None:
    assert action(config_dir) is Action.NONE


@pytest.mark.parametrize("op", ["create", "update", "remove"])
@pytest.mark.parametrize(
    "path",
    [
        "chasquid.conf",
        "certs/mail.example.com/fullchain.pem",
        "certs/mail.example.com/privkey.pem",
    ],
)
def test_config_and_certificates_need_a_restart(config_dir: Path, path: str, op: str) -> None:
    assert action(config_dir, (path, op)) is Action.RESTART


@pytest.mark.parametrize("file", ["aliases", "users", "dkim_selector"])
def test_a_new_domain_needs_a_restart(config_dir: Path, file: str) -> None:
    assert action(config_dir, (f"domains/{NEW_DOMAIN}/{file}", "create")) is Action.RESTART


def test_a_domain_dir_that_exists_live_is_not_new(config_dir: Path) -> None:
    (config_dir / "domains" / NEW_DOMAIN).mkdir()
    assert action(config_dir, (f"domains/{NEW_DOMAIN}/aliases", "create")) is Action.RELOAD


@pytest.mark.parametrize("op", ["create", "remove"])
def test_a_users_file_created_or_removed_needs_a_restart(config_dir: Path, op: str) -> None:
    assert action(config_dir, (f"domains/{LIVE_DOMAIN}/users", op)) is Action.RESTART


def test_a_modified_users_file_is_reloaded(config_dir: Path) -> None:
    assert action(config_dir, (f"domains/{LIVE_DOMAIN}/users", "update")) is Action.RELOAD


@pytest.mark.parametrize("op", ["create", "update", "remove"])
def test_aliases_of_a_live_domain_are_reloaded(config_dir: Path, op: str) -> None:
    assert action(config_dir, (f"domains/{LIVE_DOMAIN}/aliases", op)) is Action.RELOAD


@pytest.mark.parametrize("op", ["create", "update", "remove"])
@pytest.mark.parametrize("path", ["hooks/post-data", f"domains/{LIVE_DOMAIN}/dkim_selector"])
def test_hooks_and_the_dkim_selector_need_nothing(config_dir: Path, path: str, op: str) -> None:
    assert action(config_dir, (path, op)) is Action.NONE


@pytest.mark.parametrize(
    "path",
    [
        "chasquid.conf",
        "certs/mail.example.com/privkey.pem",
        f"domains/{LIVE_DOMAIN}/users",
        f"domains/{LIVE_DOMAIN}/aliases",
        "hooks/post-data",
    ],
)
def test_a_mode_change_alone_needs_nothing(config_dir: Path, path: str) -> None:
    assert action(config_dir, (path, "chmod")) is Action.NONE


def test_the_strongest_need_wins(config_dir: Path) -> None:
    aliases = (f"domains/{LIVE_DOMAIN}/aliases", "update")
    assert action(config_dir, ("hooks/post-data", "update"), aliases) is Action.RELOAD
    assert action(config_dir, aliases, ("chasquid.conf", "update")) is Action.RESTART
    assert action(config_dir, ("chasquid.conf", "chmod"), ("hooks/x", "create")) is Action.NONE


def test_a_removed_domain_needs_a_restart(config_dir: Path) -> None:
    gone = config_dir / "domains" / NEW_DOMAIN
    gone.mkdir()
    (gone / "aliases").write_bytes(b"postmaster: owner@gmail.com\n")
    assert action(config_dir, (f"domains/{NEW_DOMAIN}/aliases", "remove")) is Action.RESTART


_PATHS = st.sampled_from(
    [
        "chasquid.conf",
        "certs/mail.example.com/fullchain.pem",
        "hooks/post-data",
        f"domains/{LIVE_DOMAIN}/users",
        f"domains/{LIVE_DOMAIN}/aliases",
        f"domains/{LIVE_DOMAIN}/dkim_selector",
        f"domains/{NEW_DOMAIN}/aliases",
    ]
)
_CHANGES = st.lists(
    st.builds(Change, _PATHS, st.sampled_from(["create", "update", "remove", "chmod"])),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(changes=_CHANGES)
def test_the_action_is_the_strongest_of_each_change_alone(
    tmp_path_factory: pytest.TempPathFactory, changes: list[Change]
) -> None:
    root = tmp_path_factory.mktemp("live")
    (root / "domains" / LIVE_DOMAIN).mkdir(parents=True)
    combined = action_for(tuple(changes), root)
    alone = [action_for((change,), root) for change in changes]
    assert combined is max(alone, default=Action.NONE)
    assert action_for(tuple(reversed(changes)), root) is combined


# --- on real trees: render, stage over the live dir, read the action ----------------------

MANIFEST = "version: 1\nchasquid:\n  hooks: true\ndomains:\n  example.com: {}\n  example.org: {}\n"
CONF = 'hostname: "mail.example.com"\n'
USERS = 'users: {\n  key: "i"\n  value: {\n    plain: { password: "x" }\n  }\n}\n'
HOOK = Entry(b"#!/bin/sh\nexit 0\n", MODE_EXEC)
BASE: dict[str, str | Entry] = {
    "gitops-mail.yaml": MANIFEST,
    "chasquid/chasquid.conf": CONF,
    "chasquid/domains/example.com/aliases": "postmaster: owner@gmail.com\n",
    "chasquid/domains/example.com/users": USERS,
    "chasquid/domains/example.org/aliases": "postmaster: owner@gmail.com\n",
    "chasquid/hooks/post-data": HOOK,
}


def live_after(tmp_path: Path) -> LiveDir:
    """A live dir holding the rendering of BASE, put there by a real swap."""
    live = LiveDir(tmp_path / "etc" / "chasquid", tmp_path / "state")
    live.config_dir.mkdir(parents=True)
    live.cleanup(live.swap(live.stage(tree())))
    return live


def tree(changes: Mapping[str, str | Entry | None] = {}) -> DesiredTree:
    """BASE rendered, with the files under ``chasquid/`` in ``changes`` written (None removes)."""
    edited = {f"chasquid/{path}": value for path, value in changes.items()}
    return render_tree(load_state(snapshot(edited, base=BASE)), {})


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, Action.NONE),
        ({"domains/example.com/aliases": "postmaster: me@gmail.com\n"}, Action.RELOAD),
        ({"domains/example.com/users": ""}, Action.RELOAD),
        ({"domains/example.org/users": USERS}, Action.RESTART),
        ({"domains/example.com/users": None}, Action.RESTART),
        ({"domains/example.net/aliases": "a: b@c.d\n"}, Action.RESTART),
        ({"domains/example.com/dkim_selector": "s1\n"}, Action.NONE),
        ({"hooks/post-data": Entry(b"#!/bin/sh\nexit 1\n", MODE_EXEC)}, Action.NONE),
        ({"chasquid.conf": 'hostname: "mx.example.com"\n'}, Action.RESTART),
    ],
    ids=[
        "nothing",
        "aliases",
        "users-emptied",
        "users-created",
        "users-removed",
        "new-domain",
        "dkim-selector",
        "hook",
        "conf",
    ],
)
def test_rendered_revisions_over_a_live_dir(
    tmp_path: Path, changes: dict[str, str | Entry | None], expected: Action
) -> None:
    live = live_after(tmp_path)
    staged = live.changes(tree(changes))
    assert action_for(staged, live.config_dir) is expected


def test_a_hand_chmod_of_a_managed_file_needs_nothing(tmp_path: Path) -> None:
    live = live_after(tmp_path)
    (live.config_dir / "domains" / "example.com" / "users").chmod(0o600)
    staged = live.changes(tree())
    assert staged == (Change("domains/example.com/users", "chmod"),)
    assert action_for(staged, live.config_dir) is Action.NONE
