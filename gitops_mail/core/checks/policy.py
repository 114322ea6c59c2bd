"""The host's policy against a state: what this revision would make the host do.

A push controls the mail configuration; what runs on the host, what it reads
and writes, and where it connects is the host policy's to allow
(``core.policy.HostPolicy``, from the host settings). Each field that reaches
beyond the mail configuration is judged here, at its ``path:line``:

- ``mail_delivery_agent_bin``: one of ``policy.delivery_agents``, as written;
- repo hooks (``chasquid/hooks/*``): only with ``policy.repo_hooks``;
- pipe aliases (``user: | command``): only with ``policy.pipe_aliases``;
- certificate sources (acme_sh / certbot directories, ``files:`` paths):
  inside ``policy.certificate_dirs``;
- ``data_dir`` and ``mail_log_path``: inside ``policy.chasquid_write_dirs``
  (``<syslog>``, ``<stdout>`` and ``<stderr>`` always);
- listen addresses (the probes connect to them): ``systemd``, an unspecified
  host, or an IP address inside ``policy.probe_networks``;
- ``dovecot_auth``: only with ``policy.dovecot_auth``, its sockets inside
  ``policy.dovecot_socket_dirs``.

Paths are judged as written, normalised (``..`` resolved by name): a relative
path is never inside. The host side (``host.certs``) judges certificate
paths again as resolved, before it opens them. A refusal says only that the
policy does not allow the value and which setting would: nothing about what
the host holds there.

Without a policy (a checkout, CI: no host known) the same fields are judged
against the default policy, as notes that never fail validation: they tell
which settings a host's root must change before it accepts this revision.
"""

from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gitops_mail.core.formats.aliases.parse import Kind
from gitops_mail.core.formats.chasquid_conf import LISTEN_FIELDS, ChasquidConfig
from gitops_mail.core.manifest.model import CertificateSource, Manifest
from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.core.render import hook_entries
from gitops_mail.core.snapshot import MANIFEST
from gitops_mail.core.state import CONF_PATH, State

REFUSED = "is not allowed by this host's policy"
UNKNOWN_HOST = "needs a host whose policy allows it (the default policy does not)"
HINT = "root can allow it in the host settings: policy.{setting}"
ALWAYS_WRITABLE = ("<syslog>", "<stdout>", "<stderr>")
_DEFAULT = HostPolicy()


@dataclass(frozen=True)
class _Judge:
    """Turns a refused value into a problem: an error on a host, a note in a checkout."""

    policy: HostPolicy
    on_host: bool

    def refuse(self, path: str, line: int | None, what: str, setting: str) -> Problem:
        severity = Severity.ERROR if self.on_host else Severity.NOTE
        verb = REFUSED if self.on_host else UNKNOWN_HOST
        code = "policy." + setting.replace("_", "-")
        return Problem(path, line, code, f"{what} {verb}", HINT.format(setting=setting), severity)


def policy_problems(state: State, policy: HostPolicy | None) -> list[Problem]:
    """What ``policy`` refuses in ``state``; with ``None``, what the default policy refuses
    (as notes)."""
    judge = _Judge(policy or _DEFAULT, on_host=policy is not None)
    found: list[Problem] = []
    if state.config is not None:
        found += _delivery_agent(judge, state.config)
        found += _write_paths(judge, state.config)
        found += _listen(judge, state.config)
        found += _dovecot(judge, state.config)
    found += _hooks(judge, state)
    found += _pipes(judge, state)
    if state.manifest is not None:
        found += _certificates(judge, state.manifest)
    return found


# --- paths and addresses, judged the same way everywhere ----------------------------------


def normal_path(path: str) -> str | None:
    """``path`` with ``.``, ``..`` and repeated slashes resolved by name; None if relative."""
    if not path.startswith("/"):
        return None
    return "/" + posixpath.normpath(path).lstrip("/")


def inside(path: str, dirs: Iterable[str]) -> bool:
    """Whether absolute ``path``, normalised, is one of ``dirs`` or below one."""
    normal = normal_path(path)
    if normal is None:
        return False
    for directory in dirs:
        base = normal_path(directory)
        if base is not None and (normal == base or normal.startswith(base.rstrip("/") + "/")):
            return True
    return False


def probe_host_allowed(host: str, networks: Iterable[str]) -> bool:
    """Unspecified (``""``, ``0.0.0.0``, ``::``: probed on loopback) or an IP in ``networks``."""
    if host == "":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: the probes would connect wherever it resolves
    if address.is_unspecified:
        return True
    return any(address in network for network in _networks(networks))


