"""Rendering a state into chasquid's config dir: paths, bytes, modes, owners and groups."""

from __future__ import annotations

import grp
from collections.abc import Mapping
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from support.repo import snapshot

from gitops_mail.core.certs import CertMaterial
from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.render import render_tree
from gitops_mail.core.snapshot import MODE_EXEC, MODE_FILE, MODE_SYMLINK, Entry
from gitops_mail.core.state import State, load_state
from gitops_mail.core.tree import FileSpec
from gitops_mail.host.livefs.scan import resolve

CONF = b'hostname: "mail.example.com"\n'
ALIASES = b"postmaster: owner@gmail.com\n"
USERS = b'users: {\n  key: "i"\n  value: {\n    plain: { password: "x" }\n  }\n}\n'
HOOK = b"#!/bin/sh\nexit 0\n"
HOOKS_ALLOWED = HostPolicy(repo_hooks=True)


def manifest(*, hooks: bool) -> bytes:
    return (
        "version: 1\n"
        f"chasquid:\n  hooks: {'true' if hooks else 'false'}\n"
        "certificates:\n  - name: mail.example.com\n    acme_sh: /root/.acme.sh/mail.example.com\n"
        "domains:\n  example.com: {}\n"
    ).encode()


def state(files: Mapping[str, bytes | Entry], *, hooks: bool = False) -> State:
    base = {"gitops-mail.yaml": manifest(hooks=hooks), "chasquid/chasquid.conf": CONF}
    loaded = load_state(snapshot(files, base=base))
    assert loaded.problems == ()
    return loaded


def cert(name: str) -> CertMaterial:
    return CertMaterial(
        name=name,
        fullchain=b"-----BEGIN CERTIFICATE-----\nchain of " + name.encode() + b"\n",
        key=b"-----BEGIN PRIVATE KEY-----\nkey of " + name.encode() + b"\n",
        fingerprint="00" * 32,
        names=(name,),
        not_after=datetime(2099, 1, 1, tzinfo=UTC),
        source_files=(),
    )


def test_a_full_state_renders_every_file_with_its_mode_owner_and_group() -> None:
    tree = render_tree(
        state(
            {
                "chasquid/domains/example.com/users": USERS,
                "chasquid/domains/example.com/aliases": ALIASES,
                "chasquid/domains/example.com/dkim_selector": b"s2026\n",
                "chasquid/hooks/post-data": Entry(HOOK, MODE_EXEC),
            },
            hooks=True,
        ),
        {"mail.example.com": cert("mail.example.com")},
        policy=HOOKS_ALLOWED,
    )
    assert tree == {
        "chasquid.conf": FileSpec(CONF, 0o644, "root", "root"),
        "domains/example.com/users": FileSpec(USERS, 0o640, "root", "chasquid"),
        "domains/example.com/aliases": FileSpec(ALIASES, 0o644, "root", "chasquid"),
        "hooks/post-data": FileSpec(HOOK, 0o755, "root", "root"),
        "certs/mail.example.com/fullchain.pem": FileSpec(
            cert("mail.example.com").fullchain, 0o644, "root", "chasquid"
        ),
        "certs/mail.example.com/privkey.pem": FileSpec(
            cert("mail.example.com").key, 0o640, "root", "chasquid"
        ),
    }


def test_users_file_is_readable_by_chasquid_group_only() -> None:
    tree = render_tree(state({"chasquid/domains/example.com/users": USERS}), {})
    assert tree["domains/example.com/users"] == FileSpec(USERS, 0o640, "root", "chasquid")


def test_private_keys_are_0640_root_chasquid_for_every_certificate() -> None:
    certs = {name: cert(name) for name in ("mail.example.com", "mx2.example.com")}
    tree = render_tree(state({"chasquid/domains/example.com/aliases": ALIASES}), certs)
    keys = {path: spec for path, spec in tree.items() if path.endswith("privkey.pem")}
    assert keys == {
        f"certs/{name}/privkey.pem": FileSpec(material.key, 0o640, "root", "chasquid")
        for name, material in certs.items()
    }


