"""Render a validated state into the files of chasquid's config dir.

Pure: a ``State`` and the certificates read from their sources in, a
``DesiredTree`` (relative path -> bytes, mode, owner, group) out. Secrets
(users files, private keys) are readable by chasquid's group only. The
repo's hooks are installed only when the manifest asks for them and the
host's policy allows them (``policy.repo_hooks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.snapshot import CHASQUID_DIR, Entry
from gitops_mail.core.state import State
from gitops_mail.core.tree import DesiredTree, FileSpec

if TYPE_CHECKING:
    from gitops_mail.core.certs import CertMaterial

GROUP = "chasquid"
PUBLIC = 0o644
SECRET = 0o640
EXECUTABLE = 0o755
_DOMAIN_FILES = ("users", "aliases", "dkim_selector")
HOOKS_DIR = f"{CHASQUID_DIR}/hooks"
_SAFE_POLICY = HostPolicy()  # the defaults: no repo hooks


def render_tree(
    state: State,
    certs: Mapping[str, CertMaterial],
    *,
    policy: HostPolicy = _SAFE_POLICY,
    group: str = GROUP,
) -> DesiredTree:
    """Every file gitops-mail manages in the config dir for ``state`` on a host with ``policy``."""
    tree: dict[str, FileSpec] = {}
    conf = state.snapshot.data(f"{CHASQUID_DIR}/chasquid.conf")
    if conf is not None:
        tree["chasquid.conf"] = FileSpec(conf, PUBLIC, "root", "root")
    for name in state.domains:
        tree.update(_domain_files(state, name, group))
    if policy.repo_hooks and state.manifest is not None and state.manifest.allow_hooks:
        tree.update(_hooks(state))
    for name, material in certs.items():
        tree[f"certs/{name}/fullchain.pem"] = FileSpec(material.fullchain, PUBLIC, "root", group)
        tree[f"certs/{name}/privkey.pem"] = FileSpec(material.key, SECRET, "root", group)
    return tree


def _domain_files(state: State, name: str, group: str) -> dict[str, FileSpec]:
    base = f"{CHASQUID_DIR}/domains/{name}"
    out = {}
    for file in _DOMAIN_FILES:
        data = state.snapshot.data(f"{base}/{file}")
        if data is not None:
            mode = SECRET if file == "users" else PUBLIC
            out[f"domains/{name}/{file}"] = FileSpec(data, mode, "root", group)
    if f"domains/{name}/aliases" not in out:
        # chasquid needs the domain's directory to exist; an empty aliases file
        # creates it and means exactly what no file means.
        out[f"domains/{name}/aliases"] = FileSpec(b"", PUBLIC, "root", group)
    return out


def hook_entries(state: State) -> list[tuple[str, Entry]]:
    """The repo's hooks that would be installed, by repo path: regular files directly
    in ``chasquid/hooks/``."""
    return [
        (f"{HOOKS_DIR}/{rel}", entry)
        for rel, entry in state.snapshot.under(HOOKS_DIR)
        if entry.is_regular and "/" not in rel
    ]


def _hooks(state: State) -> dict[str, FileSpec]:
    return {
        path.removeprefix(CHASQUID_DIR + "/"): FileSpec(
            entry.data, EXECUTABLE if entry.is_executable else PUBLIC, "root", "root"
        )
        for path, entry in hook_entries(state)
    }