def _networks(texts: Iterable[str]) -> Iterator[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    for text in texts:
        try:
            yield ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue  # the host settings' own check reports it


# --- chasquid.conf ------------------------------------------------------------------------


def _line(cfg: ChasquidConfig, name: str, index: int = 0) -> int | None:
    items = cfg.item_lines.get(name, ())
    return items[index] if index < len(items) else cfg.lines.get(name)


def _delivery_agent(judge: _Judge, cfg: ChasquidConfig) -> list[Problem]:
    agent = cfg.mail_delivery_agent_bin
    if agent in judge.policy.delivery_agents:
        return []
    what = f'mail_delivery_agent_bin "{agent}"'
    line = _line(cfg, "mail_delivery_agent_bin")
    return [judge.refuse(CONF_PATH, line, what, "delivery_agents")]


def _write_paths(judge: _Judge, cfg: ChasquidConfig) -> Iterator[Problem]:
    dirs = judge.policy.chasquid_write_dirs
    for name in ("data_dir", "mail_log_path"):
        value = getattr(cfg, name)
        if value not in ALWAYS_WRITABLE and not inside(value, dirs):
            what = f'{name} "{value}"'
            yield judge.refuse(CONF_PATH, _line(cfg, name), what, "chasquid_write_dirs")


def _listen(judge: _Judge, cfg: ChasquidConfig) -> Iterator[Problem]:
    fields = [(name, getattr(cfg, name)) for name in LISTEN_FIELDS]
    fields += [("monitoring_address", (cfg.monitoring_address,))] if cfg.monitoring_address else []
    for name, values in fields:
        for index, address in enumerate(values):
            host = _listen_host(address)
            if host is None or probe_host_allowed(host, judge.policy.probe_networks):
                continue
            what = f'{name} "{address}"'
            yield judge.refuse(CONF_PATH, _line(cfg, name, index), what, "probe_networks")


def _listen_host(address: str) -> str | None:
    """The host of ``HOST:PORT`` or ``[HOST]:PORT``; None for ``systemd`` and for what does
    not parse (the conf checks report that)."""
    if address == "systemd":
        return None
    host, colon, _ = address.rpartition(":")
    if not colon:
        return None
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return None if ":" in host else host


def _dovecot(judge: _Judge, cfg: ChasquidConfig) -> Iterator[Problem]:
    if not cfg.dovecot_auth:
        return  # chasquid never opens the sockets
    if not judge.policy.dovecot_auth:
        line = _line(cfg, "dovecot_auth")
        yield judge.refuse(CONF_PATH, line, "dovecot_auth: true", "dovecot_auth")
    for name in ("dovecot_userdb_path", "dovecot_client_path"):
        value = getattr(cfg, name)
        if value and not inside(value, judge.policy.dovecot_socket_dirs):
            what = f'{name} "{value}"'
            yield judge.refuse(CONF_PATH, _line(cfg, name), what, "dovecot_socket_dirs")


# --- the tree and the manifest ------------------------------------------------------------


def _hooks(judge: _Judge, state: State) -> Iterator[Problem]:
    if judge.policy.repo_hooks:
        return
    for path, _ in hook_entries(state):
        name = path.rsplit("/", 1)[-1]
        when = _HOOK_RUNS.get(name, "when chasquid runs it")
        yield judge.refuse(
            path, None, f"hook {name!r} (a program chasquid runs {when})", "repo_hooks"
        )


_HOOK_RUNS = {"post-data": "for every message", "alias-resolve": "for every local recipient"}


def _pipes(judge: _Judge, state: State) -> Iterator[Problem]:
    if judge.policy.pipe_aliases:
        return
    for _, domain in sorted(state.domains.items()):
        aliases = domain.aliases.aliases if domain.aliases is not None else ()
        for alias in aliases:
            if any(r.kind is Kind.PIPE for r in alias.recipients):
                what = f"alias {alias.raw_name!r} (a pipe to a command)"
                yield judge.refuse(domain.aliases_path, alias.line, what, "pipe_aliases")


def _certificates(judge: _Judge, manifest: Manifest) -> Iterator[Problem]:
    dirs = judge.policy.certificate_dirs
    for index, source in enumerate(manifest.certificates):
        for place, what, path in _certificate_paths(source):
            if not inside(path, dirs):
                line = manifest.doc.line_of(("certificates", index, *place)) or source.line
                text = f"certificate {source.name!r}: {what} {path}"  # as host.certs says it
                yield judge.refuse(MANIFEST, line, text, "certificate_dirs")


def _certificate_paths(source: CertificateSource) -> list[tuple[tuple[str, ...], str, str]]:
    """``(key path in the entry, what, path)`` of each path a source names."""
    if source.kind != "files":
        return [((source.kind,), "directory", source.directory or "")]
    return [
        (("files", "fullchain"), "fullchain file", source.fullchain or ""),
        (("files", "key"), "key file", source.key or ""),
    ]
