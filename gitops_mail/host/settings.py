"""Host settings: how this host runs (``/etc/gitops-mail/gitops-mail.yaml``).

Schema-checked like the manifest, every problem reported at once with its line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_mail.core.policy import HostPolicy, Limits
from gitops_mail.core.problems import Problem
from gitops_mail.errors import InvalidConfig

if TYPE_CHECKING:
    from gitops_mail.core.state import State
    from gitops_mail.core.yamldoc.document import YamlDoc

DEFAULT_PATH = "/etc/gitops-mail/gitops-mail.yaml"
ENV_VAR = "GITOPS_MAIL_CONFIG"

_PATH = {
    "type": "string",
    "minLength": 1,
    "pattern": "^/",
    "patternErrorMessage": "must be an absolute path",
}
_PATHS = {"type": "array", "items": _PATH}
_POLICY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "delivery_agents": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "repo_hooks": {"type": "boolean"},
        "pipe_aliases": {"type": "boolean"},
        "certificate_dirs": _PATHS,
        "chasquid_write_dirs": _PATHS,
        "probe_networks": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "dovecot_auth": {"type": "boolean"},
        "dovecot_socket_dirs": _PATHS,
    },
}
_LIMITS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "file_bytes": {"type": "integer", "minimum": 1},
        "revision_bytes": {"type": "integer", "minimum": 1},
        "revision_files": {"type": "integer", "minimum": 1},
        "hook_seconds": {"type": "number", "exclusiveMinimum": 0},
        "hook_memory_mb": {"type": "integer", "minimum": 64},
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["repo"],
    "properties": {
        "repo": {
            **_PATH,
            "description": "the repository to reconcile from, e.g. repo: /srv/mail-conf.git",
        },
        "remote": {"type": ["string", "null"]},
        "host": {
            "type": "string",
            "minLength": 1,
            "description": "which of the manifest's hosts: this server is, e.g. host: mx1",
        },
        "branch": {"type": "string", "minLength": 1},
        "state_dir": _PATH,
        "poll_interval": {"type": "number", "exclusiveMinimum": 0},
        "probe_deadline": {"type": "number", "exclusiveMinimum": 0},
        "check_interval": {"type": "number", "minimum": 0},
        "metrics_address": {"type": ["string", "null"], "minLength": 1},
        "commit_back": {"type": "boolean"},
        "policy": _POLICY,
        "limits": _LIMITS,
        "chasquid": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "config_dir": _PATH,
                "binary": _PATH,
                "util": _PATH,
                "service": {"enum": ["systemd", "supervise", "command"]},
                "unit": {"type": "string", "minLength": 1},
                "user": {"type": "string", "minLength": 1},
                "args": {"type": "array", "items": {"type": "string"}},
                "reload_strategy": {"enum": ["restart", "wait"]},
                "restart_command": {
                    "type": ["array", "null"],
                    "items": {"type": "string"},
                    "minItems": 1,
                },
            },
        },
    },
}


@dataclass(frozen=True)
class ChasquidSettings:
    config_dir: Path = Path("/etc/chasquid")
    binary: Path = Path("/usr/bin/chasquid")
    util: Path = Path("/usr/bin/chasquid-util")
    service: str = "systemd"
    unit: str = "chasquid.service"
    user: str = "chasquid"  # supervise and the pre-flight run chasquid as this user
    args: tuple[str, ...] = ()
    restart_command: tuple[str, ...] | None = None
    reload_strategy: str = (
        "restart"  # users/aliases changes: restart now, or wait for the 30 s reload
    )


@dataclass(frozen=True)
class HostSettings:
    path: Path
    repo: Path
    remote: str | None = None
    host: str | None = None  # which of the manifest's ``hosts:`` this server is
    branch: str = "main"
    state_dir: Path = Path("/var/lib/gitops-mail")
    poll_interval: float = 60.0
    probe_deadline: float = 10.0
    check_interval: float = 21600.0  # the daemon's `gitops-mail check` every 6 h; 0: never
    metrics_address: str | None = None  # e.g. 127.0.0.1:9187; off unless set
    commit_back: bool = True  # the daemon commits generated files (dns/*.zone) to the branch
    chasquid: ChasquidSettings = ChasquidSettings()
    policy: HostPolicy = field(default_factory=HostPolicy)  # what a push may make the host do
    limits: Limits = field(default_factory=Limits)  # what one push may cost this host


def view(settings: HostSettings, state: State) -> State:
    """``state`` as this server renders it: its entry of the manifest's ``hosts:``."""
    from gitops_mail.core.hostview import view as host_view  # noqa: PLC0415 - start-up time

    return host_view(state, settings.host, str(settings.path))


def settings_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_PATH)