def test_hooks_are_left_out_when_the_manifest_does_not_allow_them() -> None:
    files: dict[str, bytes | Entry] = {
        "chasquid/domains/example.com/aliases": ALIASES,
        "chasquid/hooks/post-data": Entry(HOOK, MODE_EXEC),
    }
    tree = render_tree(state(files, hooks=False), {})
    assert sorted(tree) == ["chasquid.conf", "domains/example.com/aliases"]


def test_hooks_are_0755_when_the_manifest_and_the_host_allow_them() -> None:
    hooked = state({"chasquid/hooks/post-data": Entry(HOOK, MODE_EXEC)}, hooks=True)
    tree = render_tree(hooked, {}, policy=HOOKS_ALLOWED)
    assert tree["hooks/post-data"] == FileSpec(HOOK, 0o755, "root", "root")


def test_hooks_are_left_out_unless_the_hosts_policy_allows_them() -> None:
    hooked = state({"chasquid/hooks/post-data": Entry(HOOK, MODE_EXEC)}, hooks=True)
    assert sorted(render_tree(hooked, {})) == ["chasquid.conf"]
    assert sorted(render_tree(hooked, {}, policy=HostPolicy())) == ["chasquid.conf"]


def test_only_regular_files_directly_in_hooks_are_installed() -> None:
    tree = render_tree(
        state(
            {
                "chasquid/hooks/post-data": Entry(HOOK, MODE_EXEC),
                "chasquid/hooks/lib/helper.sh": Entry(HOOK, MODE_EXEC),
                "chasquid/hooks/link": Entry(b"/etc/passwd", MODE_SYMLINK),
            },
            hooks=True,
        ),
        {},
        policy=HOOKS_ALLOWED,
    )
    assert sorted(p for p in tree if p.startswith("hooks/")) == ["hooks/post-data"]


def test_a_domain_with_no_files_gets_an_empty_aliases_file() -> None:
    worktree = snapshot(
        base={"gitops-mail.yaml": manifest(hooks=False), "chasquid/chasquid.conf": CONF},
        name="worktree",
        directories=frozenset({"chasquid", "chasquid/domains", "chasquid/domains/example.com"}),
    )
    tree = render_tree(load_state(worktree), {})
    assert tree == {
        "chasquid.conf": FileSpec(CONF, 0o644, "root", "root"),
        "domains/example.com/aliases": FileSpec(b"", 0o644, "root", "chasquid"),
    }


def test_a_domain_kept_by_a_gitkeep_gets_an_empty_aliases_file_and_no_gitkeep() -> None:
    tree = render_tree(state({"chasquid/domains/example.com/.gitkeep": b""}), {})
    assert tree == {
        "chasquid.conf": FileSpec(CONF, 0o644, "root", "root"),
        "domains/example.com/aliases": FileSpec(b"", 0o644, "root", "chasquid"),
    }


def test_a_domain_with_only_users_also_gets_an_empty_aliases_file() -> None:
    tree = render_tree(state({"chasquid/domains/example.com/users": USERS}), {})
    assert tree["domains/example.com/aliases"] == FileSpec(b"", 0o644, "root", "chasquid")


def test_a_hand_made_dkim_selector_is_not_installed() -> None:
    """The manifest's selectors are the only truth: a repo's own selector file is ignored."""
    tree = render_tree(
        state(
            {
                "chasquid/domains/example.com/aliases": ALIASES,
                "chasquid/domains/example.com/dkim_selector": b"s2026\n",
            }
        ),
        {},
    )
    assert "domains/example.com/dkim_selector" not in tree


def test_files_chasquid_does_not_read_are_not_installed() -> None:
    tree = render_tree(
        state(
            {
                "chasquid/domains/example.com/aliases": ALIASES,
                "chasquid/domains/example.com/notes.txt": b"remember\n",
                "chasquid/README": b"hello\n",
                "dns/example.com.zone": b"@ IN TXT x\n",
            }
        ),
        {},
    )
    assert sorted(tree) == ["chasquid.conf", "domains/example.com/aliases"]


def test_no_chasquid_conf_in_the_revision_renders_none() -> None:
    no_conf = snapshot(
        base={
            "gitops-mail.yaml": manifest(hooks=False),
            "chasquid/domains/example.com/aliases": ALIASES,
        }
    )
    assert sorted(render_tree(load_state(no_conf), {})) == ["domains/example.com/aliases"]


