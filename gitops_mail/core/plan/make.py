"""Make a plan: what applying a state over another would change, and what chasquid needs.

Pure: two ``State`` values in, a ``Plan`` out. Changes are semantic (a user
added, an alias now delivering elsewhere), never file diffs and never secrets.
The action says how the change reaches the running chasquid 1.11, from its
measured reload behaviour and its source: the config, the list of domains and
the certificates are read only at start; users and aliases as ``plan.mail``
explains; hooks are read for every message.
"""

from __future__ import annotations

from collections.abc import Iterator

from gitops_mail.core.formats.chasquid_conf import LISTEN_FIELDS, config_changes
from gitops_mail.core.manifest.defaults import defaults_of, with_defaults
from gitops_mail.core.manifest.model import CertificateSource
from gitops_mail.core.plan.certs import source_text
from gitops_mail.core.plan.mail import mail_changes
from gitops_mail.core.plan.model import (
    WHY_CERTS,
    WHY_CONFIG,
    WHY_DNS,
    WHY_DOMAINS,
    WHY_HOOKS,
    WHY_SETTINGS,
    Action,
    Change,
    Plan,
)
from gitops_mail.core.plan.records import record_changes
from gitops_mail.core.problems import Problem
from gitops_mail.core.snapshot import CHASQUID_DIR, MANIFEST, Snapshot
from gitops_mail.core.state import CONF_PATH, DOMAINS_DIR, State


def make_plan(base: State | None, new: State, problems: tuple[Problem, ...] = ()) -> Plan:
    """The changes from ``base`` (None: a server with nothing yet) to ``new``."""
    old = base if base is not None else State(Snapshot({}, "nothing"), None, None, {})
    return Plan(
        base=old.snapshot.short,
        target=new.snapshot.short,
        changes=tuple(_changes(old, new)),
        problems=problems,
    )


def _changes(base: State, new: State) -> Iterator[Change]:
    yield from _domains(base, new)
    yield from _config(base, new)
    yield from mail_changes(base, new)
    yield from _certificates(base, new)
    yield from _hooks(base, new)
    yield from _manifest(base, new)
    yield from record_changes(base, new)
    yield from _other_files(base, new)


def _domains(base: State, new: State) -> Iterator[Change]:
    for name in sorted(new.domains.keys() - base.domains.keys()):
        yield Change("domain", "added", name, None, None, Action.RESTART, WHY_DOMAINS)
    for name in sorted(base.domains.keys() - new.domains.keys()):
        yield Change("domain", "removed", name, None, None, Action.RESTART, WHY_DOMAINS)


def _config(base: State, new: State) -> Iterator[Change]:
    if base.config is None or new.config is None:
        if (base.config is None) != (new.config is None):
            op = "added" if base.config is None else "removed"
            yield Change("config", op, CONF_PATH, None, None, Action.RESTART, WHY_CONFIG)
        return
    for name, before, after in config_changes(base.config, new.config):
        area, note = "config", ""
        if name == "hostname":
            area = "hostname"
            note = (
                f"point the server's PTR (reverse DNS) record at {after}, and make sure a "
                "certificate covers it"
            )
        elif name in LISTEN_FIELDS:
            area = "listen"
        yield Change(
            area, "changed", name, _show(before), _show(after), Action.RESTART, WHY_CONFIG, note
        )


def _show(value: object) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, tuple | list):
        return ", ".join(_scalar(v) for v in value) or "(none)"
    return _scalar(value)


def _certificates(base: State, new: State) -> Iterator[Change]:
    old = {c.name: c for c in base.manifest.certificates} if base.manifest else {}
    cur = {c.name: c for c in new.manifest.certificates} if new.manifest else {}
    for name in sorted(old.keys() | cur.keys()):
        before, after = _cert_source(old.get(name)), _cert_source(cur.get(name))
        if before == after:
            continue
        op = "added" if before is None else "removed" if after is None else "changed"
        yield Change("certificate", op, name, before, after, Action.RESTART, WHY_CERTS)


def _cert_source(cert: CertificateSource | None) -> str | None:
    return None if cert is None else source_text(cert)