def load(explicit: str | None = None) -> HostSettings:
    from gitops_mail.core.yamldoc.document import MAX_BYTES  # noqa: PLC0415 - start-up time

    path = settings_path(explicit)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)  # enough to say it is too large; never more
    except OSError as exc:
        raise InvalidConfig(
            f"cannot read the host settings {path}: {exc.strerror}",
            f"create it (see the README), or pass --config / set {ENV_VAR}",
        ) from exc
    return parse(data, path)


def parse(data: bytes, path: Path) -> HostSettings:
    from gitops_mail.core.yamldoc.document import load_yaml  # noqa: PLC0415 - start-up time
    from gitops_mail.core.yamldoc.schema import schema_problems  # noqa: PLC0415 - start-up time

    doc, found = load_yaml(data, str(path))
    if doc is not None:
        found += schema_problems(doc, SCHEMA, str(path)) + _rule_problems(doc, str(path))
    if doc is None or found:
        found = sorted(dict.fromkeys(found), key=lambda p: (p.line or 0, p.column or 0))
        raise InvalidConfig(
            "the host settings are invalid:\n" + "\n".join(p.format() for p in found),
            "fix the lines shown",
        )
    return _settings(path, doc.data)


def _rule_problems(doc: YamlDoc, path: str) -> list[Problem]:
    """Rules across keys and values; the schema reports values of the wrong type."""
    return _restart_command(doc, path) + _probe_networks(doc, path)


def _restart_command(doc: YamlDoc, path: str) -> list[Problem]:
    top = doc.data if isinstance(doc.data, dict) else {}
    chasquid = top.get("chasquid")
    if not isinstance(chasquid, dict) or chasquid.get("service") != "command":
        return []
    if chasquid.get("restart_command") is not None:
        return []  # present: the schema judges it
    from gitops_mail.core.yamldoc.document import problem_at  # noqa: PLC0415 - start-up time

    return [
        problem_at(
            doc,
            path,
            ("chasquid", "service"),
            "hostconfig.no-restart-command",
            "`command` needs chasquid.restart_command",
            hint='e.g. restart_command: ["/usr/local/bin/restart-chasquid"]',
        )
    ]


def _probe_networks(doc: YamlDoc, path: str) -> list[Problem]:
    """Each of policy.probe_networks an address or a network (the schema checks strings)."""
    import ipaddress  # noqa: PLC0415 - start-up time

    from gitops_mail.core.yamldoc.document import problem_at  # noqa: PLC0415 - start-up time

    policy = doc.data.get("policy") if isinstance(doc.data, dict) else None
    networks = policy.get("probe_networks") if isinstance(policy, dict) else None
    found = []
    for index, text in enumerate(networks if isinstance(networks, list) else []):
        try:
            ipaddress.ip_network(text, strict=False)
        except (TypeError, ValueError):
            if isinstance(text, str) and text:
                where = ("policy", "probe_networks", index)
                message = f"{text!r} is not an IP address or network"
                hint = 'e.g. 127.0.0.0/8, "::1/128" or 192.0.2.10'
                found.append(problem_at(doc, path, where, "hostconfig.network", message, hint=hint))
    return found


def _settings(path: Path, raw: Any) -> HostSettings:
    c = raw.get("chasquid") or {}
    chasquid = ChasquidSettings(
        config_dir=Path(c.get("config_dir", "/etc/chasquid")),
        binary=Path(c.get("binary", "/usr/bin/chasquid")),
        util=Path(c.get("util", "/usr/bin/chasquid-util")),
        service=c.get("service", "systemd"),
        unit=c.get("unit", "chasquid.service"),
        user=c.get("user", "chasquid"),
        args=tuple(c.get("args", ())),
        restart_command=tuple(c["restart_command"]) if c.get("restart_command") else None,
        reload_strategy=c.get("reload_strategy", "restart"),
    )
    return HostSettings(
        path=path,
        repo=Path(raw["repo"]),
        remote=raw.get("remote"),
        host=raw.get("host"),
        branch=raw.get("branch", "main"),
        state_dir=Path(raw.get("state_dir", "/var/lib/gitops-mail")),
        poll_interval=float(raw.get("poll_interval", 60)),
        probe_deadline=float(raw.get("probe_deadline", 10)),
        check_interval=float(raw.get("check_interval", 21600)),
        metrics_address=raw.get("metrics_address"),
        commit_back=bool(raw.get("commit_back", True)),
        chasquid=chasquid,
        policy=_policy(raw.get("policy") or {}),
        limits=_limits(raw.get("limits") or {}),
    )


def _policy(raw: dict[str, Any]) -> HostPolicy:
    """The ``policy:`` section over the safe defaults; a list given replaces the default."""
    values: dict[str, Any] = {
        name: tuple(value) if isinstance(value, list) else bool(value)
        for name, value in raw.items()
    }
    return HostPolicy(**values)


def _limits(raw: dict[str, Any]) -> Limits:
    return Limits(**{name: raw[name] for name in raw})