def test_the_group_can_be_chosen() -> None:
    tree = render_tree(
        state({"chasquid/domains/example.com/users": USERS}),
        {"mail.example.com": cert("mail.example.com")},
        group="mail",
    )
    assert {p: s.group for p, s in tree.items()} == {
        "chasquid.conf": "root",
        "domains/example.com/users": "mail",
        "domains/example.com/aliases": "mail",
        "certs/mail.example.com/fullchain.pem": "mail",
        "certs/mail.example.com/privkey.pem": "mail",
    }


def test_the_rendered_tree_resolves_to_real_owners_on_this_host() -> None:
    tree = render_tree(
        state({"chasquid/domains/example.com/users": USERS}),
        {"mail.example.com": cert("mail.example.com")},
    )
    wants = resolve(tree)
    chasquid_gid = grp.getgrnam("chasquid").gr_gid
    assert {p: (w.uid, w.gid, oct(w.mode)) for p, w in wants.items()} == {
        "chasquid.conf": (0, 0, "0o644"),
        "certs/mail.example.com/fullchain.pem": (0, chasquid_gid, "0o644"),
        "certs/mail.example.com/privkey.pem": (0, chasquid_gid, "0o640"),
        "domains/example.com/aliases": (0, chasquid_gid, "0o644"),
        "domains/example.com/users": (0, chasquid_gid, "0o640"),
    }


_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_DOMAIN_FILES = st.dictionaries(
    st.sampled_from(["users", "aliases", "dkim_selector", "other"]),
    st.binary(max_size=20),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    domains=st.dictionaries(_LABEL.map(lambda s: f"{s}.example"), _DOMAIN_FILES, max_size=4),
    hooks=st.booleans(),
    repo_hooks=st.booleans(),
    hook_mode=st.sampled_from([MODE_FILE, MODE_EXEC]),
)
def test_every_rendered_file_follows_the_mode_rules(
    domains: dict[str, dict[str, bytes]], hooks: bool, repo_hooks: bool, hook_mode: int
) -> None:
    files: dict[str, Entry] = {
        "gitops-mail.yaml": Entry(manifest(hooks=hooks)),
        "chasquid/hooks/post-data": Entry(HOOK, hook_mode),
    }
    for name, domain_files in domains.items():
        files[f"chasquid/domains/{name}/.gitkeep"] = Entry(b"")
        for file, data in domain_files.items():
            files[f"chasquid/domains/{name}/{file}"] = Entry(data)
    policy = HostPolicy(repo_hooks=repo_hooks)
    tree = render_tree(load_state(snapshot(base=files, name="fuzz")), {}, policy=policy)
    expected_domains = {f"domains/{n}/aliases" for n in domains} | {
        f"domains/{n}/{f}" for n, fs in domains.items() for f in fs if f in ("users", "aliases")
    }
    expected_hooks = {"hooks/post-data"} if hooks and repo_hooks else set()
    assert set(tree) == expected_domains | expected_hooks
    for path, spec in tree.items():
        if path.endswith("/users"):
            assert (spec.mode, spec.owner, spec.group) == (0o640, "root", "chasquid")
        elif path.startswith("domains/"):
            assert (spec.mode, spec.owner, spec.group) == (0o644, "root", "chasquid")
        else:
            mode = 0o755 if hook_mode == MODE_EXEC else 0o644
            assert (spec.mode, spec.owner, spec.group) == (mode, "root", "root")
        source = f"chasquid/{path}"
        expected = files[source].data if source in files else b""
        assert spec.data == expected


def test_no_manifest_means_no_hooks() -> None:
    no_manifest = snapshot(
        base={
            "chasquid/chasquid.conf": CONF,
            "chasquid/domains/example.com/aliases": ALIASES,
            "chasquid/hooks/post-data": Entry(HOOK, MODE_EXEC),
        }
    )
    assert sorted(render_tree(load_state(no_manifest), {}, policy=HOOKS_ALLOWED)) == [
        "chasquid.conf",
        "domains/example.com/aliases",
    ]