def _hooks(base: State, new: State) -> Iterator[Change]:
    for path, op in _file_diff(base, new, f"{CHASQUID_DIR}/hooks/"):
        if not _managed(base, path):  # plan --live: the signing hook is rendered, not pushed
            yield Change("hook", op, path, None, None, Action.NONE, WHY_HOOKS)


def _managed(state: State, path: str) -> bool:
    """A file gitops-mail renders itself, as found in a live config dir (``plan --live``)."""
    name = path.rsplit("/", 1)[-1]
    if name.startswith("dkim:") and path.startswith(f"{DOMAINS_DIR}/"):
        return True
    if name == "post-data.repo":  # the repo's hook, moved aside by the managed one
        return _managed(state, path.removesuffix(".repo"))
    data = state.snapshot.data(path)
    return data is not None and MANAGED_HOOK_MARK in data[:200]


def _manifest(base: State, new: State) -> Iterator[Change]:
    """What the manifest's settings change; a setting left out is its default, and
    a default that comes or goes with its object is no change of its own."""
    old_data = base.manifest.doc.data if base.manifest else {}
    new_data = new.manifest.doc.data if new.manifest else {}
    old, cur = _flatten(with_defaults(old_data)), _flatten(with_defaults(new_data))
    default = _flatten(defaults_of(old_data)) | _flatten(defaults_of(new_data))
    default = {key: value for key, value in default.items() if value != _EMPTY}
    for key in sorted(old.keys() | cur.keys()):
        if key.startswith("certificates") or old.get(key) == cur.get(key):
            continue
        one_side = cur.get(key) if key in cur else old.get(key)
        if (key not in old or key not in cur) and one_side == default.get(key):
            continue
        op = "added" if key not in old else "removed" if key not in cur else "changed"
        why = WHY_SETTINGS if key.split(".")[0] in ("version", "chasquid") else WHY_DNS
        yield Change("manifest", op, key, old.get(key), cur.get(key), Action.NONE, why)


_EMPTY = "{}"  # an empty object, as ``_flatten`` shows it: a setting, never a default


def _flatten(data: object, prefix: str = "") -> dict[str, str]:
    """Dotted key paths to scalar values; lists of scalars stay one value."""
    if isinstance(data, dict):
        out: dict[str, str] = {prefix: _EMPTY} if prefix and not data else {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and all(not isinstance(v, dict | list) for v in data):
        return {prefix: ", ".join(_scalar(v) for v in data)}
    if isinstance(data, list):
        out = {}
        for i, item in enumerate(data):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: _scalar(data)}


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


_SEMANTIC = (MANIFEST, CONF_PATH)
MANAGED_HOOK_MARK = b"chasquid post-data hook managed by gitops-mail"


def _other_files(base: State, new: State) -> Iterator[Change]:
    for path, op in _file_diff(base, new, ""):
        if path in _SEMANTIC or path.startswith(f"{CHASQUID_DIR}/hooks/") or _is_domain_file(path):
            continue
        if _managed(base, path):
            continue
        yield Change("file", op, path, None, None, Action.NONE, _file_why(path))


def _file_why(path: str) -> str:
    if path.startswith(f"{DOMAINS_DIR}/") and path.endswith("/dkim_selector"):
        return "read by the post-data hook for every message"
    if path.startswith(f"{CHASQUID_DIR}/"):
        return "not read by chasquid"
    return "not part of chasquid's config"


def _is_domain_file(path: str) -> bool:
    parts = path.split("/")
    return (
        path.startswith(f"{DOMAINS_DIR}/")
        and len(parts) == 4
        and parts[3]
        in (
            "users",
            "aliases",
        )
    )


def _file_diff(base: State, new: State, prefix: str) -> Iterator[tuple[str, str]]:
    old, cur = base.snapshot.files, new.snapshot.files
    for path in sorted(p for p in old.keys() | cur.keys() if p.startswith(prefix)):
        if path not in old:
            yield path, "added"
        elif path not in cur:
            yield path, "removed"
        elif old[path] != cur[path]:
            yield path, "changed"
