"""Render a validated state into the files of chasquid's config dir.

Pure: a ``State``, the certificates read from their sources and the DKIM keys
of the host's key store in, a ``DesiredTree`` (relative path -> bytes, mode,
owner, group) out. Secrets (users files, private keys) are readable by
chasquid's group only. The repo's hooks are installed only when the manifest
asks for them and the host's policy allows them (``policy.repo_hooks``).

DKIM comes from the manifest's selectors only: each one's key is installed as
``domains/<d>/dkim:<selector>.pem``, which chasquid >= 1.14 signs with; for
older versions a managed ``hooks/post-data`` (``templates/post_data_dkim.py``)
signs with the same files, and a repo's own post-data hook, when the tree has
one, runs from it as ``hooks/post-data.repo``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gitops_mail.core.domainname import to_ascii
from gitops_mail.core.manifest.roles import signing_selectors
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
_DOMAIN_FILES = ("users", "aliases")
HOOKS_DIR = f"{CHASQUID_DIR}/hooks"
_SAFE_POLICY = HostPolicy()  # the defaults: no repo hooks
HOOK = "hooks/post-data"
REPO_HOOK = "hooks/post-data.repo"
_HOOK_TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "templates", "post_data_dkim.py")

DkimKeys = Mapping[str, Mapping[str, bytes]]  # manifest domain -> selector (lower case) -> PEM


def render_tree(
    state: State,
    certs: Mapping[str, CertMaterial],
    *,
    policy: HostPolicy = _SAFE_POLICY,
    group: str = GROUP,
    dkim: DkimKeys | None = None,
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
    if dkim:
        tree.update(_dkim_files(state, dkim, tree, group))
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


def _dkim_files(
    state: State, keys: DkimKeys, tree: Mapping[str, FileSpec], group: str
) -> dict[str, FileSpec]:
    """The key of each manifest selector the store holds, and the signing hook (< 1.14)."""
    manifest = state.manifest
    if manifest is None:
        return {}
    out: dict[str, FileSpec] = {}
    signers: dict[str, list[str]] = {}
    for name, settings in sorted(manifest.domains.items()):
        held = keys.get(name, {})
        if settings.dkim is None or name not in state.domains:
            continue
        selectors = [s for s in signing_selectors(manifest, settings) if s.lower() in held]
        for selector in selectors:
            pem = held[selector.lower()]
            out[f"domains/{name}/dkim:{selector}.pem"] = FileSpec(pem, SECRET, "root", group)
        if selectors:
            signers[name] = selectors
    if signers and not manifest.native_dkim:
        repo_hook = tree.get(HOOK)
        if repo_hook is not None:
            out[REPO_HOOK] = repo_hook
        source = hook_source(signers, repo_hook=repo_hook is not None)
        out[HOOK] = FileSpec(source, EXECUTABLE, "root", "root")
    return out


def hook_source(signers: Mapping[str, list[str]], *, repo_hook: bool) -> bytes:
    """The managed post-data hook signing for ``signers`` (domain -> selectors)."""
    table: dict[str, list[object]] = {}
    for name, selectors in sorted(signers.items()):
        ascii_name = to_ascii(name) or name
        for key in dict.fromkeys((name.lower(), ascii_name.lower())):
            table[key] = [name, ascii_name, list(selectors)]
    text = _hook_template()
    text = text.replace(
        "\nSIGNERS: dict[str, list] = {}", f"\nSIGNERS: dict[str, list] = {table!a}", 1
    )
    if repo_hook:
        text = text.replace('\nREPO_HOOK = ""', f"\nREPO_HOOK = {REPO_HOOK!r}", 1)
    return text.encode("utf-8")


@functools.cache
def _hook_template() -> str:
    with open(_HOOK_TEMPLATE, encoding="utf-8") as file:
        return file.read()
